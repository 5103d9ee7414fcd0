"""Warm latency through the real Runtime Interface Emulator: each contender served by its own
emulator + awslambdaric process on a loopback port, invoked over one kept-alive HTTP connection.

This is the path a request takes under ``sam local invoke``, ``docker run -p 9000:8080`` and
``serveml serve``: HTTP into the emulator, the Runtime API to awslambdaric, the handler, and back.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bench.contenders import FASTAPI, MINIMAL, SERVEML, SERVEML_HTTP, Call, payloads
from bench.models import Case
from serveml.rie import command, find_rie, free_loopback_port

ROOT = Path(__file__).resolve().parents[1]
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
#: The first invocation loads the model; TensorFlow's import alone takes seconds.
FIRST_CALL_TIMEOUT_S = 240.0


class Server:
    """One emulator process serving ``handler``; ``invoke(body)`` returns the answer's bytes."""

    def __init__(self, handler: str, env: dict[str, str]) -> None:
        self.port = free_loopback_port()
        self.process = subprocess.Popen(
            command(find_rie(), "127.0.0.1", self.port, handler),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", **env},
            stdout=subprocess.DEVNULL,  # ServeML's log lines are written, and dropped here
            stderr=subprocess.DEVNULL,
        )
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=FIRST_CALL_TIMEOUT_S)
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the emulator exited with {self.process.returncode}")
            try:
                self.connection.connect()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"the emulator did not listen on 127.0.0.1:{self.port} within 30 s")

    def invoke(self, body: bytes) -> bytes:
        self.connection.request("POST", INVOKE_PATH, body, {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        answer = response.read()
        if response.status != 200:
            raise RuntimeError(f"the emulator answered {response.status}: {answer[:300]!r}")
        return answer

    def close(self) -> None:
        self.connection.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def served(case: Case) -> Iterator[dict[str, Call]]:
    """The RIE contenders of ``case``, ready (each answered once: init is not in the timings)."""
    direct, http = payloads(case.rows)
    bench_env = {"BENCH_KIND": case.kind, "BENCH_MODEL": str(case.model_file)}
    with ExitStack() as stack:

        def start(handler: str, env: dict[str, str]) -> Server:
            server = Server(handler, env)
            stack.callback(server.close)
            return server

        serveml = start("runtime.handler.handler", {"SERVEML_MODEL_PATH": str(case.model_dir)})
        minimal = start("bench.lambda_app.handler", {**bench_env, "BENCH_APP": "minimal"})
        fastapi = start("bench.lambda_app.handler", {**bench_env, "BENCH_APP": "fastapi"})
        calls: dict[str, Call] = {
            SERVEML: _call(serveml, direct),
            SERVEML_HTTP: _call(serveml, http),
            MINIMAL: _call(minimal, direct),
            FASTAPI: _call(fastapi, http),
        }
        yield calls


def _call(server: Server, body: bytes) -> Call:
    def call() -> Any:
        return server.invoke(body)

    return call
