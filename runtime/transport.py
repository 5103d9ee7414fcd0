"""How an invocation arrived: a direct invoke, an HTTP event (API Gateway REST v1, HTTP API v2,
Function URL, ALB) or an EventBridge schedule; and how its answer goes back.

The result of ``parse`` says what the caller wants (predict, warm up, health) and carries the
request body, still encoded for HTTP events so that ``decode_body`` can check its size and parse
it with orjson.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import orjson

from runtime.errors import InvalidJSON, MethodNotAllowed, NotFound, PayloadTooLarge

#: Lambda's limit for a synchronous invocation's payload.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 413: "Payload Too Large"}
_REASONS |= {500: "Internal Server Error", 503: "Service Unavailable", 504: "Gateway Timeout"}


class Action(Enum):
    PREDICT = "predict"
    WARMUP = "warmup"
    HEALTH = "health"


class Source(Enum):
    DIRECT = "direct"
    APIGW_V1 = "apigateway-v1"
    HTTP_V2 = "http-v2"  # HTTP API payload 2.0 and Function URLs
    ALB = "alb"
    SCHEDULE = "schedule"


HTTP_SOURCES = frozenset({Source.APIGW_V1, Source.HTTP_V2, Source.ALB})


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs microseconds per request
class Invocation:
    """What arrived: its source, what it asks for, and its body (a dict for direct invokes)."""

    source: Source
    action: Action
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def is_http(self) -> bool:
        return self.source in HTTP_SOURCES


def source_of(event: Any) -> Source:
    """Where an event came from, from its shape alone."""
    if isinstance(event, dict):
        context = event.get("requestContext")
        if isinstance(context, dict) and isinstance(context.get("http"), dict):
            return Source.HTTP_V2
        if "httpMethod" in event:
            return Source.ALB if isinstance(context, dict) and "elb" in context else Source.APIGW_V1
        if event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event":
            return Source.SCHEDULE
    return Source.DIRECT


def parse(event: Any, source: Source | None = None) -> Invocation:
    """Classify an event (whose ``source`` the caller may know already). Routing errors (wrong
    method, unknown GET path, bad base64) raise here."""
    source = source or source_of(event)
    if source is Source.HTTP_V2:
        return _http(source, event["requestContext"]["http"].get("method"), event.get("rawPath", "/"), event)
    if source in (Source.APIGW_V1, Source.ALB):
        return _http(source, event.get("httpMethod"), event.get("path", "/"), event)
    if source is Source.SCHEDULE:
        return Invocation(source, Action.WARMUP)
    if isinstance(event, dict) and event.get("warmup") is True:
        return Invocation(source, Action.WARMUP)
    if isinstance(event, dict) and event.get("health") is True:
        return Invocation(source, Action.HEALTH)
    return Invocation(source, Action.PREDICT, event)


def _http(source: Source, method: Any, path: Any, event: dict[str, Any]) -> Invocation:
    method = str(method or "").upper()
    path = str(path or "/").rstrip("/") or "/"
    raw_headers = event.get("headers")
    headers = {str(k).lower(): str(v) for k, v in raw_headers.items()} if isinstance(raw_headers, dict) else {}
    if method == "GET":
        if path.endswith("/health") or path == "/health":
            return Invocation(source, Action.HEALTH, headers=headers)
        raise NotFound(f"GET {path} is not a route: GET /health, or POST a prediction", method=method, path=path)
    if method != "POST":
        raise MethodNotAllowed(f"{method} is not allowed: POST a prediction, or GET /health", method=method)
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = _unbase64(body)
    elif isinstance(body, str):
        # a lone surrogate (possible in a str, never in UTF-8) stays undecodable: INVALID_JSON
        body = body.encode("utf-8", "surrogatepass")
    elif not isinstance(body, bytes | bytearray):
        raise InvalidJSON(f"the request body must be a string, got {type(body).__name__}")
    action = Action.WARMUP if path.endswith("/warmup") else Action.PREDICT
    return Invocation(source, action, body, headers)


def _unbase64(body: Any) -> bytes:
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidJSON(f"the request body is marked base64 but does not decode: {exc}") from exc


def decode_body(invocation: Invocation) -> Any:
    """The decoded request body: direct events as they are; HTTP bodies size-checked and parsed."""
    body = invocation.body
    if not invocation.is_http:
        return body
    if len(body) > MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(
            f"the request body is {len(body):,} bytes; the limit is {MAX_PAYLOAD_BYTES:,} (6 MB)",
            size=len(body),
            limit=MAX_PAYLOAD_BYTES,
        )
    if not body:
        raise InvalidJSON('the request body is empty: send a JSON object such as {"data": [[...]]}')
    return loads(body)


def loads(body: bytes | str, what: str = "the request body") -> Any:
    """Parse JSON with orjson; bare NaN/Infinity (Python's json.dumps writes them) are read too, so
    that the NaN check can name the value instead of calling the whole body invalid JSON.

    A lone UTF-16 surrogate (``"\\ud800"``) is refused as orjson refuses it: it is no Unicode
    text, and no response naming it could be encoded."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        import json  # the slow path, for bare NaN/Infinity and integers beyond 64 bits

        try:
            value = json.loads(body)
        except (ValueError, TypeError, RecursionError):
            raise InvalidJSON(f"{what} is not valid JSON: {error}", position=error.pos) from error
        if _may_hold_surrogates(body) and _holds_lone_surrogate(value):
            raise InvalidJSON(f"{what} is not valid JSON: it holds a lone UTF-16 surrogate") from error
        return value


def _may_hold_surrogates(body: bytes | str) -> bool:
    """Whether the text has a surrogate escape (or, as a str, a surrogate itself)."""
    import re

    if isinstance(body, str):
        return re.search(r"\\u[dD][89abcdefABCDEF]|[\ud800-\udfff]", body) is not None
    return re.search(rb"\\u[dD][89abcdefABCDEF]", body) is not None


def _holds_lone_surrogate(value: Any) -> bool:
    """Whether any string or key in the decoded value holds a lone surrogate (pairs were joined)."""
    import re

    surrogate = re.compile("[\ud800-\udfff]")
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if surrogate.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def respond(source: Source, status: int, payload: bytes) -> bytes:
    """The encoded Lambda result: the JSON payload itself, or an HTTP proxy response around it."""
    if source not in HTTP_SOURCES:
        return payload
    response: dict[str, Any] = {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": payload.decode(),
        "isBase64Encoded": False,
    }
    if source is Source.ALB:
        response["statusDescription"] = f"{status} {_REASONS.get(status, '')}".strip()
    return orjson.dumps(response)
