"""Helpers for end-to-end tests that build and run Lambda container images on the local Docker engine.

Not a test module. The engine comes from ``scripts/docker-engine.sh start`` and the base image from
``scripts/lambda-base-image.sh``: AWS's ``public.ecr.aws/lambda/python:3.11`` where it can be had, else
the stand-in ``serveml/lambda-python:3.11`` with the same layout.

Containers run with ``--network host`` and talk to 127.0.0.1 only. There is no ``-p`` mapping on the
host network, so the stand-in's ``/lambda-entrypoint.sh`` reads where its emulator listens from
``AWS_LAMBDA_RIE_ADDRESS`` (and its Runtime API from ``AWS_LAMBDA_RIE_RUNTIME_API_ADDRESS``, so that
containers running at once do not all take 127.0.0.1:9001). AWS's own image knows neither variable;
for it, :func:`run_container` publishes the emulator's port 8080 the documented way
(``-p 127.0.0.1:PORT:8080``, on the default bridge network).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import Emulator, free_port

ROOT = Path(__file__).resolve().parents[2]
ENGINE_SCRIPT = ROOT / "scripts" / "docker-engine.sh"
BASE_IMAGE_SCRIPT = ROOT / "scripts" / "lambda-base-image.sh"

ENGINE_PROBE_TIMEOUT_S = 10.0
DOCKER_TIMEOUT_S = 60.0
# Building the stand-in from nothing: debootstrap (about a minute) plus pip in a docker build.
BASE_IMAGE_TIMEOUT_S = 1200.0
BUILD_TIMEOUT_S = 900.0
START_TIMEOUT_S = 60.0
LOG_TAIL_LINES = 200
# Every container and image the tests make carries it, so leftovers are easy to find and remove.
TEST_LABEL = "org.serveml.test=1"
# Set on the stand-in by scripts/lambda-base-image.sh; images built FROM it inherit it.
STANDIN_LABEL = "org.serveml.recipe"


class DockerError(RuntimeError):
    """A docker command failed; the message carries its output."""


def docker(*args: str, timeout: float = DOCKER_TIMEOUT_S, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``docker ARGS`` and capture its output; raise :class:`DockerError` on failure when ``check``."""
    result = subprocess.run(
        ["docker", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise DockerError(
            f"docker {' '.join(args)} exited with {result.returncode}:\n{result.stdout}{result.stderr}".rstrip()
        )
    return result


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def engine_available(timeout_s: float = ENGINE_PROBE_TIMEOUT_S) -> bool:
    """True when a docker client is installed and ``docker info`` answers within ``timeout_s``."""
    if shutil.which("docker") is None:
        return False
    try:
        return docker("info", timeout=timeout_s, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def require_engine() -> None:
    """Skip the calling test when no Docker engine runs; fail it instead in CI, where a skip would hide
    that the container tests never ran."""
    if engine_available():
        return
    reason = f"no Docker engine answers `docker info`; start one with `bash {ENGINE_SCRIPT.relative_to(ROOT)} start`"
    if in_ci():
        pytest.fail(f"{reason} (CI=true: the container tests must run in CI, so this is a failure)", pytrace=False)
    pytest.skip(reason)


def find_base_image() -> tuple[str | None, str]:
    """Run ``scripts/lambda-base-image.sh``: the base image's name and "", or None and why not.

    stdout is the image name alone; the script's progress goes to stderr, which is left to the
    caller's (pytest captures it and shows it live under -s; the bench shows it as it goes)."""
    try:
        result = subprocess.run(
            ["bash", str(BASE_IMAGE_SCRIPT)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            timeout=BASE_IMAGE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"{BASE_IMAGE_SCRIPT.name} did not finish in {BASE_IMAGE_TIMEOUT_S:.0f} s"
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        return None, f"{BASE_IMAGE_SCRIPT.name} exited with {result.returncode} (its stderr says why)"
    return lines[-1].strip(), ""


@functools.cache
def _base_image() -> str:
    name, why = find_base_image()
    if name is None:
        pytest.fail(why, pytrace=False)
    return name


def base_image() -> str:
    """The Lambda Python base image's name, found or built by ``scripts/lambda-base-image.sh`` once per
    test session. Skips (or fails in CI) without an engine."""
    require_engine()
    return _base_image()


def is_standin(image: str) -> bool:
    """True for the stand-in and every image built on it (they inherit its label)."""
    labels = docker("image", "inspect", "--format", "{{json .Config.Labels}}", image).stdout.strip()
    return STANDIN_LABEL in (json.loads(labels) or {})


def image_size_mb(tag: str) -> float:
    """The image's size in MB (10**6 bytes, as ``docker images`` counts), all layers included."""
    return int(docker("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip()) / 1e6


def build_image(
    context: Path, tag: str, *, dockerfile: Path | None = None, build_args: Mapping[str, str] | None = None
) -> None:
    """``docker build --network host`` (the classic builder, as the base image script uses) of ``context``."""
    args = ["build", "--network", "host", "--label", TEST_LABEL, "--tag", tag]
    for name, value in (build_args or {}).items():
        args += ["--build-arg", f"{name}={value}"]
    if dockerfile is not None:
        args += ["--file", str(dockerfile)]
    result = subprocess.run(
        ["docker", *args, str(context)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    if result.returncode != 0:
        raise DockerError(f"docker build of {tag} exited with {result.returncode}:\n{result.stdout}{result.stderr}")


def remove_image(tag: str) -> None:
    """Remove an image if it exists; never raises, so it can stand in a teardown."""
    with suppress(subprocess.TimeoutExpired):
        docker("image", "rm", "--force", tag, check=False)


@dataclass
class Container:
    """A container started by :func:`container`: its id, its output and its state."""

    id: str
    image: str

    def logs(self, tail: int = LOG_TAIL_LINES) -> str:
        """The last ``tail`` lines of its stdout and stderr (the container is kept until exit, so a
        crashed one still has them)."""
        try:
            result = docker("logs", "--tail", str(tail), self.id, check=False)
        except subprocess.TimeoutExpired:
            return "(docker logs timed out)"
        return (result.stdout + result.stderr).rstrip()

    def running(self) -> bool:
        result = docker("inspect", "--format", "{{.State.Running}}", self.id, check=False)
        return result.stdout.strip() == "true"


@dataclass
class ContainerHandle(Container, Emulator):
    """A container whose Runtime Interface Emulator accepts invocations on 127.0.0.1:``port``."""

    port: int


@contextmanager
def container(
    image: str,
    *,
    env: Mapping[str, str] | None = None,
    docker_args: Sequence[str] = (),
    command: Sequence[str] = (),
) -> Iterator[Container]:
    """``docker run -d`` the image and force-remove the container at exit.

    No ``--rm``: a container that dies at start-up keeps its logs until the exit removes it. Only the
    variables in ``env`` are passed in (none from this process).
    """
    args = ["run", "--detach", "--label", TEST_LABEL]
    for name, value in (env or {}).items():
        args += ["--env", f"{name}={value}"]
    result = docker(*args, *docker_args, image, *command)
    started = Container(id=result.stdout.strip(), image=image)
    try:
        yield started
    finally:
        with suppress(subprocess.TimeoutExpired):
            docker("rm", "--force", started.id, check=False)


def _wait_until_listening(handle: ContainerHandle) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", handle.port), timeout=1):
                return
        except OSError:
            pass
        if not handle.running():
            raise AssertionError(f"container of {handle.image} exited before listening:\n{handle.logs()}")
        time.sleep(0.2)
    raise AssertionError(
        f"container of {handle.image} did not listen on {handle.port} in {START_TIMEOUT_S:.0f} s:\n{handle.logs()}"
    )


@contextmanager
def run_container(
    image: str,
    port: int,
    env: Mapping[str, str] | None = None,
    *,
    docker_args: Sequence[str] = (),
    command: Sequence[str] = (),
) -> Iterator[ContainerHandle]:
    """Run a Lambda image with its emulator on 127.0.0.1:``port``, wait until that port answers, and
    remove the container at exit.

    ``command`` is the handler (``["runtime.handler.handler"]``) when the image has no CMD of its own.
    ``AWS_LAMBDA_RUNTIME_API`` stays unset, so the entrypoint starts the emulator in front of awslambdaric.
    """
    if is_standin(image):
        runtime_api_port = free_port()
        while runtime_api_port == port:
            runtime_api_port = free_port()
        placement = {
            "AWS_LAMBDA_RIE_ADDRESS": f"127.0.0.1:{port}",
            "AWS_LAMBDA_RIE_RUNTIME_API_ADDRESS": f"127.0.0.1:{runtime_api_port}",
        }
        network = ["--network", "host"]
    else:
        # AWS's own image: its emulator listens on 8080 inside the container's network namespace.
        placement = {}
        network = ["--publish", f"127.0.0.1:{port}:8080"]
    with container(
        image, env={**placement, **(env or {})}, docker_args=[*network, *docker_args], command=command
    ) as started:
        handle = ContainerHandle(id=started.id, image=image, port=port)
        _wait_until_listening(handle)
        yield handle
