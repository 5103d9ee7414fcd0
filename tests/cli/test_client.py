"""The API client against a real HTTP server on 127.0.0.1: retries, backoff, errors, the saved login."""

from __future__ import annotations

import json
import logging
import stat
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from serveml.client import (
    MAX_SLEEP_S,
    APIError,
    Client,
    ClientConfig,
    ClientError,
    credentials_path,
    load_credentials,
    redact_url,
    retry_after_seconds,
    save_credentials,
)
from tests.cli.conftest import FakeAPI, Reply, error


class Sleeps:
    """The injected sleep: records every wait instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def client_for(api: FakeAPI, sleeps: Sleeps, *, max_retries: int = 5, jitter: float = 0.5) -> Client:
    config = ClientConfig(api_url=api.url, token="secret-token", timeout=5, max_retries=max_retries)
    return Client(config, sleep=sleeps, random=lambda: jitter)


def rate_limited(retry_after: str = "1") -> Reply:
    return error("RATE_LIMITED", "Rate limit exceeded", 429, **{"Retry-After": retry_after})


# -- retries -----------------------------------------------------------------------------------


def test_a_429_is_retried_after_the_retry_after_the_server_asked_for(fake_api: FakeAPI) -> None:
    # GIVEN a server that rate-limits twice with Retry-After: 1, then answers
    fake_api.queue = [rate_limited(), rate_limited(), Reply(200, {"id": "dep-1", "status": "ready"})]
    sleeps = Sleeps()

    # WHEN the client asks once
    deployment = client_for(fake_api, sleeps).get_deployment("dep-1")

    # THEN it took three calls, waiting exactly the second the server asked for before each retry
    assert deployment["status"] == "ready"
    assert len(fake_api.requests) == 3
    assert sleeps.waits == [1.0, 1.0]
    # ... AND every attempt carried the token
    assert {r.headers["authorization"] for r in fake_api.requests} == {"Bearer secret-token"}


def test_a_429_without_the_header_follows_the_envelopes_retry_after(fake_api: FakeAPI) -> None:
    # GIVEN a 429 whose only hint is the body's retry_after (as the user guide shows it)
    body = {"error": {"code": "RATE_LIMITED", "message": "Rate limit exceeded", "retry_after": 7}}
    fake_api.queue = [Reply(429, body), Reply(200, {"id": "dep-1"})]
    sleeps = Sleeps()

    # WHEN the client asks
    client_for(fake_api, sleeps).get_deployment("dep-1")

    # THEN it waited those 7 s
    assert sleeps.waits == [7.0]


def test_a_long_retry_after_is_capped(fake_api: FakeAPI) -> None:
    # GIVEN a server asking for two minutes' patience
    fake_api.queue = [rate_limited("120"), Reply(200, {"id": "dep-1"})]
    sleeps = Sleeps()

    # WHEN the client retries
    client_for(fake_api, sleeps).get_deployment("dep-1")

    # THEN no single wait is longer than the cap: the next answer says how much more to wait
    assert sleeps.waits == [MAX_SLEEP_S]


def test_5xx_answers_are_retried_with_growing_jittered_waits(fake_api: FakeAPI) -> None:
    # GIVEN a server that fails three times, then answers
    down = error("INTERNAL_ERROR", "Internal error", 503)
    fake_api.queue = [down, down, down, Reply(200, {"events": []})]
    sleeps = Sleeps()

    # WHEN the client asks (its random part fixed at the middle of the jitter)
    client_for(fake_api, sleeps, jitter=0.5).logs("dep-1", log_type="build", tail=5)

    # THEN each wait is half the exponential step plus half the jitter: 0.5 s, 1 s, 2 s steps
    assert len(fake_api.requests) == 4
    assert sleeps.waits == pytest.approx([0.375, 0.75, 1.5])
    assert fake_api.requests[0].path == "/api/v1/deployments/dep-1/logs?type=build&tail=5"


@pytest.mark.parametrize("jitter", [0.0, 0.999])
def test_the_jitter_stays_within_half_and_all_of_each_step(fake_api: FakeAPI, jitter: float) -> None:
    # GIVEN a server that is down for good, and a client allowed 3 retries
    fake_api.route = lambda _request: error("INTERNAL_ERROR", "Internal error", 500)
    sleeps = Sleeps()

    # WHEN the client gives up
    with pytest.raises(APIError) as raised:
        client_for(fake_api, sleeps, max_retries=3, jitter=jitter).get_deployment("dep-1")

    # THEN it tried 1 + 3 times, each wait between half and the whole of its step
    assert len(fake_api.requests) == 4
    for wait, step in zip(sleeps.waits, [0.5, 1.0, 2.0], strict=True):
        assert step / 2 <= wait <= step
    # ... AND the error is the server's last answer
    assert (raised.value.status, raised.value.code, raised.value.message) == (500, "INTERNAL_ERROR", "Internal error")


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (400, "INVALID_INPUT", "model_filename must be a plain file name"),
        (401, "UNAUTHORIZED", "Invalid or expired token"),
        (404, "NOT_FOUND", "Deployment not found"),
        (409, "NOT_READY", "Deployment is uploading, not ready"),
    ],
)
def test_4xx_answers_are_not_retried(fake_api: FakeAPI, status: int, code: str, message: str) -> None:
    # GIVEN a server that refuses the request
    fake_api.queue = [error(code, message, status)]
    sleeps = Sleeps()

    # WHEN the client asks
    with pytest.raises(APIError) as raised:
        client_for(fake_api, sleeps).get_deployment("dep-1")

    # THEN it asked once, waited never, and raised the server's status, code and message
    assert len(fake_api.requests) == 1
    assert sleeps.waits == []
    assert (raised.value.status, raised.value.code, raised.value.message) == (status, code, message)
    assert str(raised.value) == f"{code}: {message}"


def test_no_retries_when_max_retries_is_zero(fake_api: FakeAPI) -> None:
    fake_api.queue = [rate_limited()]
    sleeps = Sleeps()
    with pytest.raises(APIError, match=r"^RATE_LIMITED: Rate limit exceeded$") as raised:
        client_for(fake_api, sleeps, max_retries=0).get_deployment("dep-1")
    assert raised.value.retry_after == 1.0
    assert len(fake_api.requests) == 1
    assert sleeps.waits == []


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_prediction_the_model_failed_is_not_retried(fake_api: FakeAPI, status: int) -> None:
    # GIVEN a model that raised (500), whose function failed (502) or ran out of time (504)
    fake_api.queue = [error("PREDICTION_FAILED", "boom", status)]
    sleeps = Sleeps()

    # WHEN a prediction is asked for
    response = client_for(fake_api, sleeps).predict("dep-1", {"data": [[1, 2]]})

    # THEN it is answered once, the envelope returned rather than raised: asking again would fail again
    assert len(fake_api.requests) == 1
    assert response.status == status
    assert response.body["error"]["code"] == "PREDICTION_FAILED"
    assert fake_api.requests[0].json() == {"data": [[1, 2]]}


def test_a_rate_limited_prediction_is_retried(fake_api: FakeAPI) -> None:
    fake_api.queue = [rate_limited("2"), Reply(200, {"predictions": [1]})]
    sleeps = Sleeps()
    response = client_for(fake_api, sleeps).predict("dep-1", {"data": [[1, 2]]})
    assert response.body == {"predictions": [1]}
    assert sleeps.waits == [2.0]


# -- error answers that are not ServeML's envelope ----------------------------------------------


def test_api_gateways_own_message_is_kept(fake_api: FakeAPI) -> None:
    fake_api.queue = [Reply(404, {"message": "Not Found"})]
    with pytest.raises(APIError, match=r"^HTTP_404: Not Found$"):
        client_for(fake_api, Sleeps()).get_deployment("dep-1")


def test_an_s3_xml_error_gives_its_code_and_message(fake_api: FakeAPI, tmp_path: Path) -> None:
    # GIVEN a presigned URL that has expired
    xml = b"<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
    fake_api.queue = [Reply(403, raw=xml, headers={"Content-Type": "application/xml"})]
    model = tmp_path / "model.joblib"
    model.write_bytes(b"model bytes")

    # WHEN the file is uploaded to it
    with pytest.raises(APIError, match=r"^AccessDenied: Request has expired$"):
        client_for(fake_api, Sleeps()).upload(f"{fake_api.url}/bucket/key?X-Amz-Signature=abc", model)


def test_an_unreachable_server_is_one_clear_error(tmp_path: Path) -> None:
    # GIVEN no server on the port (the fake was closed)
    with FakeAPI() as closed:
        url = closed.url
    client = Client(ClientConfig(api_url=url, token="t", timeout=2), sleep=Sleeps())

    # WHEN the client asks THEN it says where it could not reach, without a traceback's worth of detail
    with pytest.raises(ClientError, match=f"^cannot reach {url}: "):
        client.get_deployment("dep-1")


# -- uploads -----------------------------------------------------------------------------------


def test_an_upload_puts_the_files_bytes_without_the_token(fake_api: FakeAPI, tmp_path: Path) -> None:
    # GIVEN a model file and a presigned URL
    model = tmp_path / "model.joblib"
    model.write_bytes(bytes(range(256)) * 40)
    fake_api.queue = [error("SlowDown", "busy", 503), Reply(200)]
    sleeps = Sleeps()

    # WHEN it is uploaded (and S3 asks once to slow down)
    client_for(fake_api, sleeps).upload(f"{fake_api.url}/bucket/model.joblib?X-Amz-Signature=abc", model)

    # THEN both attempts PUT the whole file, and neither carried the bearer token
    puts = fake_api.calls("PUT")
    assert len(puts) == 2
    for put in puts:
        assert put.body == model.read_bytes()
        assert "authorization" not in put.headers
        assert put.path == "/bucket/model.joblib?X-Amz-Signature=abc"


def test_only_http_urls_are_opened(tmp_path: Path) -> None:
    model = tmp_path / "model.joblib"
    model.write_bytes(b"x")
    client = Client(ClientConfig(token="t"), sleep=Sleeps())
    with pytest.raises(ClientError, match="must be an http"):
        client.upload("file:///etc/passwd", model)


# -- request logging ---------------------------------------------------------------------------


def test_debug_logs_each_request_without_the_token_or_a_signature(
    fake_api: FakeAPI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a client in debug mode
    config = ClientConfig(api_url=fake_api.url, token="secret-token", debug=True)
    client = Client(config, sleep=Sleeps(), random=lambda: 0.0)
    model = tmp_path / "model.joblib"
    model.write_bytes(b"x")
    fake_api.queue = [error("INTERNAL_ERROR", "Internal error", 502), Reply(200, {"id": "dep-1"}), Reply(200)]

    # WHEN it makes a request that is retried once, and an upload
    with caplog.at_level(logging.INFO, logger="serveml.client"):
        client.get_deployment("dep-1")
        client.upload(f"{fake_api.url}/b/k?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=deadbeef&X-Amz-Expires=900", model)

    # THEN each request is one line: method, URL, status and time
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith(f"GET {fake_api.url}/api/v1/deployments/dep-1 -> 502 (")
    assert lines[0].endswith(" ms)")
    assert lines[1].startswith("retrying GET ")
    assert lines[2].startswith(f"GET {fake_api.url}/api/v1/deployments/dep-1 -> 200 (")
    assert lines[3].startswith(
        f"PUT {fake_api.url}/b/k?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED&X-Amz-Expires=900"
    )
    # ... AND nothing that would let a reader of the log act as the user
    text = "\n".join(lines)
    assert "secret-token" not in text
    assert "deadbeef" not in text
    assert "AKIA" not in text


def test_redact_url_leaves_urls_without_secrets_alone() -> None:
    assert redact_url("http://h/api/v1/deployments/dep-1/logs?type=build") == (
        "http://h/api/v1/deployments/dep-1/logs?type=build"
    )


def test_retry_after_takes_seconds_or_an_http_date() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=5), usegmt=True), now.timestamp()) == 5.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


# -- settings and the saved login ---------------------------------------------------------------


def test_settings_come_from_the_environment() -> None:
    config = ClientConfig.from_env(
        {
            "SERVEML_API_URL": "https://api.example.com/",
            "SERVEML_API_KEY": "key",
            "SERVEML_TIMEOUT": "12.5",
            "SERVEML_MAX_RETRIES": "2",
            "SERVEML_DEBUG": "true",
        }
    )
    assert config == ClientConfig(
        api_url="https://api.example.com", token="key", timeout=12.5, max_retries=2, debug=True
    )


def test_defaults_without_settings() -> None:
    config = ClientConfig.from_env({})
    assert (config.api_url, config.token, config.timeout, config.max_retries, config.debug) == (
        "http://127.0.0.1:8000",
        None,
        60.0,
        5,
        False,
    )
    assert config.token_problem is not None
    assert "serveml login" in config.token_problem


@pytest.mark.parametrize(
    ("name", "value"), [("SERVEML_TIMEOUT", "soon"), ("SERVEML_MAX_RETRIES", "-1"), ("SERVEML_API_URL", "ftp://x")]
)
def test_a_bad_setting_is_named(name: str, value: str) -> None:
    with pytest.raises(ClientError, match=name):
        ClientConfig.from_env({name: value})


def test_the_saved_login_is_private_and_read_back(isolated_env: Path) -> None:
    # GIVEN a login saved for a server
    path = save_credentials("http://127.0.0.1:8000/", "tok", 3600)

    # THEN only its owner can read it, in a directory only its owner can enter
    assert path == credentials_path() == isolated_env / ".serveml" / "credentials"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert set(json.loads(path.read_text())) == {"api_url", "token", "expires_at"}
    # ... AND it is the token for that server
    saved = load_credentials()
    assert saved is not None
    assert (saved.api_url, saved.token, saved.expired()) == ("http://127.0.0.1:8000", "tok", False)
    assert ClientConfig.from_env({}).token == "tok"


def test_the_api_key_wins_over_the_saved_login() -> None:
    save_credentials("http://127.0.0.1:8000", "saved", 3600)
    assert ClientConfig.from_env({"SERVEML_API_KEY": "key"}).token == "key"


def test_a_saved_token_is_not_sent_to_another_server() -> None:
    # GIVEN a login saved for one server
    save_credentials("https://api.example.com", "tok", 3600)

    # WHEN the API URL points elsewhere
    config = ClientConfig.from_env({"SERVEML_API_URL": "http://127.0.0.1:9999"})

    # THEN the token stays home, and the reason is ready for the message
    assert config.token is None
    assert config.token_problem is not None
    assert "https://api.example.com" in config.token_problem


def test_the_saved_server_is_the_default_url() -> None:
    save_credentials("https://api.example.com", "tok", 3600)
    config = ClientConfig.from_env({})
    assert (config.api_url, config.token) == ("https://api.example.com", "tok")


def test_an_expired_login_is_not_sent() -> None:
    save_credentials("http://127.0.0.1:8000", "tok", -5)
    config = ClientConfig.from_env({})
    assert config.token is None
    assert config.token_problem is not None
    assert "expired" in config.token_problem


def test_a_request_without_a_token_says_how_to_get_one(fake_api: FakeAPI) -> None:
    client = Client(ClientConfig.from_env({"SERVEML_API_URL": fake_api.url}), sleep=Sleeps())
    with pytest.raises(ClientError, match="serveml login"):
        client.get_deployment("dep-1")
    assert fake_api.requests == []


def test_an_id_cannot_reach_another_route(fake_api: FakeAPI) -> None:
    fake_api.queue = [Reply(200, {"id": "x"})]
    client_for(fake_api, Sleeps()).get_deployment("../auth/login")
    assert fake_api.requests[0].path == "/api/v1/deployments/..%2Fauth%2Flogin"
