"""Fixtures for end-to-end tests: real ``serveml serve`` processes (the Lambda Runtime Interface
Emulator running awslambdaric) on free loopback ports, and models from the test zoo."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.modelzoo import ZooModel, build

ROOT = Path(__file__).resolve().parents[2]
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
# The first invocation loads the model (TensorFlow's import alone takes many seconds on a busy machine).
INVOKE_TIMEOUT_S = 240.0
START_TIMEOUT_S = 60.0
LOG_TAIL_LINES = 200

# Loopback only: an HTTP(S)_PROXY from the environment must not see these requests.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def serveml_command() -> list[str]:
    """The installed ``serveml`` script beside this Python, else the same CLI through ``-m``."""
    script = Path(sys.executable).with_name("serveml")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "serveml"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Invocation:
    """One invocation's HTTP status and decoded JSON body."""

    status: int
    body: Any


class Emulator:
    """Something a Runtime Interface Emulator serves on 127.0.0.1:``port``; invoked like Lambda."""

    port: int

    @property
    def endpoint(self) -> str:
        """The base URL, as boto3's ``endpoint_url``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Where ``aws lambda invoke`` would POST: the emulator's invocations URL."""
        return self.endpoint + INVOKE_PATH

    def invoke(self, event: Any, timeout: float = INVOKE_TIMEOUT_S) -> Invocation:
        """POST ``event`` as JSON and return the status and decoded answer; a non-2xx status (the
        emulator answers an init error with 502) is returned, not raised."""
        request = urllib.request.Request(
            self.url, data=json.dumps(event).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                return Invocation(response.status, json.loads(response.read()))
        except urllib.error.HTTPError as error:
            with error:
                return Invocation(error.code, json.loads(error.read()))


@dataclass
class Server(Emulator):
    """A running ``serveml serve``: where it listens and where its output goes."""

    model: Path
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-LOG_TAIL_LINES:])


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``: the emulator puts the Python runtime in a process group of its own."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (serveml and the emulator), then SIGKILL whatever is left."""
    below = _descendants(process.pid)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)
    for pid in below:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"serveml serve exited with {process.returncode} before listening:\n{log.read_text(errors='replace')}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"serveml serve did not listen on {port} in {START_TIMEOUT_S} s:\n{log.read_text()}")


@contextmanager
def running_server(model: Path, log_dir: Path, *extra: str) -> Iterator[Server]:
    """Start ``serveml serve MODEL`` on a free port, wait until it accepts connections, stop it after."""
    port = free_port()
    log = log_dir / f"serve-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*serveml_command(), "serve", str(model), "--port", str(port), *extra],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            # Its own process group, so teardown can signal serveml and the emulator without pytest.
            start_new_session=True,
        )
    try:
        _wait_until_listening(process, port, log)
        yield Server(model=model, port=port, process=process, log=log)
    finally:
        _stop(process)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the output of every server a failed test used to its report."""
    report: pytest.TestReport = yield
    if report.failed:
        funcargs: dict[str, Any] = getattr(item, "funcargs", {})
        for value in funcargs.values():
            if isinstance(value, Server):
                report.sections.append((f"serveml serve {value.model} (last {LOG_TAIL_LINES} lines)", value.output()))
    return report


# The frameworks every end-to-end run covers: one model file per framework family.
E2E_KINDS = ["sklearn-joblib", "onnx", "torchscript", "keras"]


@pytest.fixture(scope="module", params=E2E_KINDS)
def zoo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ZooModel:
    """A model of one zoo kind, built into a fresh directory."""
    kind: str = request.param
    return build(kind, tmp_path_factory.mktemp(kind))


@pytest.fixture(scope="module")
def server(zoo: ZooModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``serveml serve`` per zoo kind, shared by the module's tests."""
    with running_server(Path(zoo.path), tmp_path_factory.mktemp("logs")) as running:
        yield running


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers for one test only; each is stopped when the test ends."""
    with ExitStack() as stack:

        def start(model: Path, *extra: str) -> Server:
            return stack.enter_context(running_server(model, tmp_path, *extra))

        yield start


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials and region, so boto3 signs requests without looking for real ones."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


#: Image sizes the container tests measured, reported at the end of the run (MB).
IMAGE_SIZES: dict[str, float] = {}
#: Per framework, what the soak test measured (tests/e2e/test_soak.py), reported at the end.
SOAK_RESULTS: dict[str, dict[str, Any]] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if IMAGE_SIZES:
        terminalreporter.section("image sizes")
        for tag, size in sorted(IMAGE_SIZES.items()):
            terminalreporter.write_line(f"{tag}: {size:.0f} MB")
    if SOAK_RESULTS:
        terminalreporter.section("soak through the emulator")
        for kind, figures in SOAK_RESULTS.items():
            terminalreporter.write_line(f"{kind}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
