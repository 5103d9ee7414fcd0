"""End to end: the Lambda Python base image (AWS's, or the stand-in scripts/lambda-base-image.sh builds)
runs a handler baked into an image on top of it, behind the Runtime Interface Emulator or, on Lambda,
straight against a Runtime API."""

from __future__ import annotations

import json
import queue
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.e2e.docker_support import (
    base_image,
    build_image,
    container,
    docker,
    free_port,
    image_size_mb,
    remove_image,
    run_container,
)

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

# Reports what the function sees of its environment, so the tests can check the layout from inside.
APP = """\
import os
import sys


def handler(event, context):
    return {
        "echo": event,
        "python": list(sys.version_info[:2]),
        "executable": sys.executable,
        "cwd": os.getcwd(),
        "uid": os.getuid(),
        "handler": os.environ.get("_HANDLER"),
        "task_root": os.environ.get("LAMBDA_TASK_ROOT"),
        "runtime_api": os.environ.get("AWS_LAMBDA_RUNTIME_API"),
        "request_id": context.aws_request_id,
    }
"""
RESPONSE_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def base() -> str:
    return base_image()


@pytest.fixture(scope="module")
def app_image(base: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A tiny function image: the base, app.py in /var/task, and its handler as CMD, as AWS documents it."""
    context = tmp_path_factory.mktemp("app-image")
    (context / "app.py").write_text(APP)
    (context / "Dockerfile").write_text(f'FROM {base}\nCOPY app.py /var/task/\nCMD ["app.handler"]\n')
    tag = f"serveml-test/base-image-app:{uuid.uuid4().hex[:12]}"
    build_image(context, tag)
    yield tag
    remove_image(tag)


def test_the_base_image_has_the_lambda_layout(base: str) -> None:
    # GIVEN the base image, pulled or built
    # WHEN its configuration is read
    config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", base).stdout)
    env = dict(item.split("=", 1) for item in config["Env"])

    # THEN it starts like AWS's: /lambda-entrypoint.sh, in /var/task, with the Lambda variables
    print(f"\nbase image {base}: {image_size_mb(base):.0f} MB")
    assert config["Entrypoint"] == ["/lambda-entrypoint.sh"]
    assert config["WorkingDir"] == "/var/task"
    assert env["LAMBDA_TASK_ROOT"] == "/var/task"
    assert env["LAMBDA_RUNTIME_DIR"] == "/var/runtime"
    assert env["PATH"].startswith("/var/lang/bin:")


def test_the_entrypoint_has_both_branches_and_awslambdaric_imports(base: str) -> None:
    # GIVEN the base image
    # WHEN its entrypoint script is read and its Python imports the runtime client, as a non-root user
    script = docker("run", "--rm", "--entrypoint", "cat", base, "/lambda-entrypoint.sh").stdout
    imported = docker(
        "run",
        "--rm",
        "--user",
        "65534:65534",
        # AWS's image keeps awslambdaric in /var/runtime; the stand-in in /var/lang's site-packages.
        "--env",
        "PYTHONPATH=/var/runtime",
        "--entrypoint",
        "/var/lang/bin/python",
        base,
        "-c",
        "import sys, awslambdaric; print(sys.version_info[:2])",
        check=False,
    )

    # THEN the script starts the emulator without a Runtime API and the runtime alone with one ...
    assert "AWS_LAMBDA_RUNTIME_API" in script
    assert "/usr/local/bin/aws-lambda-rie" in script
    # ... AND awslambdaric imports under Python 3.11 for a user that owns none of the files
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "(3, 11)"


def test_a_handler_on_the_base_answers_through_the_emulator(app_image: str) -> None:
    # GIVEN a function image built FROM the base, run without AWS_LAMBDA_RUNTIME_API
    with run_container(app_image, free_port()) as function:
        # WHEN it is invoked twice over HTTP on 127.0.0.1
        first = function.invoke({"ping": 1})
        second = function.invoke({"ping": 2})

        # THEN the emulator in the image hands both events to the handler in /var/task
        assert first.status == 200, function.logs()
        assert first.body["echo"] == {"ping": 1}, function.logs()
        assert second.body["echo"] == {"ping": 2}, function.logs()
        assert first.body["handler"] == "app.handler"
        assert first.body["task_root"] == "/var/task"
        assert first.body["cwd"] == "/var/task"
        assert first.body["python"] == [3, 11]
        assert first.body["executable"].startswith("/var/lang/bin/python")
        assert first.body["request_id"] != second.body["request_id"]


def test_a_handler_on_the_base_answers_as_a_non_root_user(app_image: str) -> None:
    # GIVEN the function image run as a user that owns none of its files, as Lambda runs functions
    with run_container(app_image, free_port(), docker_args=["--user", "65534:65534"]) as function:
        # WHEN it is invoked
        answer = function.invoke({"ping": "nobody"})

    # THEN the emulator, Python and the handler can all read what they need
    assert answer.status == 200, answer.body
    assert answer.body["echo"] == {"ping": "nobody"}
    assert answer.body["uid"] == 65534


class FakeRuntimeApi:
    """Just enough of the Lambda Runtime API on 127.0.0.1 to hand out one event and take its response."""

    def __init__(self, event: Any, request_id: str) -> None:
        self.posted: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._release = threading.Event()
        handed_out = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/2018-06-01/runtime/invocation/next":
                    self._reply(404, {"errorMessage": self.path})
                    return
                if handed_out.is_set():
                    # The runtime asks for its next event right after answering: hold it until teardown,
                    # then hang up without a word (the container is gone by then).
                    api._release.wait(RESPONSE_TIMEOUT_S)
                    self.close_connection = True
                    return
                handed_out.set()
                self._reply(
                    200,
                    event,
                    {
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": "9999999999999",
                        "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:000000000000:function:test",
                        "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
                    },
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                api.posted.put((self.path, json.loads(body) if body else None))
                self._reply(202, {"status": "OK"})

            def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeRuntimeApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


def test_with_a_runtime_api_set_the_entrypoint_runs_awslambdaric_directly(app_image: str) -> None:
    # GIVEN a Runtime API outside the container that has one event, as Lambda's service would
    request_id = str(uuid.uuid4())
    api = FakeRuntimeApi({"ping": "lambda"}, request_id)
    # WHEN the function image runs with AWS_LAMBDA_RUNTIME_API pointing at it (host network)
    with (
        api,
        container(
            app_image, env={"AWS_LAMBDA_RUNTIME_API": api.address}, docker_args=["--network", "host"]
        ) as function,
    ):
        try:
            path, body = api.posted.get(timeout=RESPONSE_TIMEOUT_S)
        except queue.Empty:
            pytest.fail(f"the runtime posted nothing in {RESPONSE_TIMEOUT_S:.0f} s:\n{function.logs()}")

        # THEN awslambdaric itself fetched the event and posted the handler's answer back to that API
        assert path == f"/2018-06-01/runtime/invocation/{request_id}/response", (body, function.logs())
        assert body["echo"] == {"ping": "lambda"}
        assert body["request_id"] == request_id
        assert body["runtime_api"] == api.address
        # ... AND no emulator stood in between
        assert "(rapid)" not in function.logs()
