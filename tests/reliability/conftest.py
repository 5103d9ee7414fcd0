"""Fixtures of the reliability tests: servers for one test (the e2e helpers), and the marker file
that a hostile model would create if any of its code ran."""

from __future__ import annotations

from pathlib import Path

import pytest

# The e2e suite's fixture, imported so that pytest offers it here too (one definition).
from tests.e2e.conftest import start_server

__all__ = ["marker", "start_server"]


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """Where the payloads write; it must never appear."""
    return tmp_path / "PWNED"
