"""End to end: ``serveml controlplane`` (the real API handler behind a local HTTP server, on a real
moto server) driven by the ``serveml`` commands a user would type, each in a process of its own.

The build pipeline is not triggered locally (moto's S3 notifications are not wired), so a deployment
stays ``uploading`` after its upload: these tests cover login, deploy up to the upload, status, logs
and a prediction refused as not ready.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

try:
    import controlplane.api  # noqa: F401 - only whether it imports
except ImportError as exc:
    pytest.skip(f"controlplane.api cannot be imported yet: {exc}", allow_module_level=True)

from tests.e2e.conftest import free_port, serveml_command
from tests.modelzoo import build

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 120.0
EMAIL = "e2e@example.com"
PASSWORD = "correct horse battery staple"
# Loopback only: an HTTP(S)_PROXY from the environment must not see these requests.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def clean_env(home: Path) -> dict[str, str]:
    """This environment without the user's SERVEML_*/AWS_* settings, with its own HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SERVEML_", "AWS_"))}
    env["HOME"] = str(home)
    # controlplane/ is not in the installed package list: it is imported from the checkout.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return env


@dataclass
class ControlPlane:
    process: subprocess.Popen[bytes]
    url: str
    moto_port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        """Ctrl-C, as a user would stop it; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_control_plane(home: Path) -> ControlPlane:
    port, moto_port = free_port(), free_port()
    log = home / f"controlplane-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                *serveml_command(),
                "controlplane",
                "--port",
                str(port),
                "--moto-port",
                str(moto_port),
                "--user",
                EMAIL,
                "--password",
                PASSWORD,
            ],
            cwd=ROOT,
            env=clean_env(home),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    plane = ControlPlane(process, f"http://127.0.0.1:{port}", moto_port, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise AssertionError(f"serveml controlplane exited with {process.returncode}:\n{plane.output()}")
        try:
            with _OPENER.open(f"{plane.url}/health", timeout=5) as answer:
                if answer.status == 200:
                    return plane
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            plane.stop()
            raise AssertionError(f"serveml controlplane did not answer within {START_TIMEOUT_S:g} s:\n{plane.output()}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def plane(home: Path) -> Iterator[ControlPlane]:
    started = start_control_plane(home)
    try:
        yield started
    finally:
        started.stop()


def serveml(plane: ControlPlane, home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = clean_env(home)
    env["SERVEML_API_URL"] = plane.url
    return subprocess.run(
        [*serveml_command(), *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


@pytest.fixture(scope="module")
def logged_in(plane: ControlPlane, home: Path) -> Path:
    """Log in as the demo user, the password on stdin; the credentials file."""
    done = serveml(plane, home, "login", "--email", EMAIL, "--password-stdin", stdin=f"{PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    return home / ".serveml" / "credentials"


@pytest.fixture(scope="module")
def deployment(plane: ControlPlane, home: Path, logged_in: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small scikit-learn model deployed with --no-wait; its id."""
    model = build("sklearn-joblib", tmp_path_factory.mktemp("model")).path
    done = serveml(plane, home, "deploy", str(model), "--no-wait")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_bad_credentials_are_refused_in_the_servers_words(plane: ControlPlane, home: Path) -> None:
    # GIVEN the running control plane WHEN a wrong password is given
    done = serveml(plane, home, "login", "--email", EMAIL, "--password-stdin", stdin="not the password\n")

    # THEN one line, the server's code and message, and exit 1
    assert done.returncode == 1
    assert done.stderr == "serveml: error: UNAUTHORIZED: Invalid or expired token\n"
    assert done.stdout == ""


def test_login_saves_a_token_only_the_user_can_read(logged_in: Path, plane: ControlPlane) -> None:
    # GIVEN a login with the demo user's password THEN the token is saved for this server, mode 0600
    assert stat.S_IMODE(logged_in.stat().st_mode) == 0o600
    saved = json.loads(logged_in.read_text())
    assert saved["api_url"] == plane.url
    assert saved["token"].count(".") == 2  # a JWT


def test_deploy_uploads_the_model_to_the_bucket(plane: ControlPlane, deployment: str, tmp_path: Path) -> None:
    # GIVEN a model deployed with --no-wait THEN its id is printed alone on stdout
    assert re.fullmatch(r"dep-[0-9a-f]{12}", deployment)

    # ... AND the file arrived in moto's S3 through the presigned URL, under the deployment
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{plane.moto_port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    bucket = s3.list_buckets()["Buckets"][0]["Name"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert any(key.endswith(f"/{deployment}/model/model.joblib") for key in keys), keys


def test_status_shows_the_deployment_waiting_for_its_pipeline(plane: ControlPlane, home: Path, deployment: str) -> None:
    # WHEN its status is asked for
    done = serveml(plane, home, "status", deployment)

    # THEN it is the deployment, still "uploading": the pipeline is not triggered locally
    assert done.returncode == 0, done.stderr
    assert re.search(rf"^id:\s+{deployment}$", done.stdout, re.MULTILINE)
    assert re.search(r"^status:\s+uploading$", done.stdout, re.MULTILINE)
    as_json = json.loads(serveml(plane, home, "status", deployment, "--json").stdout)
    assert as_json["id"] == deployment


@pytest.mark.parametrize("log_type", ["build", "runtime"])
def test_logs_of_a_deployment_not_yet_built_are_empty(
    plane: ControlPlane, home: Path, deployment: str, log_type: str
) -> None:
    done = serveml(plane, home, "logs", deployment, "--type", log_type, "--tail", "10")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert f"no {log_type} log events for {deployment}" in done.stderr


def test_predict_on_a_deployment_not_ready_is_a_clean_error_envelope(
    plane: ControlPlane, home: Path, deployment: str, tmp_path: Path
) -> None:
    # GIVEN a request for the not-yet-ready deployment
    request = tmp_path / "request.json"
    request.write_text('{"data": [[5.1, 3.5, 1.4, 0.2]]}')

    # WHEN it is sent
    done = serveml(plane, home, "predict", deployment, "--input", str(request))

    # THEN the API's error envelope is printed, its code and message are the error line, exit 1
    assert done.returncode == 1
    envelope = json.loads(done.stdout)
    assert envelope["error"]["code"] == "NOT_READY"
    assert done.stderr == f"serveml: error: NOT_READY: {envelope['error']['message']}\n"
    assert "Traceback" not in done.stderr


def test_an_unknown_deployment_is_not_found(plane: ControlPlane, home: Path, logged_in: Path) -> None:
    done = serveml(plane, home, "status", "dep-000000000000")
    assert (done.returncode, done.stderr) == (1, "serveml: error: NOT_FOUND: Deployment not found\n")


def test_ctrl_c_stops_the_api_and_moto(tmp_path: Path) -> None:
    # GIVEN a control plane of its own
    plane = start_control_plane(tmp_path)
    assert f"demo user {EMAIL} / {PASSWORD}" in plane.output()

    # WHEN it is sent Ctrl-C
    code = plane.stop()

    # THEN it exits cleanly, and moto's port is closed too: no server is left behind
    assert code == 0, plane.output()
    assert "control plane stopped" in plane.output()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        assert probe.connect_ex(("127.0.0.1", plane.moto_port)) != 0
