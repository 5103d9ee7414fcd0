"""What a user would otherwise deploy, for any framework: the minimal handler of AWS's Lambda
inference samples (parse, array, predict, dump) and a FastAPI app wrapped by Mangum.

Both call the same ``predict`` the floor (c) calls: the framework's own call on a ready array
(``model.predict`` for scikit-learn, ``model(x)`` for TorchScript and Keras, ``session.run`` for
ONNX), so that no contender is slowed by a slow API it did not have to use.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

Predict = Callable[[np.ndarray[Any, Any]], np.ndarray[Any, Any]]
#: The dtype each framework's model takes; the handlers build their arrays with it.
DTYPES = {"sklearn": "float64", "torchscript": "float32", "keras": "float32", "onnx": "float32"}


def load_predict(kind: str, path: Path) -> Predict:
    """The bare framework call on a ready numpy array, for a model of ``kind`` at ``path``."""
    if kind == "sklearn":
        import joblib

        predict: Predict = joblib.load(path).predict
        return predict
    if kind == "torchscript":
        import torch

        module = torch.jit.load(str(path)).eval()

        def torch_predict(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
            with torch.inference_mode():
                return np.asarray(module(torch.from_numpy(x)).numpy())

        return torch_predict
    if kind == "keras":
        import keras

        model = keras.saving.load_model(path)
        return lambda x: np.asarray(model(x, training=False))
    if kind == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: np.asarray(session.run(None, {name: x})[0])
    raise ValueError(f"no bench loader for {kind!r}")


def minimal_handler(predict: Predict, dtype: str) -> Callable[[dict[str, Any], Any], str]:
    """The handler of AWS's Lambda inference samples: json.loads, np.array, predict, json.dumps."""

    def handler(event: dict[str, Any], context: Any) -> str:
        payload = json.loads(event["body"]) if "body" in event else event
        x = np.array(payload["data"], dtype=dtype)
        return json.dumps({"predictions": predict(x).tolist()})

    return handler


class PredictRequest(BaseModel):
    """The FastAPI app's request body. At module level: with postponed annotations, FastAPI can
    only resolve a body model it can find in the module's globals."""

    data: list[list[float]]


def fastapi_handler(predict: Predict, dtype: str) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """A FastAPI app behind Mangum, the usual way to put a web framework on Lambda."""
    from fastapi import FastAPI
    from mangum import Mangum

    app = FastAPI()

    @app.post("/predict")
    def predict_route(request: PredictRequest) -> dict[str, Any]:
        return {"predictions": predict(np.array(request.data, dtype=dtype)).tolist()}

    # lifespan off: the app has no startup hooks, and Lambda gives no shutdown to run them in
    return Mangum(app, lifespan="off")


def from_environment() -> Callable[[dict[str, Any], Any], Any]:
    """The handler ``bench.lambda_app`` serves under the RIE: BENCH_APP (minimal or fastapi),
    BENCH_KIND and BENCH_MODEL say which, on what."""
    kind = os.environ["BENCH_KIND"]
    predict = load_predict(kind, Path(os.environ["BENCH_MODEL"]))
    make = {"minimal": minimal_handler, "fastapi": fastapi_handler}[os.environ["BENCH_APP"]]
    return make(predict, DTYPES[kind])
