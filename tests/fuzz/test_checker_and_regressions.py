"""The fuzz checker catches wrong answers (so the fuzz tests can fail), and the bugs the fuzzing
found stay fixed: each was an exception escaping into INTERNAL_ERROR, or an undecodable answer."""

from __future__ import annotations

import json

import orjson
import pytest

from runtime import protocol, transport
from runtime.contract import Contract, TensorSpec
from runtime.errors import DtypeMismatch, InvalidJSON, ShapeMismatch
from runtime.transport import Source
from tests.fuzz import checker

PREDICTION = {"predictions": [0, 1], "model": {"name": "m", "version": "1", "framework": "sklearn"}}


def http(status: int, body: dict) -> bytes:
    return transport.respond(Source.APIGW_V1, status, orjson.dumps(body))


def envelope(code: str, message: str = "what went wrong") -> dict:
    return {"error": {"code": code, "message": message, "details": {}}}


def test_the_checker_accepts_right_answers():
    assert checker.check(orjson.dumps(PREDICTION), http=False, rows=2).kind == "prediction"
    assert checker.check(http(400, envelope("SHAPE_MISMATCH")), http=True).code == "SHAPE_MISMATCH"
    assert checker.check(http(500, envelope("PREDICTION_FAILED")), http=True).status == 500


@pytest.mark.parametrize(
    ("result", "is_http", "rows", "complaint"),
    [
        (http(500, envelope("INTERNAL_ERROR")), True, None, "INTERNAL_ERROR answered client input"),
        (orjson.dumps(envelope("INTERNAL_ERROR")), False, None, "INTERNAL_ERROR answered client input"),
        (orjson.dumps(envelope("MODEL_LOAD_FAILED")), False, None, "MODEL_LOAD_FAILED answered"),
        (orjson.dumps(PREDICTION), False, 3, "2 predictions for 3 rows"),
        (http(200, envelope("SHAPE_MISMATCH")), True, None, "SHAPE_MISMATCH came with HTTP 200"),
        (http(500, PREDICTION), True, None, "HTTP 500 without an error envelope"),
        (orjson.dumps(envelope("NO_SUCH_CODE")), False, None, "undocumented error code"),
        (orjson.dumps(envelope("INVALID_INPUT", "")), False, None, "without a message"),
        (b'{"predictions": [NaN], "model": {}}', False, None, "bare NaN"),
        (orjson.dumps({"hello": 1}), False, None, "neither an answer nor an error envelope"),
        (PREDICTION, False, None, "not bytes"),
        (orjson.dumps(PREDICTION), True, None, "proxy response"),
    ],
)
def test_the_checker_catches_wrong_answers(result, is_http, rows, complaint):
    with pytest.raises(AssertionError, match=complaint):
        checker.check(result, http=is_http, rows=rows)


def test_rows_are_counted_without_the_runtime():
    single = Contract.of([TensorSpec("x", "float32", (-1, 4))])
    tabular = Contract.of([TensorSpec("a", "float64", (-1,)), TensorSpec("b", "string", (-1,))])
    assert checker.rows_sent({"data": [[1, 2, 3, 4]] * 3}, single) == 3
    assert checker.rows_sent({"data": [1, 2, 3, 4]}, single) == 1
    assert checker.rows_sent({"instances": [{"x": [1, 2, 3, 4]}] * 2}, single) == 2
    assert checker.rows_sent({"data": [1.0, "red"]}, tabular) == 1
    assert checker.rows_sent({"data": {"a": [1.0, 2.0], "b": ["x", "y"]}}, tabular) == 2
    assert checker.rows_sent({"inputs": [{"name": "x", "shape": [5, 4]}]}, single) == 5


# -- regressions: what the fuzzing found ----------------------------------------------------------

FLOAT = Contract.of([TensorSpec("input", "float32", (-1, 4))])
TABULAR = Contract.of([TensorSpec("a", "float64", (-1,)), TensorSpec("colour", "string", (-1,))])


@pytest.mark.parametrize(
    "body",
    [
        {"data": [[10**400, 1, 2, 3]]},  # OverflowError: int too large to convert to float
        {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, -(10**400)]}]},
    ],
)
def test_an_integer_beyond_float64_is_a_dtype_mismatch(body):
    with pytest.raises(DtypeMismatch, match="does not fit in float"):
        protocol.read(body, FLOAT, protocol.Limits())


