"""Find the AWS Lambda Runtime Interface Emulator that ships inside the aws-sam-cli wheel.

SAM CLI copies this binary into its containers; ``serveml serve`` runs it directly on the host
instead, so a model can be invoked exactly as Lambda would invoke it without Docker.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import socket
import stat
import sys
from pathlib import Path

# platform.machine() spells one architecture several ways depending on the OS.
_ARCHES = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "aarch64": "arm64",
    "arm64": "arm64",
}


class RIENotFound(Exception):
    """The emulator binary is not available for this machine."""


def rie_arch(machine: str | None = None) -> str:
    """The emulator's name for the CPU architecture ``machine`` (default: this machine's)."""
    name = (machine if machine is not None else platform.machine()).lower()
    try:
        return _ARCHES[name]
    except KeyError:
        raise RIENotFound(
            f"the Lambda Runtime Interface Emulator is built for x86_64 and arm64 only, not {name or 'unknown'}"
        ) from None


def find_rie(machine: str | None = None) -> Path:
    """Path of the executable emulator for ``machine``, made executable if the wheel lost the mode bits."""
    arch = rie_arch(machine)
    # find_spec rather than import: importing samcli pulls in most of its dependencies.
    spec = importlib.util.find_spec("samcli")
    if spec is None or not spec.submodule_search_locations:
        raise RIENotFound(
            "aws-sam-cli is not installed; it ships the Lambda Runtime Interface Emulator "
            "(install it with: pip install aws-sam-cli)"
        )
    candidates = [Path(loc) / "local" / "rapid" / f"aws-lambda-rie-{arch}" for loc in spec.submodule_search_locations]
    binary = next((c for c in candidates if c.is_file()), None)
    if binary is None:
        raise RIENotFound(f"aws-sam-cli is installed but has no emulator at {candidates[0]}")
    if not os.access(binary, os.X_OK):
        try:
            binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        except OSError as exc:
            raise RIENotFound(f"{binary} is not executable and cannot be made so: {exc.strerror or exc}") from exc
    return binary


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def command(rie: Path, host: str, port: int, handler: str) -> list[str]:
    """The emulator on ``host:port`` running awslambdaric with ``handler`` in this Python.

    The emulator's internal Runtime API defaults to 127.0.0.1:9001, so a second emulator (or
    anything else on 9001) would make it panic; each one gets its own free port instead.
    """
    return [
        str(rie),
        "--runtime-interface-emulator-address",
        f"{host}:{port}",
        "--runtime-api-address",
        f"127.0.0.1:{free_loopback_port()}",
        sys.executable,
        "-m",
        "awslambdaric",
        handler,
    ]
