"""``serveml login | deploy | status | logs | predict`` against a scripted API on 127.0.0.1."""

from __future__ import annotations

import io
import json
import re
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serveml.cli import main
from serveml.client import save_credentials
from tests.cli.conftest import FakeAPI, Recorded, Reply, error

DEP = "dep-0123456789ab"


@pytest.fixture
def api(fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch) -> FakeAPI:
    """The fake API, logged in to. No retries: a scripted failure is answered at once."""
    monkeypatch.setenv("SERVEML_API_URL", fake_api.url)
    monkeypatch.setenv("SERVEML_MAX_RETRIES", "0")
    save_credentials(fake_api.url, "saved-token", 3600)
    return fake_api


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))


# -- login -------------------------------------------------------------------------------------


def test_login_saves_the_token_readable_by_the_user_alone(
    fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    # GIVEN a server that accepts the password
    monkeypatch.setenv("SERVEML_API_URL", fake_api.url)
    fake_api.queue = [Reply(200, {"token": "tok-1", "token_type": "Bearer", "expires_in": 3600})]
    stdin(monkeypatch, "pass word\n")

    # WHEN the user logs in with the password on stdin
    code, _, err = run(capsys, "login", "--email", "ada@example.com", "--password-stdin")

    # THEN the server saw the email and the password (without its newline), and no bearer token
    assert code == 0, err
    sent = fake_api.requests[0]
    assert (sent.method, sent.path) == ("POST", "/api/v1/auth/login")
    assert sent.json() == {"email": "ada@example.com", "password": "pass word"}
    assert "authorization" not in sent.headers
    # ... AND the token is saved, mode 0600, for this server
    path = isolated_env / ".serveml" / "credentials"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert saved["api_url"] == fake_api.url
    assert saved["token"] == "tok-1"
    assert saved["expires_at"].endswith("Z")
    assert "tok-1" not in err
    # ... AND the next command sends it
    fake_api.queue = [Reply(200, {"id": DEP, "status": "ready"})]
    assert run(capsys, "status", DEP)[0] == 0
    assert fake_api.requests[-1].headers["authorization"] == "Bearer tok-1"


def test_bad_credentials_are_the_servers_one_line(
    fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    # GIVEN a server that refuses the password
    monkeypatch.setenv("SERVEML_API_URL", fake_api.url)
    fake_api.queue = [error("UNAUTHORIZED", "Invalid or expired token", 401)]
    stdin(monkeypatch, "wrong\n")

    # WHEN the user logs in
    code, out, err = run(capsys, "login", "--email", "ada@example.com", "--password-stdin")

    # THEN one line with the server's code and message, exit 1, and nothing saved
    assert (code, out, err) == (1, "", "serveml: error: UNAUTHORIZED: Invalid or expired token\n")
    assert not (isolated_env / ".serveml" / "credentials").exists()


def test_login_without_a_terminal_needs_the_password_on_stdin(
    fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin(monkeypatch, "")
    code, _, err = run(capsys, "login", "--email", "ada@example.com")
    assert code == 2
    assert err == "serveml: error: no terminal to ask for the password on; pipe it in with --password-stdin\n"
    assert fake_api.requests == []


def test_login_prompts_with_getpass_on_a_terminal(
    fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a terminal
    monkeypatch.setenv("SERVEML_API_URL", fake_api.url)
    terminal = io.StringIO("ada@example.com\n")
    terminal.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr(sys, "stdin", terminal)
    prompts: list[str] = []
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or "typed")
    fake_api.queue = [Reply(200, {"token": "tok", "expires_in": 60})]

    # WHEN the user logs in without flags
    code, _, err = run(capsys, "login")

    # THEN the email was asked for on the terminal and the password through getpass
    assert code == 0, err
    assert prompts == ["Password: "]
    assert fake_api.requests[0].json() == {"email": "ada@example.com", "password": "typed"}


def test_commands_without_a_login_say_how_to_log_in(
    fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SERVEML_API_URL", fake_api.url)
    code, _, err = run(capsys, "status", DEP)
    assert code == 1
    assert err == "serveml: error: not logged in: run `serveml login` or set SERVEML_API_KEY\n"


# -- deploy ------------------------------------------------------------------------------------


class DeployScript:
    """A create answer with upload URLs on the fake itself, then ``statuses`` one per GET."""

    def __init__(self, api: FakeAPI, statuses: list[str], reason: str | None = None, requirements: bool = False):
        self.api = api
        self.statuses = statuses
        self.reason = reason
        self.requirements = requirements

    def __call__(self, request: Recorded) -> Reply:
        if request.method == "POST" and request.path == "/api/v1/deployments":
            upload = {"model": {"url": f"{self.api.url}/s3/model?X-Amz-Signature=sig", "expires_in": 900}}
            if self.requirements:
                upload["requirements"] = {"url": f"{self.api.url}/s3/requirements?X-Amz-Signature=sig"}
            return Reply(201, {"id": DEP, "status": "uploading", "upload": upload})
        if request.method == "PUT" and request.path.startswith("/s3/"):
            return Reply(200)
        if request.method == "GET" and request.path == f"/api/v1/deployments/{DEP}":
            status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
            done = status in ("ready", "failed")
            return Reply(
                200,
                {
                    "id": DEP,
                    "status": status,
                    "reason": self.reason if status == "failed" else None,
                    "function_name": f"serveml-model-{DEP}" if status == "ready" else None,
                    "created_at": "2025-01-01T00:00:00.000Z",
                    "updated_at": "2025-01-01T00:00:01.000Z" if done else "2025-01-01T00:00:00.000Z",
                },
            )
        return error("NOT_FOUND", "No such route", 404)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model.joblib"
    path.write_bytes(b"\x80\x04 not really a model" * 100)
    return path


def test_deploy_uploads_then_shows_each_status_change_until_ready(
    api: FakeAPI, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a model, its requirements, and a deployment that validates, builds and becomes ready
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("lightgbm==4.6.0\n")
    api.route = DeployScript(api, ["validating", "validating", "building", "ready"], requirements=True)

    # WHEN it is deployed
    code, out, err = run(
        capsys, "deploy", str(model), "--requirements", str(requirements), "--name", "iris", "--poll-interval", "0.01"
    )

    # THEN the deployment was created with the file's name, and both files were PUT byte for byte
    assert code == 0, err
    create = api.calls("POST", "/api/v1/deployments")[0]
    assert create.json() == {"model_filename": "model.joblib", "requirements": True, "name": "iris"}
    puts = {r.path.split("?")[0]: r for r in api.calls("PUT")}
    assert puts["/s3/model"].body == model.read_bytes()
    assert puts["/s3/requirements"].body == requirements.read_bytes()
    assert all("authorization" not in r.headers for r in puts.values())
    # ... AND one line per change of status, with the time so far
    changes = re.findall(r"^serveml: (\w+ -> \w+) \(\d+ s\)$", err, flags=re.MULTILINE)
    assert changes == ["uploading -> validating", "validating -> building", "building -> ready"]
    # ... AND stdout holds the id alone, for scripts
    assert out == f"{DEP}\n"


def test_a_failed_deployment_prints_the_reason_and_exits_1(
    api: FakeAPI, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api.route = DeployScript(api, ["validating", "failed"], reason="Model validation failed: not a model")
    code, out, err = run(capsys, "deploy", str(model), "--poll-interval", "0.01")
    assert code == 1
    assert out == ""
    assert "serveml: validating -> failed (" in err
    assert f"serveml: error: deployment {DEP} failed: Model validation failed: not a model\n" in err
    assert f"serveml logs {DEP} --type build" in err


def test_deploy_no_wait_returns_once_uploaded(api: FakeAPI, model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    api.route = DeployScript(api, ["validating"])
    code, out, _ = run(capsys, "deploy", str(model), "--no-wait")
    assert (code, out) == (0, f"{DEP}\n")
    assert api.calls("GET") == []
    assert len(api.calls("PUT")) == 1


def test_deploy_stops_waiting_after_the_wait_timeout(
    api: FakeAPI, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a deployment that stays building
    api.route = DeployScript(api, ["building"])

    # WHEN the wait is limited
    code, out, err = run(capsys, "deploy", str(model), "--poll-interval", "0.01", "--wait-timeout", "0.2")

    # THEN it gives up with exit 1, saying the deployment carries on and how to follow it
    assert (code, out) == (1, "")
    assert f"serveml: error: deployment {DEP} is still building after " in err
    assert f"serveml status {DEP}" in err


def test_a_failed_upload_removes_the_deployment_and_says_why(
    api: FakeAPI, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an upload URL that S3 refuses
    script = DeployScript(api, ["validating"])
    xml = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"

    def route(request: Recorded) -> Reply:
        if request.method == "PUT":
            return Reply(403, raw=xml, headers={"Content-Type": "application/xml"})
        if request.method == "DELETE":
            return Reply(204)
        return script(request)

    api.route = route

    # WHEN the model is deployed
    code, _, err = run(capsys, "deploy", str(model), "--no-wait")

    # THEN S3's own code and message are the error, and the half-made deployment is deleted
    assert code == 1
    assert err.endswith("serveml: error: AccessDenied: Request has expired\n")
    assert [r.path for r in api.calls("DELETE")] == [f"/api/v1/deployments/{DEP}"]


def test_deploy_refuses_a_directory(api: FakeAPI, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "deploy", str(tmp_path))
    assert code == 2
    assert "deploy uploads one model file" in err
    assert api.requests == []


def test_a_server_error_on_create_is_one_line(api: FakeAPI, model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    api.queue = [error("INVALID_INPUT", "model_filename must be a plain file name", 400)]
    code, _, err = run(capsys, "deploy", str(model))
    assert (code, err) == (1, "serveml: error: INVALID_INPUT: model_filename must be a plain file name\n")


# -- status, logs, predict ---------------------------------------------------------------------


def test_status_shows_the_deployment(api: FakeAPI, capsys: pytest.CaptureFixture[str]) -> None:
    api.route = DeployScript(api, ["failed"], reason="Build failed")
    code, out, _ = run(capsys, "status", DEP)
    assert code == 0
    assert re.search(rf"^id:\s+{DEP}$", out, flags=re.MULTILINE)
    assert re.search(r"^status:\s+failed$", out, flags=re.MULTILINE)
    assert re.search(r"^reason:\s+Build failed$", out, flags=re.MULTILINE)
    code, out, _ = run(capsys, "status", DEP, "--json")
    assert json.loads(out)["reason"] == "Build failed"


def test_an_unknown_deployment_is_the_servers_not_found(api: FakeAPI, capsys: pytest.CaptureFixture[str]) -> None:
    api.queue = [error("NOT_FOUND", "Deployment not found", 404)]
    assert run(capsys, "status", DEP) == (1, "", "serveml: error: NOT_FOUND: Deployment not found\n")


def test_logs_prints_one_line_per_event(api: FakeAPI, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN two build log events, CloudWatch-style timestamps
    events = [{"timestamp": 1735689600000, "message": "Step 1/9\n"}, {"timestamp": 1735689601500, "message": "done"}]
    api.queue = [Reply(200, {"events": events})]

    # WHEN they are asked for
    code, out, _ = run(capsys, "logs", DEP, "--type", "build", "--tail", "2")

    # THEN each is one line, UTC time first
    assert code == 0
    assert out == "2025-01-01T00:00:00.000Z Step 1/9\n2025-01-01T00:00:01.500Z done\n"
    assert api.requests[0].path == f"/api/v1/deployments/{DEP}/logs?type=build&tail=2"


def test_logs_says_when_there_are_none(api: FakeAPI, capsys: pytest.CaptureFixture[str]) -> None:
    api.queue = [Reply(200, {"events": []})]
    code, out, err = run(capsys, "logs", DEP)
    assert (code, out) == (0, "")
    assert "no log events" in err
    assert api.requests[0].path == f"/api/v1/deployments/{DEP}/logs"


def test_predict_prints_the_answer(api: FakeAPI, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    request = tmp_path / "request.json"
    request.write_text('{"data": [[5.1, 3.5, 1.4, 0.2]]}')
    api.queue = [Reply(200, {"predictions": ["setosa"]})]
    code, out, err = run(capsys, "predict", DEP, "--input", str(request))
    assert (code, err) == (0, "")
    assert json.loads(out) == {"predictions": ["setosa"]}
    assert api.requests[0].json() == {"data": [[5.1, 3.5, 1.4, 0.2]]}


def test_predict_on_an_error_envelope_prints_it_and_exits_1(
    api: FakeAPI, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a model that refuses the request's shape
    envelope = {"error": {"code": "SHAPE_MISMATCH", "message": "expected 4 features, got 3"}}
    api.queue = [Reply(400, envelope)]
    stdin(monkeypatch, '{"data": [[1, 2, 3]]}')

    # WHEN the request is sent from stdin
    code, out, err = run(capsys, "predict", DEP, "--input", "-")

    # THEN the envelope is printed, and the error is one line: exit 1
    assert code == 1
    assert json.loads(out) == envelope
    assert err == "serveml: error: SHAPE_MISMATCH: expected 4 features, got 3\n"


def test_predict_refuses_a_file_that_is_not_json(
    api: FakeAPI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = tmp_path / "request.json"
    request.write_text("{not json")
    code, _, err = run(capsys, "predict", DEP, "--input", str(request))
    assert code == 2
    assert "is not valid JSON" in err
    assert api.requests == []


# -- --verbose ---------------------------------------------------------------------------------


@pytest.fixture
def quiet_client_logger() -> Iterator[None]:
    """``--verbose`` configures the ``serveml.client`` logger; put it back for the other tests."""
    import logging

    logger = logging.getLogger("serveml.client")
    saved: dict[str, Any] = {"handlers": list(logger.handlers), "level": logger.level, "propagate": logger.propagate}
    yield
    logger.handlers = saved["handlers"]
    logger.setLevel(saved["level"])
    logger.propagate = saved["propagate"]


@pytest.mark.parametrize(
    ("argv", "env"),
    [(["--verbose", "status", DEP], None), (["status", DEP, "-v"], None), (["status", DEP], "1")],
)
@pytest.mark.usefixtures("quiet_client_logger")
def test_verbose_logs_each_request_but_never_the_token(
    api: FakeAPI,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    env: str | None,
) -> None:
    # GIVEN --verbose before or after the command, or SERVEML_DEBUG
    if env is not None:
        monkeypatch.setenv("SERVEML_DEBUG", env)
    api.queue = [Reply(200, {"id": DEP, "status": "ready"})]

    # WHEN a command runs
    code, _, err = run(capsys, *argv)

    # THEN stderr has the request's line, and not the token
    assert code == 0
    assert re.search(rf"^serveml: GET {re.escape(api.url)}/api/v1/deployments/{DEP} -> 200 \(\d+ ms\)$", err, re.M)
    assert "saved-token" not in err


def test_without_verbose_there_is_no_request_log(api: FakeAPI, capsys: pytest.CaptureFixture[str]) -> None:
    api.queue = [Reply(200, {"id": DEP, "status": "ready"})]
    _, _, err = run(capsys, "status", DEP)
    assert err == ""
