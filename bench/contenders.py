"""The ways to answer the same request, each as a zero-argument call.

In-process, each Lambda-style contender gets what the Runtime API hands the runtime (the event
as bytes) and goes through what awslambdaric does with it: unmarshal, call the handler, marshal
the result. The minimal handler and the FastAPI app run with awslambdaric's stock marshaller
(simplejson), as they would be deployed; ServeML with its own (``runtime.marshaller``, which its
handler module installs in Lambda). So the parse is inside every measurement, as in Lambda.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from awslambdaric.lambda_runtime_exception import FaultException
from awslambdaric.lambda_runtime_marshaller import LambdaMarshaller

from bench import handlers
from bench.models import Case
from runtime.context import LocalContext
from runtime.marshaller import Marshaller
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
#: The contenders that go through the Runtime Interface Emulator (the floor has no handler).
RIE_NAMES = (SERVEML, SERVEML_HTTP, MINIMAL, FASTAPI)
#: (ratio label, ServeML contender, the contender it is divided by)
RATIOS = (("serveml/a", SERVEML, MINIMAL), ("serveml/b", SERVEML_HTTP, FASTAPI), ("serveml/c", SERVEML, FLOOR))

Call = Callable[[], Any]


def payloads(rows: list[list[float]]) -> tuple[bytes, bytes]:
    """The direct payload and the HTTP API v2 event (events/http_api_v2.json around the same
    body), as bytes, the way the Runtime API delivers them."""
    direct = json.dumps({"data": rows})
    event: dict[str, Any] = json.loads((EVENTS / "http_api_v2.json").read_text())
    event["body"] = direct
    return direct.encode(), json.dumps(event).encode()


def lambda_call(marshaller: Any, handler: Callable[[Any, Any], Any], body: bytes) -> Call:
    """What awslambdaric does with one event: unmarshal, handle, marshal."""
    context = LocalContext()  # made once: a fresh uuid per call would time the context

    def call() -> Any:
        event = marshaller.unmarshal_request(body)
        return marshaller.marshal_response(handler(event, context))[0]

    return call


def build(case: Case) -> dict[str, Call]:
    """Every contender on ``case``'s model and rows."""
    direct, http = payloads(case.rows)
    service = load_service(case.model_dir)
    predict = handlers.load_predict(case.kind, case.model_file)
    dtype = handlers.DTYPES[case.kind]
    stock, ours = LambdaMarshaller(), Marshaller(FaultException)
    array = np.array(case.rows, dtype=dtype)
    return {
        SERVEML: lambda_call(ours, service.handle, direct),
        MINIMAL: lambda_call(stock, handlers.minimal_handler(predict, dtype), direct),
        FASTAPI: lambda_call(stock, handlers.fastapi_handler(predict, dtype), http),
        SERVEML_HTTP: lambda_call(ours, service.handle, http),
        FLOOR: lambda: predict(array),
    }


def predictions(name: str, result: Any) -> list[Any]:
    """The predictions inside one contender's answer (marshalled bytes, or the floor's array)."""
    if name == FLOOR:
        return list(np.asarray(result).tolist())
    decoded = json.loads(result)
    if isinstance(decoded, str):  # a handler that returns JSON text is encoded once more
        decoded = json.loads(decoded)
    if isinstance(decoded, dict) and "statusCode" in decoded:
        decoded = json.loads(decoded["body"])
    if not isinstance(decoded, dict) or "predictions" not in decoded:
        raise AssertionError(f"{name} answered without predictions: {str(decoded)[:300]}")
    return list(decoded["predictions"])


def check_agree(answers: dict[str, Any], model_dir: Path) -> None:
    """Every contender must give the same predictions (ServeML names classes from the manifest's
    labels; float outputs within 1e-4), so that none is fast because it answered something else."""
    labels: dict[str, str] = json.loads((model_dir / "serveml.json").read_text()).get("labels", {})
    named = {name: [labels.get(str(p), p) for p in predictions(name, result)] for name, result in answers.items()}
    reference = named.get(FLOOR) or named[MINIMAL]
    for name, got in named.items():
        same = (
            np.allclose(np.asarray(got, dtype=float), np.asarray(reference, dtype=float), rtol=1e-4, atol=1e-5)
            if not labels
            else got == reference
        )
        if not same:
            raise AssertionError(f"{name} disagrees with the bare predict: {got[:5]} vs {reference[:5]}")
