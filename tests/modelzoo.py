"""Tiny real models of every supported format, built at test time (no committed binaries).

``build(kind, directory)`` writes one model (and a ``serveml.json`` where the format needs one)
into ``directory`` and returns a ``ZooModel`` with a sample batch and the model's own predictions
for it. Every framework is imported inside its builder, so importing this module is cheap.

``rows`` hold one list of values per instance, in contract order: for tabular models one value
per feature column; otherwise each input's values flattened, inputs concatenated in contract
order (``onnx-multi-input``: ``a`` then ``b``). ``expected`` is the model's primary (first) output.

The pickled torch model's class is ``tests.modelzoo.TinyMLP``; whoever loads that file must be
able to import this module by that name (run from the repository root).
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KINDS: tuple[str, ...] = (
    "sklearn-joblib",
    "sklearn-pkl",
    "sklearn-pkl-gz",
    "sklearn-skops",
    "sklearn-dataframe",
    "onnx",
    "onnx-multi-input",
    "torchscript",
    "torch-export",
    "torch-pickled",
    "keras",
    "h5",
    "savedmodel",
)

#: Kinds made for the builder's tests (``serveml build --optimize onnx``), outside the adapter contract
#: suite: a regressor, and a pipeline with a step skl2onnx has no converter for.
BUILDER_KINDS: tuple[str, ...] = ("sklearn-regressor", "sklearn-unconvertible")

#: Rows of the iris data used as the sample batch: a few of each class.
_SAMPLE = [0, 1, 50, 51, 100]


@dataclass
class ZooModel:
    path: Path
    framework: str
    rows: list[list[Any]]
    expected: list[Any]
    n_features: int


def build(kind: str, directory: Path) -> ZooModel:
    """Write the model ``kind`` (one of ``KINDS``) into ``directory`` and describe it."""
    if kind not in _BUILDERS:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(KINDS + BUILDER_KINDS)}")
    directory.mkdir(parents=True, exist_ok=True)
    return _BUILDERS[kind](directory)


def write_manifest(directory: Path, **fields: Any) -> Path:
    """Write ``serveml.json`` with ``fields`` into ``directory``."""
    path = directory / "serveml.json"
    path.write_text(json.dumps(fields))
    return path


@functools.cache
def _iris() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris

    data = load_iris()
    return data.data, data.target


def _iris_rows() -> list[list[float]]:
    features, _ = _iris()
    return [[float(v) for v in features[i]] for i in _SAMPLE]


@functools.cache
def _iris_classifier() -> Any:
    from sklearn.linear_model import LogisticRegression

    features, target = _iris()
    return LogisticRegression(max_iter=500).fit(features, target)


def _sklearn(directory: Path, filename: str, save: Callable[[Any, Path], None]) -> ZooModel:
    import numpy as np

    model = _iris_classifier()
    path = directory / filename
    save(model, path)
    rows = _iris_rows()
    return ZooModel(path, "sklearn", rows, model.predict(np.asarray(rows)).tolist(), 4)


def _sklearn_joblib(directory: Path) -> ZooModel:
    import joblib

    return _sklearn(directory, "model.joblib", joblib.dump)


def _sklearn_pkl(directory: Path) -> ZooModel:
    def save(model: Any, path: Path) -> None:
        with path.open("wb") as handle:
            pickle.dump(model, handle)

    return _sklearn(directory, "model.pkl", save)


def _sklearn_pkl_gz(directory: Path) -> ZooModel:
    def save(model: Any, path: Path) -> None:
        with gzip.open(path, "wb") as handle:
            pickle.dump(model, handle)

    return _sklearn(directory, "model.pkl.gz", save)


def _sklearn_skops(directory: Path) -> ZooModel:
    import skops.io

    return _sklearn(directory, "model.skops", skops.io.dump)


def _sklearn_dataframe(directory: Path) -> ZooModel:
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    features, target = _iris()
    colours = np.array(["red", "green", "blue"])[(target + np.arange(len(target))) % 3]
    frame = pd.DataFrame({"sepal_length": features[:, 0], "petal_length": features[:, 2], "colour": colours})
    labels = np.array(["setosa", "versicolor", "virginica"])[target]
    model = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), ["sepal_length", "petal_length"]),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["colour"]),
                    ]
                ),
            ),
            ("classify", LogisticRegression(max_iter=500)),
        ]
    ).fit(frame, labels)
    path = directory / "model.joblib"
    joblib.dump(model, path)
    sample = frame.iloc[_SAMPLE]
    rows = [[float(a), float(b), str(c)] for a, b, c in sample.itertuples(index=False)]
    return ZooModel(path, "sklearn", rows, model.predict(sample).tolist(), 3)


def _sklearn_regressor(directory: Path) -> ZooModel:
    import joblib
    import numpy as np
    from sklearn.linear_model import Ridge

    features, _ = _iris()
    # Petal width from the other three measurements: one value per row, as scikit-learn regressors give.
    model = Ridge(alpha=1.0).fit(features[:, :3], features[:, 3])
    path = directory / "model.joblib"
    joblib.dump(model, path)
    rows = [row[:3] for row in _iris_rows()]
    return ZooModel(path, "sklearn", rows, model.predict(np.asarray(rows)).tolist(), 3)


def _sklearn_unconvertible(directory: Path) -> ZooModel:
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    features, target = _iris()
    # skl2onnx converts a FunctionTransformer only when it is the identity.
    model = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=500)).fit(features, target)
    path = directory / "model.joblib"
    joblib.dump(model, path)
    rows = _iris_rows()
    return ZooModel(path, "sklearn", rows, model.predict(np.asarray(rows)).tolist(), 4)


def _onnx(directory: Path) -> ZooModel:
    import numpy as np
    import onnxruntime as ort
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    # Kept with skl2onnx's ZipMap so the adapter's list-of-dicts conversion is exercised.
    onx = convert_sklearn(_iris_classifier(), initial_types=[("input", FloatTensorType([None, 4]))])
    path = directory / "model.onnx"
    path.write_bytes(onx.SerializeToString())
    rows = _iris_rows()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    labels = session.run(None, {"input": np.asarray(rows, dtype=np.float32)})[0]
    return ZooModel(path, "onnx", rows, labels.tolist(), 4)


def _onnx_multi_input(directory: Path) -> ZooModel:
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Add", ["a", "b"], ["sum"]),
            helper.make_node("Concat", ["sum", "b"], ["output"], axis=1),
        ],
        "two_inputs",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 2]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 2]),
        ],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = directory / "model.onnx"
    onnx.save(model, str(path))
    rows = [[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 2.5, 0.0], [-3.0, 7.0, 1.0, 1.0]]
    batch = np.asarray(rows, dtype=np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    output = session.run(None, {"a": batch[:, :2], "b": batch[:, 2:]})[0]
    return ZooModel(path, "onnx", rows, output.tolist(), 4)


def __getattr__(name: str) -> Any:
    # The pickled torch model refers to its class as tests.modelzoo.TinyMLP; made on first use so
    # that importing this module does not import torch.
    if name == "TinyMLP":
        return _tiny_mlp_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _tiny_mlp_class() -> type:
    import torch
    from torch import nn

    class TinyMLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = nn.Linear(4, 8)
            self.out = nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(torch.relu(self.hidden(x)))

    TinyMLP.__module__ = __name__
    TinyMLP.__qualname__ = "TinyMLP"
    return TinyMLP


_TORCH_INPUTS = [{"name": "input", "dtype": "float32", "shape": [-1, 4]}]


def _torch_model() -> tuple[Any, list[list[float]], list[Any]]:
    import torch

    torch.manual_seed(0)
    model = _tiny_mlp_class()().eval()
    rows = _iris_rows()
    with torch.inference_mode():
        expected = model(torch.tensor(rows, dtype=torch.float32)).tolist()
    return model, rows, expected


def _torchscript(directory: Path) -> ZooModel:
    import torch

    model, rows, expected = _torch_model()
    path = directory / "model.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated upstream, still served
        torch.jit.save(torch.jit.script(model), str(path))
    # TorchScript carries no input spec: the manifest gives it.
    write_manifest(directory, inputs=_TORCH_INPUTS)
    return ZooModel(path, "pytorch", rows, expected, 4)


def _torch_export(directory: Path) -> ZooModel:
    import torch

    model, rows, expected = _torch_model()
    example = torch.zeros(2, 4)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    path = directory / "model.pt2"
    torch.export.save(program, path)
    return ZooModel(path, "pytorch", rows, expected, 4)


def _torch_pickled(directory: Path) -> ZooModel:
    import torch

    model, rows, expected = _torch_model()
    path = directory / "model.pt"
    torch.save(model, path)
    write_manifest(directory, trusted=True, inputs=_TORCH_INPUTS)
    return ZooModel(path, "pytorch", rows, expected, 4)


def _keras_model() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    # Seeded initialisers rather than keras.utils.set_random_seed, which reseeds random and numpy globally.
    inputs = keras.Input(shape=(4,), name="input")
    hidden = keras.layers.Dense(
        8, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed=0), name="hidden"
    )(inputs)
    outputs = keras.layers.Dense(
        3, activation="softmax", kernel_initializer=keras.initializers.GlorotUniform(seed=1), name="probabilities"
    )(hidden)
    return keras.Model(inputs, outputs, name="tiny_mlp")


def _keras_file(directory: Path, filename: str) -> ZooModel:
    import numpy as np

    model = _keras_model()
    path = directory / filename
    model.save(path)
    rows = _iris_rows()
    expected = model(np.asarray(rows, dtype=np.float32), training=False).numpy().tolist()
    return ZooModel(path, "tensorflow", rows, expected, 4)


def _keras(directory: Path) -> ZooModel:
    return _keras_file(directory, "model.keras")


def _h5(directory: Path) -> ZooModel:
    return _keras_file(directory, "model.h5")


def _savedmodel(directory: Path) -> ZooModel:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)

    class Scorer(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weights = tf.Variable(rng.normal(size=(4, 3)).astype(np.float32))
            self.bias = tf.Variable(rng.normal(size=(3,)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="input")])
        def serve(self, x: Any) -> dict[str, Any]:
            return {"scores": tf.nn.softmax(tf.matmul(x, self.weights) + self.bias)}

    scorer = Scorer()
    path = directory / "savedmodel"
    tf.saved_model.save(scorer, str(path), signatures={"serving_default": scorer.serve})
    rows = _iris_rows()
    expected = scorer.serve(tf.constant(rows, dtype=tf.float32))["scores"].numpy().tolist()
    return ZooModel(path, "tensorflow", rows, expected, 4)


_BUILDERS: dict[str, Callable[[Path], ZooModel]] = {
    "sklearn-joblib": _sklearn_joblib,
    "sklearn-pkl": _sklearn_pkl,
    "sklearn-pkl-gz": _sklearn_pkl_gz,
    "sklearn-skops": _sklearn_skops,
    "sklearn-dataframe": _sklearn_dataframe,
    "onnx": _onnx,
    "onnx-multi-input": _onnx_multi_input,
    "torchscript": _torchscript,
    "torch-export": _torch_export,
    "torch-pickled": _torch_pickled,
    "keras": _keras,
    "h5": _h5,
    "savedmodel": _savedmodel,
    "sklearn-regressor": _sklearn_regressor,
    "sklearn-unconvertible": _sklearn_unconvertible,
}
