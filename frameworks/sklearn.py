"""scikit-learn estimators saved with joblib, pickle (optionally gzipped) or skops."""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn

from frameworks.base import Adapter, LoadOptions, Prediction
from runtime.contract import Contract, TensorSpec
from runtime.errors import InvalidInput, ModelLoadFailed

#: Packages whose types a skops file may hold without the manifest marking the model trusted.
_SAFE_SKOPS_ROOTS = frozenset({"sklearn", "numpy", "scipy"})


class SklearnAdapter(Adapter):
    name = "sklearn"

    def __init__(self, path: Path, options: LoadOptions) -> None:
        super().__init__(path, options)
        self.model = _load(path, options)
        if not hasattr(self.model, "predict"):
            raise ModelLoadFailed(
                f"cannot load sklearn model {path}: the object has no predict method; got {type(self.model).__name__}",
                path=str(path),
                cause=f"no predict method on {type(self.model).__name__}",
            )
        self._contract = _contract_of(self.model)
        self._tabular = self._contract is not None and self._contract.tabular

    def predict(self, inputs: Mapping[str, np.ndarray[Any, Any]], *, probabilities: bool = False) -> Prediction:
        if probabilities and not hasattr(self.model, "predict_proba"):
            raise InvalidInput("this model gives no class probabilities (it has no predict_proba)")
        if self._tabular and self._contract is not None:
            import pandas as pd  # only DataFrame models pay for pandas

            features: Any = pd.DataFrame({name: inputs[name] for name in self._contract.names})
        else:
            features = next(iter(inputs.values()))
        # The runtime has already refused NaN/Inf unless the manifest allows them, and estimators
        # that take NaN natively do not run the finiteness check anyway. Two set_config calls
        # rather than config_context, which copies and restores every option (about 10 µs).
        finite_before = sklearn.get_config()["assume_finite"]
        sklearn.set_config(assume_finite=True)
        try:
            result = Prediction(outputs={"predictions": np.asarray(self.model.predict(features))})
            if probabilities:
                result.probabilities = np.asarray(self.model.predict_proba(features))
                result.classes = self.classes
        finally:
            sklearn.set_config(assume_finite=finite_before)
        return result

    @property
    def versions(self) -> dict[str, str]:
        return {"scikit-learn": sklearn.__version__, "numpy": np.__version__}

    @property
    def classes(self) -> list[Any] | None:
        found = getattr(self.model, "classes_", None)
        return None if found is None else np.asarray(found).tolist()


def _load(path: Path, options: LoadOptions) -> Any:
    name = path.name.lower()
    try:
        if name.endswith(".skops"):
            import skops.io  # only skops files pay for it: it imports torch when torch is installed

            untrusted: list[str] = skops.io.get_untrusted_types(file=path)
            unsafe = [t for t in untrusted if t.split(".", 1)[0] not in _SAFE_SKOPS_ROOTS]
            if unsafe and not options.trusted:
                raise ModelLoadFailed(
                    f"cannot load sklearn model {path}: the skops file holds types that are not trusted by "
                    f'default ({", ".join(unsafe)}); mark the model "trusted": true in serveml.json to load it',
                    path=str(path),
                    untrusted_types=unsafe,
                )
            return skops.io.load(path, trusted=untrusted)
        if name.endswith(".gz"):
            with gzip.open(path, "rb") as stream:
                return joblib.load(stream)
        return joblib.load(path)
    except ModelLoadFailed:
        raise
    except Exception as exc:
        raise ModelLoadFailed(f"cannot load sklearn model {path}: {exc}", path=str(path), cause=str(exc)) from exc


def _contract_of(model: Any) -> Contract | None:
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        strings = _string_columns(model)
        return Contract.of(TensorSpec(str(n), "string" if n in strings else "float64", (-1,)) for n in names)
    n_features = getattr(model, "n_features_in_", None)
    if isinstance(n_features, int | np.integer):
        return Contract.of([TensorSpec("input", "float64", (-1, int(n_features)))])
    return None


def _string_columns(model: Any) -> set[str]:
    """Columns a ColumnTransformer (alone or first in a Pipeline) sends to an encoder fitted on strings."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    first = model.steps[0][1] if isinstance(model, Pipeline) else model
    if not isinstance(first, ColumnTransformer):
        return set()
    names = list(getattr(model, "feature_names_in_", []))
    found: set[str] = set()
    for _, transformer, columns in first.transformers_:
        encoder = transformer.steps[0][1] if isinstance(transformer, Pipeline) else transformer
        if not isinstance(encoder, OneHotEncoder | OrdinalEncoder) or not isinstance(columns, list | tuple):
            continue
        for column, categories in zip(columns, encoder.categories_, strict=False):
            if np.asarray(categories).dtype.kind in "OUS":
                found.add(names[column] if isinstance(column, int | np.integer) else str(column))
    return found
