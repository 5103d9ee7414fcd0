"""Event shapes in, encoded results out."""

from __future__ import annotations

import base64
import json

import pytest

from runtime.errors import InvalidJSON, MethodNotAllowed, NotFound, PayloadTooLarge
from runtime.transport import MAX_PAYLOAD_BYTES, Action, Source, decode_body, parse, respond, source_of
from tests.functional.conftest import event


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("direct_data", Source.DIRECT),
        ("apigw_v1", Source.APIGW_V1),
        ("http_api_v2", Source.HTTP_V2),
        ("function_url", Source.HTTP_V2),
        ("alb", Source.ALB),
        ("scheduled", Source.SCHEDULE),
    ],
)
def test_sources_are_told_apart_by_shape(name, source):
    assert source_of(event(name)) is source


@pytest.mark.parametrize(
    ("name", "action"),
    [
        ("warmup", Action.WARMUP),
        ("scheduled", Action.WARMUP),
        ("health", Action.HEALTH),
        ("http_health", Action.HEALTH),
    ],
)
def test_warmup_and_health_are_recognised(name, action):
    assert parse(event(name)).action is action


def test_base64_bodies_are_decoded():
    plain = decode_body(parse(event("apigw_v1")))
    assert decode_body(parse(event("apigw_v1_base64"))) == plain


def test_routing_errors():
    with pytest.raises(NotFound):
        parse(event("errors/not_found"))
    with pytest.raises(MethodNotAllowed):
        parse(event("errors/method_not_allowed"))
    with pytest.raises(InvalidJSON, match="base64"):
        parse(event("errors/bad_base64"))


def test_bodies_are_size_checked_before_parsing():
    sent = {**event("http_api_v2"), "body": " " * (MAX_PAYLOAD_BYTES + 1)}
    with pytest.raises(PayloadTooLarge):
        decode_body(parse(sent))


@pytest.mark.parametrize("body", ["", "{", "[1, 2", "nul", "{'data': 1}"])
def test_bodies_that_are_not_json_are_invalid_json(body):
    sent = {**event("http_api_v2"), "body": body}
    with pytest.raises(InvalidJSON):
        decode_body(parse(sent))


def test_bare_nan_is_read_so_that_the_nan_check_can_name_it():
    sent = {**event("http_api_v2"), "body": '{"data": [[NaN, 1, 2, 3]]}'}
    assert decode_body(parse(sent))["data"][0][1] == 1


def test_http_results_wrap_the_payload_and_direct_results_are_the_payload():
    payload = b'{"predictions":[1]}'
    assert respond(Source.DIRECT, 200, payload) == payload
    wrapped = json.loads(respond(Source.ALB, 413, payload))
    assert wrapped["statusCode"] == 413
    assert wrapped["statusDescription"] == "413 Payload Too Large"
    assert wrapped["body"] == payload.decode()
    assert base64.b64decode(base64.b64encode(payload)) == payload
