"""Hypothesis strategies for invocations of one served model.

A ``Case`` is an event as the Lambda runtime would hand it to the handler, after the event's own
JSON has been parsed the way the runtime parses it (``runtime.transport.loads``, which the
marshaller uses): events whose JSON the runtime refuses never reach the handler (awslambdaric
answers ``Runtime.UnmarshalError``), and are counted as refused.

About a third of the cases are valid requests in every documented form (data, instances, rows as
objects, named inputs, one row, v2) and over every transport, whose answer must equal the model's
own; a third are those requests mutated in one to three places (wrong types, NaN/Inf, huge and
tiny numbers, ragged rows, missing and extra fields, unicode and empty keys, deep nesting), which
reach deep into validation; the rest are arbitrary JSON, broken bodies (not JSON, truncated or
invalid base64, bare NaN tokens, 1e400, lone surrogates, hundreds of nesting levels) and odd
routing (methods, paths, warm-up and health flags of the wrong type).
"""

from __future__ import annotations

import base64
import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from runtime.contract import Contract

EVENTS = Path(__file__).resolve().parents[2] / "events"
TEMPLATES = {
    "apigw_v1": "apigw_v1",
    "http_api_v2": "http_api_v2",
    "function_url": "function_url",
    "alb": "alb",
}


def template(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{TEMPLATES[name]}.json").read_text())
    return event


@dataclass
class Case:
    """One invocation: the event's JSON text as the runtime receives it (or the event itself
    when ``text`` is None), whether it is HTTP-shaped, and what a correct answer is when known."""

    event: Any
    http: bool
    text: str | None = None
    request: Any = None  # the decoded request body, when the case knows it
    expected: list[Any] | None = None  # the model's own answer for a valid request
    origin: str = ""
    notes: dict[str, Any] = field(default_factory=dict)


# -- values ---------------------------------------------------------------------------------------

SPECIAL_NUMBERS: list[Any] = [
    math.nan,
    math.inf,
    -math.inf,
    1e308,
    -1e308,
    1.7976931348623157e308,
    1e-320,
    5e-324,
    -0.0,
    0,
    3.5e38,  # just over float32's range
    2**53 + 1,
    2**63,
    2**64,
    -(2**63) - 1,
    10**400,  # beyond float64: an int that no float holds
]
#: Number tokens written into JSON text as they are (not all are JSON).
NUMBER_TOKENS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-400", "1e308", "1e-320", "-0", "1" + "0" * 400]

keys = st.one_of(
    st.sampled_from(["", " ", "data", "instances", "inputs", "input", "a", "b", "colour", "probabilities", "warmup"]),
    st.sampled_from(["health", "parameters", "id", "outputs", "name", "shape", "datatype", "DATA", "données", "ключ"]),
    st.sampled_from(["🙂", "\u0000", "\u200b", "a" * 300, "sepal_length", "petal_length", "__proto__"]),
    st.text(max_size=8),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(SPECIAL_NUMBERS),
    st.text(max_size=10),
    st.sampled_from(["", "1.0", "NaN", "Infinity", "red", "green", "blue", "FP32", "true", "null"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(keys, children, max_size=5)),
    max_leaves=25,
)


def nest(value: Any, depth: int) -> Any:
    for _ in range(depth):
        value = [value]
    return value


# -- valid requests -------------------------------------------------------------------------------


def _columns(contract: Contract, rows: list[list[Any]]) -> dict[str, list[Any]]:
    """The zoo's flat rows split into one value list per contract input (row-major)."""
    out: dict[str, list[Any]] = {}
    start = 0
    for spec in contract.inputs:
        width = math.prod(spec.row_shape) if spec.row_shape else 1
        if contract.tabular:
            out[spec.name] = [row[start] for row in rows]
        else:
            out[spec.name] = [row[start : start + width] for row in rows]
        start += width
    return out


_V2 = {"float64": "FP64", "float32": "FP32", "string": "BYTES", "int64": "INT64"}


@st.composite
def valid_requests(  # noqa: PLR0912
    draw: st.DrawFn, contract: Contract, rows: list[list[Any]], expected: list[Any]
) -> tuple[Any, Any]:
    """A request the model must answer, in one of the documented forms, and the answer."""
    chosen = draw(st.lists(st.integers(0, len(rows) - 1), min_size=1, max_size=len(rows)))
    picked = [rows[i] for i in chosen]
    answer = [expected[i] for i in chosen]
    columns = _columns(contract, picked)
    names = [s.name for s in contract.inputs]
    single = len(names) == 1 and not contract.tabular
    forms = ["instances-objects", "data-named", "v2"]
    if single or contract.tabular:
        forms += ["data", "instances"]
    if len(picked) == 1:
        forms += ["data-one-row"] if (single or contract.tabular) else []
        forms += ["data-named-one-row"]
    form = draw(st.sampled_from(forms))
    body: dict[str, Any]
    if form == "data":
        body = {"data": picked}
    elif form == "instances":
        body = {"instances": picked}
    elif form == "data-one-row":
        body = {"data": picked[0]}
    elif form == "instances-objects":
        body = {"instances": [{n: columns[n][i] for n in names} for i in range(len(picked))]}
    elif form == "data-named":
        body = {"data": columns}
    elif form == "data-named-one-row":
        body = {"data": {n: columns[n][0] for n in names}}
    else:
        inputs = []
        for spec in contract.inputs:
            values = columns[spec.name]
            flat = [v for row in values for v in row] if not contract.tabular else values
            shape = [len(picked), *spec.row_shape]
            datatype = _V2[spec.dtype] if spec.dtype != "float32" else draw(st.sampled_from(["FP32", "FP64"]))
            inputs.append({"name": spec.name, "shape": shape, "datatype": datatype, "data": flat})
        body = {"inputs": draw(st.permutations(inputs))}
        if draw(st.booleans()):
            body["id"] = draw(st.text(max_size=12))
    if draw(st.integers(0, 4)) == 0:
        body["probabilities"] = False
    if draw(st.integers(0, 6)) == 0:
        body["parameters"] = {}
    return body, answer


# -- mutations ------------------------------------------------------------------------------------


def _paths(tree: Any, prefix: tuple[Any, ...] = (), limit: int = 200) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = [prefix]
    pending = [(prefix, tree)]
    while pending and len(found) < limit:
        path, node = pending.pop()
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in children:
            found.append((*path, key))
            pending.append(((*path, key), child))
    return found


def _get(tree: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


MUTATIONS = (
    "special-number",
    "any-json",
    "delete",
    "duplicate",
    "append",
    "extra-key",
    "wrap",
    "deep-wrap",
    "unwrap",
    "to-string",
    "to-object",
    "empty",
    "null",
    "rename-key",
)


@st.composite
def mutated(draw: st.DrawFn, tree: Any) -> Any:  # noqa: PLR0912
    """``tree`` changed in one to three places."""
    tree = copy.deepcopy(tree)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(tree)
        path = draw(st.sampled_from(paths))
        node = _get(tree, path)
        operation = draw(st.sampled_from(MUTATIONS))
        if operation == "special-number":
            new: Any = draw(st.sampled_from(SPECIAL_NUMBERS))
        elif operation == "any-json":
            new = draw(json_values)
        elif operation == "delete" and path:
            parent = _get(tree, path[:-1])
            del parent[path[-1]]
            continue
        elif operation == "duplicate" and isinstance(node, list) and node:
            new = [*node, copy.deepcopy(node[draw(st.integers(0, len(node) - 1))])]
        elif operation == "append" and isinstance(node, list):
            new = [*node, draw(scalars)]
        elif operation == "extra-key" and isinstance(node, dict):
            new = {**node, draw(keys): draw(json_values)}
        elif operation == "rename-key" and isinstance(node, dict) and node:
            old = draw(st.sampled_from(sorted(node)))
            new = {(draw(keys) if k == old else k): v for k, v in node.items()}
        elif operation == "wrap":
            new = [node]
        elif operation == "deep-wrap":
            new = nest(node, draw(st.integers(30, 400)))
        elif operation == "unwrap" and isinstance(node, list) and node:
            new = node[0]
        elif operation == "to-string":
            new = json.dumps(node, allow_nan=True)
        elif operation == "to-object" and isinstance(node, list):
            new = {str(i): v for i, v in enumerate(node)}
        elif operation == "empty":
            new = [] if isinstance(node, list) else {} if isinstance(node, dict) else ""
        else:
            new = None
        if not path:
            tree = new
        else:
            _get(tree, path[:-1])[path[-1]] = new
    return tree


# -- bodies as text -------------------------------------------------------------------------------


def dumps(value: Any, *, ascii_only: bool = True) -> str:
    """JSON text as Python's json writes it: bare NaN/Infinity, integers of any size."""
    return json.dumps(value, allow_nan=True, ensure_ascii=ascii_only)


@st.composite
def broken_texts(draw: st.DrawFn, valid_text: str) -> str:  # noqa: PLR0911, PLR0912
    """JSON text that is not quite JSON, or JSON of the wrong kind."""
    choice = draw(st.integers(0, 9))
    if choice == 0:  # truncated
        return valid_text[: draw(st.integers(0, max(len(valid_text) - 1, 0)))]
    if choice == 1:  # a number token swapped for NaN, Infinity, 1e400, ...
        digits = [i for i, c in enumerate(valid_text) if c.isdigit()]
        if digits:
            at = draw(st.sampled_from(digits))
            end = at
            while end < len(valid_text) and (valid_text[end].isdigit() or valid_text[end] in ".eE+-"):
                end += 1
            return valid_text[:at] + draw(st.sampled_from(NUMBER_TOKENS)) + valid_text[end:]
        return valid_text
    if choice == 2:  # lone and paired surrogate escapes in a string or a key
        escape = draw(st.sampled_from(["\\ud800", "\\udfff", "\\ud83d\\ude00", "\\udc00\\ud800", "\\u0000"]))
        quote = [i for i, c in enumerate(valid_text) if c == '"']
        if quote:
            at = draw(st.sampled_from(quote))
            return valid_text[: at + 1] + escape + valid_text[at + 1 :]
        return f'{{"{escape}": 1}}'
    if choice == 3:  # hundreds (or over a thousand) levels of nesting
        depth = draw(st.sampled_from([100, 500, 990, 1100, 5000]))
        inner = draw(st.sampled_from(["1.0", "[]", "{}", '"x"', "NaN"]))
        text = "[" * depth + inner + "]" * depth
        return draw(st.sampled_from([text, f'{{"data": {text}}}', f'{{"instances": {text}}}']))
    if choice == 4:
        return draw(st.sampled_from(["", " ", "null", "[]", "{}", '"data"', "1e400", "NaN", "true", "{", "}", "\x00"]))
    if choice == 5:  # a second document, trailing commas, comments, single quotes
        return draw(
            st.sampled_from(
                [valid_text + valid_text, valid_text + ",", valid_text.replace('"', "'"), "// x\n" + valid_text]
            )
        )
    if choice == 6:
        return draw(st.text(max_size=40))
    if choice == 7:
        return dumps(draw(json_values), ascii_only=draw(st.booleans()))
    if choice == 8:  # duplicate keys: the last one wins in every parser
        if not valid_text.endswith("}"):
            return valid_text
        return valid_text[:-1] + ', "data": ' + dumps(draw(json_values)) + "}"
    return valid_text.replace(":", ": " * draw(st.integers(1, 3)))  # harmless whitespace


# -- transports -----------------------------------------------------------------------------------

HTTP_KINDS = ("apigw_v1", "http_api_v2", "function_url", "alb")
METHODS = ["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "post", "Get", "", None, 123, ["POST"]]
PATHS = ["/", "/predict", "/health", "/health/", "/warmup", "/x/health", "//", "", "/predict/../health", "/ü", None, 7]


def _set_route(event: dict[str, Any], kind: str, method: Any, path: Any) -> None:
    if kind in ("http_api_v2", "function_url"):
        event["requestContext"]["http"]["method"] = method
        event["rawPath"] = path
    else:
        event["httpMethod"] = method
        event["path"] = path


@st.composite
def http_event(draw: st.DrawFn, body_text: str, *, valid: bool) -> dict[str, Any]:
    """``body_text`` in an HTTP event of one kind; with ``valid`` false, also odd routing,
    base64 that does not decode, and fields missing, added or of the wrong type."""
    kind = draw(st.sampled_from(HTTP_KINDS))
    event = template(kind)
    encoded = draw(st.booleans())
    raw = body_text.encode("utf-8", "surrogatepass")
    event["body"] = base64.b64encode(raw).decode() if encoded else body_text
    event["isBase64Encoded"] = encoded
    if not valid:
        choice = draw(st.integers(0, 9))
        if choice == 0:  # routing
            method = draw(st.sampled_from([*METHODS, "POST"]))
            _set_route(event, kind, method, draw(st.sampled_from(PATHS)))
        elif choice == 1 and encoded:  # truncated base64
            event["body"] = event["body"][: draw(st.integers(0, max(len(event["body"]) - 1, 0)))]
        elif choice == 2:  # base64 with characters outside the alphabet, or binary that is not UTF-8
            event["isBase64Encoded"] = True
            event["body"] = draw(
                st.sampled_from(
                    [
                        "!!!!",
                        "eyJkYXRhIjpbWzEsMiwzLDRdXX0",  # padding cut
                        "€€€€",
                        base64.b64encode(b"\xff\xfe\x00{").decode(),
                        base64.b64encode(draw(st.binary(max_size=30))).decode(),
                        " " + event["body"],
                    ]
                )
            )
        elif choice == 3:  # the flag of another type
            event["isBase64Encoded"] = draw(st.sampled_from(["true", "false", 1, 0, None, [], {}]))
        elif choice == 4:  # a body that is no string
            event["body"] = draw(st.one_of(st.none(), st.integers(), st.lists(scalars, max_size=3), json_values))
        elif choice == 5:  # a field missing
            present = sorted(event)
            del event[draw(st.sampled_from(present))]
        elif choice == 6:  # a field of the wrong type
            field_name = draw(st.sampled_from(["headers", "requestContext", "path", "rawPath", "httpMethod"]))
            event[field_name] = draw(json_values)
        elif choice == 7:  # extra fields, unicode keys
            event[draw(keys)] = draw(json_values)
        elif choice == 8:  # a warm-up or health route, a GET with a body
            _set_route(event, kind, draw(st.sampled_from(["POST", "GET"])), draw(st.sampled_from(PATHS)))
        else:  # headers of every kind
            event["headers"] = draw(st.one_of(st.dictionaries(keys, scalars, max_size=4), json_values))
    return event


@st.composite
def flag_events(draw: st.DrawFn, good: dict[str, Any]) -> Any:
    """Warm-up and health flags, scheduled events, of right and wrong types, alone or with a request."""
    flag = draw(st.sampled_from(["warmup", "health", "source", "detail-type"]))
    value = draw(st.sampled_from([True, False, "true", 1, None, [], {}, "aws.events", "Scheduled Event"]))
    event: dict[str, Any] = {flag: value}
    if draw(st.booleans()):
        event.update(good)
    return event


# -- the cases ------------------------------------------------------------------------------------


def _with_transport(draw: st.DrawFn, body: Any, *, valid: bool) -> tuple[Any, bool, str | None]:
    """Send ``body`` directly or over HTTP: (event, http?, event JSON text)."""
    if draw(st.booleans()):
        return body, False, dumps(body)
    event = draw(http_event(dumps(body, ascii_only=draw(st.booleans())), valid=valid))
    return event, True, dumps(event)


@st.composite
def cases(draw: st.DrawFn, contract: Contract, rows: list[list[Any]], expected: list[Any]) -> Case:
    """One invocation of a model with ``contract``, whose zoo sample is ``rows`` -> ``expected``."""
    request, answer = draw(valid_requests(contract, rows, expected))
    origin = draw(st.sampled_from(["valid", "valid", "mutated", "mutated", "mutated", "broken", "json", "flags"]))
    if origin == "valid":
        event, http, text = _with_transport(draw, request, valid=True)
        return Case(event, http, text, request=request, expected=answer, origin=origin)
    if origin == "mutated":
        body = draw(mutated(request))
        event, http, text = _with_transport(draw, body, valid=draw(st.integers(0, 3)) > 0)
        return Case(event, http, text, request=body, origin=origin)
    if origin == "broken":
        body_text = draw(broken_texts(dumps(request)))
        if draw(st.booleans()):
            # the event's own JSON broken: what the runtime refuses before the handler, or takes
            return Case(None, False, body_text, origin=origin)
        event = draw(http_event(body_text, valid=draw(st.booleans())))
        return Case(event, True, dumps(event), origin=origin)
    if origin == "json":
        body = draw(st.one_of(json_values, st.dictionaries(keys, json_values, max_size=4)))
        event, http, text = _with_transport(draw, body, valid=False)
        return Case(event, http, text, request=body, origin=origin)
    event = draw(flag_events(request))
    return Case(event, False, dumps(event), request=event, origin=origin)
