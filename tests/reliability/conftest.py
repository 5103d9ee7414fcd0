"""Fixtures of the reliability tests: servers for one test (the e2e helpers), and the marker file
that a hostile model would create if any of its code ran."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, running_server


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start ``serveml serve`` processes for one test; each is stopped when the test ends."""
    with ExitStack() as stack:

        def start(model: Path, *extra: str) -> Server:
            return stack.enter_context(running_server(model, tmp_path, *extra))

        yield start


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """Where the payloads write; it must never appear."""
    return tmp_path / "PWNED"
