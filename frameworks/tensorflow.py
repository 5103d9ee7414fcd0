"""TensorFlow models: Keras .keras / .h5 files and SavedModel directories."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

# TensorFlow reads this once, on import: keep its C++ start-up chatter out of the function logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

from frameworks.base import Adapter, LoadOptions, Prediction
from runtime.contract import Contract, TensorSpec
from runtime.errors import InvalidInput, ModelLoadFailed


class KerasAdapter(Adapter):
    name = "tensorflow"

    def __init__(self, path: Path, options: LoadOptions) -> None:
        super().__init__(path, options)
        _set_threads(options.threads)
        self.model: Any = None
        self.signature: Any = None
        try:
            if path.is_dir():
                loaded = tf.saved_model.load(str(path))
                signatures = dict(loaded.signatures)
                if "serving_default" not in signatures:
                    raise ModelLoadFailed(
                        f"cannot load tensorflow model {path}: the SavedModel has no 'serving_default' "
                        f"signature; found: {', '.join(signatures) or 'none'}",
                        path=str(path),
                        signatures=list(signatures),
                    )
                self._loaded = loaded  # the signature only holds weak references to the variables
                self.signature = signatures["serving_default"]
                self._contract = _signature_contract(self.signature)
            else:
                self.model = keras.models.load_model(path, compile=False, safe_mode=not options.trusted)
                self._contract = _keras_contract(self.model)
        except ModelLoadFailed:
            raise
        except Exception as exc:
            cause = str(exc)
            hint = ""
            if "safe_mode" in cause:
                hint = ' (the model holds Python code, e.g. a Lambda layer; mark it "trusted": true in serveml.json)'
            raise ModelLoadFailed(
                f"cannot load tensorflow model {path}: {cause}{hint}", path=str(path), cause=cause
            ) from exc

    def predict(self, inputs: Mapping[str, np.ndarray[Any, Any]], *, probabilities: bool = False) -> Prediction:
        if probabilities:
            raise InvalidInput(
                "this model gives no class probabilities; a TensorFlow model returns its raw outputs "
                "(read them as probabilities if its last layer is a softmax)"
            )
        names = self._contract.names if self._contract is not None else tuple(inputs)
        if self.signature is not None:
            result = self.signature(**{n: tf.constant(inputs[n]) for n in names})
            return Prediction(outputs={str(k): _numpy(v) for k, v in result.items()})
        # Calling the model directly: model.predict builds a tf.data pipeline, slow for small batches.
        arrays = [inputs[n] for n in names]
        result = self.model(arrays[0] if len(arrays) == 1 else arrays, training=False)
        if isinstance(result, Mapping):
            return Prediction(outputs={str(k): _numpy(v) for k, v in result.items()})
        if isinstance(result, list | tuple):
            output_names = list(getattr(self.model, "output_names", None) or [])
            if len(output_names) != len(result):
                output_names = [f"output_{i}" for i in range(len(result))]
            return Prediction(outputs={n: _numpy(v) for n, v in zip(output_names, result, strict=True)})
        return Prediction(outputs={"output": _numpy(result)})

    @property
    def versions(self) -> dict[str, str]:
        return {"tensorflow": str(tf.__version__), "keras": str(keras.__version__)}


def _set_threads(threads: int) -> None:
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TensorFlow fixes its thread pools once it has run anything; later models share them


def _spec(name: str, dtype: Any, shape: Any) -> TensorSpec | None:
    try:
        dims = [-1 if d is None else int(d) for d in shape]
        if not dims:
            return None
        dims[0] = -1
        return TensorSpec(name, tf.as_dtype(dtype).name, tuple(dims))
    except (ValueError, TypeError):
        return None  # unknown rank, or a dtype the contract cannot name: the manifest must say


def _signature_contract(signature: Any) -> Contract | None:
    _, kwargs = signature.structured_input_signature
    specs = [
        _spec(name, s.dtype, s.shape.as_list() if s.shape.rank is not None else None) for name, s in kwargs.items()
    ]
    return None if not specs or None in specs else Contract.of(s for s in specs if s is not None)


def _keras_contract(model: Any) -> Contract | None:
    try:
        tensors = list(model.inputs)
    except (AttributeError, ValueError):
        return None  # a subclassed model that was never called has no symbolic inputs
    specs = [_spec(_input_name(t), t.dtype, t.shape) for t in tensors]
    return None if not specs or None in specs else Contract.of(s for s in specs if s is not None)


def _input_name(tensor: Any) -> str:
    # A Sequential model's input tensors get process-wide counters as names ("keras_tensor_12");
    # the InputLayer's name is the one saved in the file.
    history = getattr(tensor, "_keras_history", None)
    operation = getattr(history, "operation", None)
    return str(getattr(operation, "name", None) or tensor.name)


def _numpy(value: Any) -> np.ndarray[Any, Any]:
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)
