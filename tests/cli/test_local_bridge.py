"""``controlplane.local`` in process: HTTP requests as HTTP API v2 events, handler results as HTTP
answers, and ``bootstrap`` making the control plane's resources (under ``moto.mock_aws``)."""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from controlplane.local import DEFAULTS, OWNER_INDEX, bootstrap, http_answer, http_api_event, make_server

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def test_a_request_becomes_an_http_api_v2_event() -> None:
    # GIVEN a POST with a query, mixed-case and repeated headers, a cookie and a JSON body
    headers = [("Content-Type", "application/json"), ("X-Tag", "a"), ("x-tag", "b"), ("Cookie", "s=1; t=2")]

    # WHEN it is turned into an event
    event = http_api_event("POST", "/api/v1/predict/dep-1?type=build&tail=5", headers, b'{"data": [[1]]}')

    # THEN it has the shape API Gateway's HTTP API (payload 2.0) gives Lambda
    assert event["version"] == "2.0"
    assert event["rawPath"] == "/api/v1/predict/dep-1"
    assert event["rawQueryString"] == "type=build&tail=5"
    assert event["queryStringParameters"] == {"type": "build", "tail": "5"}
    assert event["headers"] == {"content-type": "application/json", "x-tag": "a,b"}
    assert event["cookies"] == ["s=1", "t=2"]
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["http"]["path"] == "/api/v1/predict/dep-1"
    assert (event["body"], event["isBase64Encoded"]) == ('{"data": [[1]]}', False)


def test_a_body_that_is_not_utf8_is_sent_base64() -> None:
    event = http_api_event("PUT", "/x", [], b"\xff\xfe\x00")
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\xfe\x00"


def test_a_get_has_no_body() -> None:
    event = http_api_event("GET", "/health", [], b"")
    assert "body" not in event
    assert "queryStringParameters" not in event


def test_a_handler_result_becomes_the_http_answer() -> None:
    answer = http_answer(
        {
            "statusCode": 429,
            "headers": {"Content-Type": "application/json", "Retry-After": "3", "Content-Length": "999"},
            "cookies": ["a=1"],
            "body": '{"error": {}}',
        }
    )
    assert answer.status == 429
    assert ("Retry-After", "3") in answer.headers
    assert ("Set-Cookie", "a=1") in answer.headers
    assert all(name.lower() != "content-length" for name, _ in answer.headers)
    assert answer.body == b'{"error": {}}'


def test_a_base64_result_and_a_bare_result() -> None:
    raw = http_answer({"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True})
    assert raw.body == b"\x00\x01"
    bare = http_answer({"status": "ok"})
    assert (bare.status, json.loads(bare.body)) == (200, {"status": "ok"})


@pytest.fixture
def bridge() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The local HTTP server in front of a handler that echoes what it was given."""
    events: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        events.append(event)
        if event["rawPath"] == "/boom":
            raise RuntimeError("a bug")
        assert context.get_remaining_time_in_millis() > 0
        return {"statusCode": 201, "headers": {"X-RateLimit-Limit": "60"}, "body": json.dumps({"ok": True})}

    server = make_server(handler, 0, log=lambda _line: None)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", events
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_server_answers_through_the_handler(bridge: tuple[str, list[dict[str, Any]]]) -> None:
    # GIVEN the local server WHEN a request is made over HTTP
    url, events = bridge
    request = urllib.request.Request(f"{url}/api/v1/deployments?x=1", data=b'{"a": 1}', method="POST")
    request.add_header("Authorization", "Bearer t")
    with _OPENER.open(request, timeout=10) as answer:
        # THEN the handler's status, headers and body come back
        assert answer.status == 201
        assert answer.headers["X-RateLimit-Limit"] == "60"
        assert json.loads(answer.read()) == {"ok": True}
    # ... AND the handler was given the request as an event
    assert events[0]["headers"]["authorization"] == "Bearer t"
    assert events[0]["body"] == '{"a": 1}'
    assert events[0]["rawQueryString"] == "x=1"


def test_a_handler_that_raises_is_api_gateways_500(
    bridge: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = bridge
    with pytest.raises(urllib.error.HTTPError) as raised:
        _OPENER.open(f"{url}/boom", timeout=10)
    with raised.value as answer:
        assert answer.code == 500
        assert json.loads(answer.read()) == {"message": "Internal Server Error"}
    assert "RuntimeError: a bug" in capsys.readouterr().err


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield


@pytest.mark.usefixtures("aws")
def test_bootstrap_makes_what_the_api_needs_and_can_run_twice() -> None:
    # GIVEN an empty (mocked) account WHEN bootstrap runs, twice
    names = bootstrap({"SERVEML_BUCKET": "my-bucket"})
    assert bootstrap({"SERVEML_BUCKET": "my-bucket"}) == names

    # THEN it names every resource, the given bucket and the defaults for the rest
    assert names == {**DEFAULTS, "SERVEML_BUCKET": "my-bucket"}
    dynamodb = boto3.client("dynamodb")
    users = dynamodb.describe_table(TableName=names["SERVEML_USERS_TABLE"])["Table"]
    assert users["KeySchema"] == [{"AttributeName": "email", "KeyType": "HASH"}]
    deployments = dynamodb.describe_table(TableName=names["SERVEML_DEPLOYMENTS_TABLE"])["Table"]
    assert deployments["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    (index,) = deployments["GlobalSecondaryIndexes"]
    assert index["IndexName"] == OWNER_INDEX
    assert index["KeySchema"] == [
        {"AttributeName": "owner", "KeyType": "HASH"},
        {"AttributeName": "created_at", "KeyType": "RANGE"},
    ]
    rate = dynamodb.describe_table(TableName=names["SERVEML_RATE_TABLE"])["Table"]
    assert rate["KeySchema"] == [{"AttributeName": "key", "KeyType": "HASH"}]
    boto3.client("s3").head_bucket(Bucket="my-bucket")
    secret = boto3.client("ssm").get_parameter(Name=names["SERVEML_JWT_SECRET_PARAM"], WithDecryption=True)
    assert secret["Parameter"]["Type"] == "SecureString"
    assert len(secret["Parameter"]["Value"]) >= 32
    (project,) = boto3.client("codebuild").batch_get_projects(names=[names["SERVEML_CODEBUILD_PROJECT"]])["projects"]
    assert project["environment"]["privilegedMode"] is True


@pytest.mark.usefixtures("aws")
def test_bootstrap_reads_names_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from controlplane import settings

    monkeypatch.setenv("SERVEML_USERS_TABLE", "people")
    names = bootstrap(settings.from_environment())
    assert names["SERVEML_USERS_TABLE"] == "people"
    boto3.client("dynamodb").describe_table(TableName="people")
