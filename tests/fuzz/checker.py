"""What every answer of ``Service.handle`` must be, whatever it was sent.

``check`` raises ``AssertionError`` unless the result is encoded JSON that is either a documented
error envelope or a well-formed answer (prediction, v2 outputs, warm-up, health), and, for HTTP
events, a proxy response whose status agrees with the body.

Client input is the whole event: any invoker can send any JSON to the function, and an HTTP
caller controls the body, method and path. So no answer may be ``INTERNAL_ERROR``, an init code,
or any other 5xx than the model's own: ``PREDICTION_FAILED`` (the framework raised on input that
passed validation, documented as 500) and ``TIMEOUT`` (504).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from runtime.contract import Contract
from runtime.errors import ERROR_CODES, InitError

#: The only 5xx codes an answer may carry: the model's, never the runtime's.
MODEL_FAILURE_CODES = frozenset({"PREDICTION_FAILED", "TIMEOUT"})
#: Codes that must never answer an invocation, whatever it holds.
FORBIDDEN_CODES = frozenset(
    {"INTERNAL_ERROR"} | {code for code, cls in ERROR_CODES.items() if issubclass(cls, InitError)}
)


@dataclass(frozen=True)
class Outcome:
    """What an answer was: ``kind`` is prediction, v2, warmed, health or error; ``code`` the error's."""

    kind: str
    status: int
    body: dict[str, Any]
    code: str | None = None


def _strict_json(text: str | bytes) -> Any:
    def refuse(token: str) -> Any:
        raise AssertionError(f"the answer holds a bare {token}, which is not JSON")

    return json.loads(text, parse_constant=refuse)


def check(result: Any, *, http: bool, rows: int | None = None) -> Outcome:  # noqa: PLR0912
    """Check one answer; ``rows`` (when known) is how many instances the request held."""
    assert isinstance(result, bytes), f"handle returned {type(result).__name__}, not bytes"
    decoded = _strict_json(result)
    if http:
        assert isinstance(decoded, dict), f"an HTTP answer must be a proxy response object, got {decoded!r:.200}"
        assert set(decoded) >= {"statusCode", "headers", "body", "isBase64Encoded"}, (
            f"an HTTP answer must be a proxy response, got keys {sorted(decoded)}"
        )
        assert decoded["isBase64Encoded"] is False
        assert decoded["headers"].get("Content-Type") == "application/json"
        status = decoded["statusCode"]
        assert isinstance(status, int), status
        assert isinstance(decoded["body"], str)
        body = _strict_json(decoded["body"])
    else:
        body = decoded
        status = 0  # known from the error code below, else 200
    assert isinstance(body, dict), f"the answer must be a JSON object, got {body!r:.200}"

    if "error" in body:
        error = body["error"]
        assert isinstance(error, dict), f"bad envelope {body!r:.300}"
        assert set(error) == {"code", "message", "details"}, f"bad envelope {body!r:.300}"
        code = error["code"]
        assert code in ERROR_CODES, f"undocumented error code {code!r}"
        assert code not in FORBIDDEN_CODES, f"{code} answered client input: {error['message']!r:.500}"
        assert isinstance(error["message"], str), f"{code} without a message"
        assert error["message"].strip(), f"{code} without a message"
        assert isinstance(error["details"], dict)
        expected_status = ERROR_CODES[code].status
        if http:
            assert status == expected_status, f"{code} came with HTTP {status}, documented {expected_status}"
        status = expected_status
        assert status < 500 or code in MODEL_FAILURE_CODES, f"a {status} for client input: {code}"
        return Outcome("error", status, body, code)

    if http:
        assert status == 200, f"HTTP {status} without an error envelope: {body!r:.300}"
    status = 200
    if "predictions" in body:
        predictions = body["predictions"]
        assert isinstance(predictions, list), f"predictions must be a list, got {predictions!r:.200}"
        assert isinstance(body.get("model"), dict), "a prediction without its model"
        assert {"name", "version", "framework"} <= set(body["model"])
        if rows is not None:
            assert len(predictions) == rows, f"{len(predictions)} predictions for {rows} rows"
        for name, values in (body.get("outputs") or {}).items():
            assert rows is None or len(values) == rows, f"output {name!r}: {len(values)} values for {rows} rows"
        if "probabilities" in body:
            assert rows is None or len(body["probabilities"]) == rows
        return Outcome("prediction", status, body)
    if "outputs" in body:
        outputs = body["outputs"]
        assert isinstance(outputs, list), f"v2 outputs must be a non-empty list: {body!r:.300}"
        assert outputs, f"v2 outputs must be a non-empty list: {body!r:.300}"
        assert {"model_name", "model_version"} <= set(body)
        for output in outputs:
            assert set(output) >= {"name", "shape", "datatype", "data"}, output.keys()
            assert len(output["data"]) == math.prod(output["shape"]), f"output {output['name']!r}: data != shape"
            assert rows is None or output["shape"][0] == rows, f"output {output['name']!r}: {output['shape']} rows"
        return Outcome("v2", status, body)
    if body.get("warmed") is True:
        return Outcome("warmed", status, body)
    if body.get("status") == "ok" and body.get("loaded") is True:
        return Outcome("health", status, body)
    raise AssertionError(f"neither an answer nor an error envelope: {body!r:.300}")


def _depth(value: Any) -> int:
    depth = 0
    while isinstance(value, list) and value:
        depth, value = depth + 1, value[0]
    return depth + (1 if isinstance(value, list) else 0)


def rows_sent(body: Any, contract: Contract) -> int | None:  # noqa: PLR0911
    """How many instances an accepted request held, worked out independently of the runtime;
    ``None`` for what is no request (warm-up, health)."""
    if not isinstance(body, dict):
        return None
    if "inputs" in body:
        first = body["inputs"][0]
        return int(first["shape"][0])
    value = body.get("instances", body.get("data"))
    if value is None:
        return None
    rank = 1 if contract.tabular else len(contract.inputs[0].shape)
    if isinstance(value, dict):
        column = next(iter(value.values()))
        return len(column) if _depth(column) == rank else 1
    if value and all(isinstance(item, dict) for item in value):
        return len(value)
    if contract.tabular:
        return len(value) if _depth(value) == 2 else 1
    return len(value) if _depth(value) == rank else 1


def same_answer(got: Any, expected: Any) -> bool:
    """Predictions equal to the model's own: labels exactly, numbers to float32 precision."""
    try:
        import numpy as np

        got_array, expected_array = np.asarray(got), np.asarray(expected)
        if got_array.dtype.kind in "biuf" and expected_array.dtype.kind in "biuf":
            return got_array.shape == expected_array.shape and bool(
                np.allclose(got_array, expected_array, rtol=1e-5, atol=1e-6)
            )
    except ValueError:
        pass
    return bool(got == expected)
