"""The models and inputs each latency case runs on, built at bench time (no committed binaries).

Every framework is imported inside the builder of its case, so a quick run never imports torch or
TensorFlow.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: The iris manifest of tests/functional/conftest.py's write_iris: labels make ServeML map classes
#: to names, which is what a user serving iris would configure.
_IRIS_MANIFEST: dict[str, Any] = {
    "name": "iris",
    "version": "1.2.3",
    "training_date": "2026-12-01",
    "metrics": {"accuracy": 0.97},
    "labels": {"0": "setosa", "1": "versicolor", "2": "virginica"},
    "max_batch_rows": 10000,
}
_FEATURES = 30
_HIDDEN = 64
_MLP_INPUTS = [{"name": "input", "dtype": "float32", "shape": [-1, _FEATURES]}]


@dataclass
class Case:
    name: str
    kind: str  # the loader in bench.handlers: sklearn, torchscript, keras, onnx
    model_file: Path
    rows: list[list[float]]
    repetitions: int

    @property
    def model_dir(self) -> Path:
        return self.model_file.parent


def _write(directory: Path, filename: str, manifest: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "serveml.json").write_text(json.dumps(manifest))
    return directory / filename


def _one_row(seed: int = 2) -> list[list[float]]:
    return np.round(np.random.default_rng(seed).normal(size=(1, _FEATURES)), 4).tolist()


def iris_case(directory: Path, repetitions: int) -> Case:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    path = _write(directory, "model.joblib", _IRIS_MANIFEST)
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), path)
    return Case("iris LogisticRegression, 1 row", "sklearn", path, [[5.1, 3.5, 1.4, 0.2]], repetitions)


def batch_case(directory: Path, rows: int, repetitions: int) -> Case:
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    x, y = make_classification(n_samples=2000, n_features=_FEATURES, random_state=0)
    path = _write(directory, "model.joblib", {"name": "random30", "version": "1.0.0", "max_batch_rows": rows})
    joblib.dump(LogisticRegression(max_iter=1000).fit(x, y), path)
    # Rounded to 4 decimals, as a client would send them: full float64 reprs would put 10,000 x 30
    # values over Lambda's 6 MB synchronous payload limit.
    batch = np.round(np.random.default_rng(1).normal(size=(rows, _FEATURES)), 4).tolist()
    return Case(f"random LogisticRegression, {rows:,} x {_FEATURES} batch", "sklearn", path, batch, repetitions)


def forest_case(directory: Path, repetitions: int) -> Case:
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    x, y = make_classification(n_samples=2000, n_features=_FEATURES, random_state=0)
    forest = RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0, n_jobs=1).fit(x, y)
    path = _write(directory, "model.joblib", {"name": "forest", "version": "1.0.0"})
    joblib.dump(forest, path)
    return Case("sklearn RandomForest (100 trees), 1 row", "sklearn", path, _one_row(), repetitions)


def _mlp_weights() -> list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]:
    """One MLP (30 -> 64 -> 64 -> 2, ReLU) for every framework: the same weights everywhere."""
    rng = np.random.default_rng(0)
    sizes = [_FEATURES, _HIDDEN, _HIDDEN, 2]
    return [
        (rng.normal(scale=0.2, size=(m, n)).astype(np.float32), rng.normal(scale=0.1, size=n).astype(np.float32))
        for m, n in itertools.pairwise(sizes)
    ]


def torchscript_case(directory: Path, repetitions: int) -> Case:
    import warnings

    import torch
    from torch import nn

    layers: list[nn.Module] = []
    for index, (weight, bias) in enumerate(_mlp_weights()):
        linear = nn.Linear(*weight.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(weight.T.copy()))
            linear.bias.copy_(torch.from_numpy(bias))
        layers += [linear] if index == 2 else [linear, nn.ReLU()]
    path = _write(directory, "model.pt", {"name": "mlp", "version": "1.0.0", "inputs": _MLP_INPUTS})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated upstream, still served
        torch.jit.save(torch.jit.script(nn.Sequential(*layers).eval()), str(path))
    return Case("TorchScript MLP 30-64-64-2, 1 row", "torchscript", path, _one_row(), repetitions)


def keras_case(directory: Path, repetitions: int) -> Case:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    weights = _mlp_weights()
    inputs = keras.Input(shape=(_FEATURES,), name="input")
    hidden = inputs
    for index, (weight, _) in enumerate(weights):
        hidden = keras.layers.Dense(weight.shape[1], activation=None if index == 2 else "relu")(hidden)
    model = keras.Model(inputs, hidden, name="mlp")
    model.set_weights([array for pair in weights for array in pair])
    path = _write(directory, "model.keras", {"name": "mlp", "version": "1.0.0"})
    model.save(path)
    return Case("Keras MLP 30-64-64-2, 1 row", "keras", path, _one_row(), repetitions)


def onnx_case(directory: Path, repetitions: int) -> Case:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, initializers, current = [], [], "input"
    for index, (weight, bias) in enumerate(_mlp_weights()):
        initializers += [numpy_helper.from_array(weight, f"w{index}"), numpy_helper.from_array(bias, f"b{index}")]
        out = "output" if index == 2 else f"h{index}"
        gemm = f"g{index}" if index < 2 else out
        nodes.append(helper.make_node("Gemm", [current, f"w{index}", f"b{index}"], [gemm]))
        if index < 2:
            nodes.append(helper.make_node("Relu", [gemm], [out]))
        current = out
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", _FEATURES])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 2])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = _write(directory, "model.onnx", {"name": "mlp", "version": "1.0.0"})
    path.write_bytes(model.SerializeToString())
    return Case("ONNX MLP 30-64-64-2, 1 row", "onnx", path, _one_row(), repetitions)