def test_an_integer_beyond_float64_in_a_tabular_row_is_a_dtype_mismatch():
    with pytest.raises(DtypeMismatch, match="does not fit in float64"):
        protocol.read({"data": [[10**400, "red"]]}, TABULAR, protocol.Limits())


def test_a_v2_shape_of_more_axes_than_numpy_holds_is_a_shape_mismatch():
    body = {"inputs": [{"name": "input", "shape": [1] * 70, "datatype": "FP32", "data": [1.0]}]}
    with pytest.raises(ShapeMismatch, match="is not possible"):  # was ValueError: maximum supported dimension
        protocol.read(body, FLOAT, protocol.Limits())


@pytest.mark.parametrize("body", [[1], 5, {"data": [[1, 2, 3, 4]]}, 1.5])
def test_an_http_body_that_is_no_string_is_invalid_json(body):
    event = {"httpMethod": "POST", "path": "/", "body": body}
    with pytest.raises(InvalidJSON, match="must be a string"):  # was TypeError / no len()
        transport.decode_body(transport.parse(event))


@pytest.mark.parametrize("headers", [[1], "x", 5])
def test_headers_of_another_type_are_ignored(headers):
    event = {"httpMethod": "POST", "path": "/", "headers": headers, "body": '{"data": [[1, 2, 3, 4]]}'}
    invocation = transport.parse(event)  # was AttributeError: no attribute 'items'
    assert invocation.headers == {}
    assert transport.decode_body(invocation) == {"data": [[1, 2, 3, 4]]}


@pytest.mark.parametrize(
    "text",
    [
        '{"\\ud800": 1}',  # a lone surrogate key: the error naming it could not be encoded
        '{"data": [[1, 2, 3, "\\udfff"]]}',
        '{"data": [[NaN, 2, 3, 4]], "id": "\\ud800"}',  # with NaN, so orjson fails first on the NaN
        '{"inputs": [], "id": "\\udc00\\ud800"}',  # a pair in the wrong order is two lone ones
    ],
)
def test_a_lone_surrogate_is_invalid_json(text):
    with pytest.raises(InvalidJSON, match="lone UTF-16 surrogate"):
        transport.loads(text)
    with pytest.raises(InvalidJSON):
        transport.loads(text.encode())


def test_a_surrogate_pair_and_nan_still_parse():
    assert transport.loads('{"id": "\\ud83d\\ude00", "data": [NaN]}')["id"] == "\U0001f600"
    assert transport.loads(b'{"data": [1e400, 100000000000000000000000000000]}')["data"][1] == 10**29


def test_a_str_body_holding_a_surrogate_is_invalid_json():
    event = {"httpMethod": "POST", "path": "/", "body": "\ud800"}
    with pytest.raises(InvalidJSON):  # was UnicodeEncodeError from str.encode
        transport.decode_body(transport.parse(event))


def test_the_surrogate_check_walks_keys_values_and_lists():
    assert transport._holds_lone_surrogate(json.loads('[{"a": ["x", {"\\ud800": 1}]}]'))
    assert not transport._holds_lone_surrogate(json.loads('[{"a": ["\\ud83d\\ude00", {"b": 1}]}]'))


def test_a_response_that_cannot_be_encoded_is_a_500_internal_error(tmp_path, capsys):
    """In-process callers (serveml test, the local bridge) can hand handle a direct event whose v2
    id holds a lone surrogate: the echoed id cannot be encoded, and the answer must be a 500."""
    from runtime.context import LocalContext
    from runtime.service import load_service
    from tests.modelzoo import build

    zoo = build("onnx", tmp_path)
    service = load_service(zoo.path)
    row = zoo.rows[0]
    request = {"id": "\ud800", "inputs": [{"name": "input", "shape": [1, len(row)], "datatype": "FP32", "data": row}]}
    capsys.readouterr()
    answer = json.loads(service.handle(request, LocalContext()))
    assert answer["error"]["code"] == "INTERNAL_ERROR"
    [line] = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"invocation"' in x]
    assert (line["status"], line["error_code"]) == (500, "INTERNAL_ERROR")
