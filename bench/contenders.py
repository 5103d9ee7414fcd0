"""The four ways to answer the same request, each as a zero-argument call that returns the
response a Lambda would send back (so a contender that skips work shows up in the check)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from fastapi import FastAPI
from mangum import Mangum
from pydantic import BaseModel

from runtime.context import LocalContext
from runtime.service import load_service

EVENTS = Path(__file__).resolve().parents[1] / "events"

#: Names in report order. ServeML runs twice: on the direct payload (compared with the minimal
#: handler and the bare predict) and on the HTTP API v2 event (compared with FastAPI + Mangum).
SERVEML = "serveml (direct)"
SERVEML_HTTP = "serveml (http v2)"
MINIMAL = "(a) minimal handler"
FASTAPI = "(b) fastapi + mangum"
FLOOR = "(c) predict only"
NAMES = (SERVEML, SERVEML_HTTP, MINIMAL, FASTAPI, FLOOR)
#: (ratio label, ServeML contender, the contender it is divided by)
RATIOS = (("serveml/a", SERVEML, MINIMAL), ("serveml/b", SERVEML_HTTP, FASTAPI), ("serveml/c", SERVEML, FLOOR))

Call = Callable[[], Any]


def http_v2_event(payload: dict[str, Any]) -> dict[str, Any]:
    """events/http_api_v2.json with ``payload`` as its body."""
    event: dict[str, Any] = json.loads((EVENTS / "http_api_v2.json").read_text())
    event["body"] = json.dumps(payload)
    return event


def minimal_handler(model: Any) -> Callable[[dict[str, Any], Any], str]:
    """The handler of AWS's Lambda inference samples: parse, array, predict, dump."""

    def handler(event: dict[str, Any], context: Any) -> str:
        payload = json.loads(event["body"]) if "body" in event else event
        x = np.array(payload["data"])
        return json.dumps({"predictions": model.predict(x).tolist()})

    return handler


class PredictRequest(BaseModel):
    """The FastAPI app's request body. At module level: with postponed annotations, FastAPI can
    only resolve a body model it can find in the module's globals."""

    data: list[list[float]]


def fastapi_handler(model: Any) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """A FastAPI app behind Mangum, the usual way to put a web framework on Lambda."""
    app = FastAPI()

    @app.post("/predict")
    def predict(request: PredictRequest) -> dict[str, Any]:
        return {"predictions": model.predict(np.array(request.data)).tolist()}

    # lifespan off: the app has no startup hooks, and Lambda gives no shutdown to run them in
    return Mangum(app, lifespan="off")


def build(model_dir: Path, rows: list[list[float]]) -> dict[str, Call]:
    """The four contenders on the model in ``model_dir`` and the request ``{"data": rows}``.

    ServeML and the minimal handler get the same direct payload; ServeML and the FastAPI app get
    the same HTTP API v2 event.
    """
    model = joblib.load(model_dir / "model.joblib")
    service = load_service(model_dir)
    minimal = minimal_handler(model)
    mangum = fastapi_handler(model)
    direct = {"data": rows}
    event = http_v2_event(direct)
    array = np.array(rows)
    # One context per contender made up front: a fresh uuid each call would time the context, not
    # the handler, and LocalContext's 300 s deadline outlasts any case here.
    context = LocalContext()
    return {
        SERVEML: lambda: service.handle(direct, context),
        MINIMAL: lambda: minimal(direct, context),
        FASTAPI: lambda: mangum(event, context),
        SERVEML_HTTP: lambda: service.handle(event, context),
        FLOOR: lambda: model.predict(array),
    }


def predictions(name: str, result: Any) -> list[Any]:
    """The predictions inside one contender's response."""
    if name == FLOOR:
        return list(result.tolist())
    decoded = json.loads(result)
    if isinstance(decoded, dict) and "statusCode" in decoded:
        decoded = json.loads(decoded["body"])
    if not isinstance(decoded, dict) or "predictions" not in decoded:
        raise AssertionError(f"{name} answered without predictions: {str(decoded)[:300]}")
    return list(decoded["predictions"])


def check_agree(calls: dict[str, Call], model_dir: Path) -> None:
    """Every contender must give the same predictions (ServeML names classes from the manifest's
    labels), so that none is fast because it answered something else."""
    labels: dict[str, str] = json.loads((model_dir / "serveml.json").read_text()).get("labels", {})
    answers = {}
    for name, call in calls.items():
        result = call()
        if name == FASTAPI:
            result = result["body"] if result.get("statusCode") == 200 else json.dumps(result)
        answers[name] = [labels.get(str(p), str(p)) for p in predictions(name, result)]
    reference = answers[FLOOR]
    for name, got in answers.items():
        if got != reference:
            raise AssertionError(f"{name} disagrees with the bare predict: {got[:5]} vs {reference[:5]}")
