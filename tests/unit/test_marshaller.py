"""runtime.marshaller: awslambdaric's event parsing swapped for orjson, with awslambdaric's behaviour."""

from __future__ import annotations

import json
import math

import pytest
from awslambdaric import lambda_runtime_client
from awslambdaric.lambda_runtime_exception import FaultException
from awslambdaric.lambda_runtime_marshaller import LambdaMarshaller

from runtime import marshaller

STOCK = LambdaMarshaller()
OURS = marshaller.Marshaller(FaultException)

EVENTS = [
    b'{"data": [[5.1, 3.5, 1.4, 0.2]]}',
    b'{"instances": [{"a": 1, "b": "x"}], "probabilities": true}',
    b'{"data": [1e308, -0.0, 12345678901234567890]}',
    '{"data": ["caf\u00e9", "\\ud83d\\ude00"]}'.encode(),
    b"[1, 2, 3]",
    b'"text"',
    b"null",
]


@pytest.mark.parametrize("body", EVENTS)
def test_events_parse_as_awslambdaric_parses_them(body):
    assert OURS.unmarshal_request(body) == STOCK.unmarshal_request(body)


def test_bare_nan_and_infinity_parse_as_with_simplejson():
    ours = OURS.unmarshal_request(b'{"data": [[NaN, Infinity, -Infinity]]}')
    [[nan, inf, minus_inf]] = ours["data"]
    assert math.isnan(nan)
    assert inf == math.inf
    assert minus_inf == -math.inf


@pytest.mark.parametrize("body", [b"{not json", b"", b'{"data": [1, 2'])
def test_a_payload_that_is_not_json_is_an_unmarshal_error(body):
    with pytest.raises(FaultException) as caught:
        OURS.unmarshal_request(body)
    assert caught.value.exception_type == "Runtime.UnmarshalError"
    assert caught.value.msg.startswith("Unable to unmarshal input: the event is not valid JSON")


def test_other_content_types_pass_through():
    assert OURS.unmarshal_request(b"\x00\x01", "application/octet-stream") == b"\x00\x01"


def test_bytes_go_out_untouched_and_objects_are_encoded():
    assert OURS.marshal_response(b'{"a":1}') == (b'{"a":1}', "application/json")
    body, content_type = OURS.marshal_response({"a": [1, 2]})
    assert (json.loads(body), content_type) == ({"a": [1, 2]}, "application/json")
    with pytest.raises(FaultException) as caught:
        OURS.marshal_response({"a": object()})
    assert caught.value.exception_type == "Runtime.MarshalError"


def test_install_swaps_the_documented_class_attribute(monkeypatch):
    base = lambda_runtime_client.BaseLambdaRuntimeClient
    monkeypatch.setattr(base, "marshaller", base.marshaller)  # restored after the test
    assert marshaller.install() is True
    client = lambda_runtime_client.LambdaRuntimeClient("127.0.0.1:1")
    assert isinstance(client.marshaller, marshaller.Marshaller)


def test_install_does_nothing_outside_awslambdaric(monkeypatch):
    monkeypatch.delitem(__import__("sys").modules, "awslambdaric.lambda_runtime_client")
    assert marshaller.install() is False
