"""Fixtures of the fuzz tests: one loaded Service per zoo model, built once per session; and the
number of cases each model ran, printed in the terminal summary."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from runtime.service import Service, load_service
from tests.fuzz.harness import TALLY, WEIGHTS, nightly, total_examples
from tests.modelzoo import ZooModel, build


@pytest.fixture(scope="session")
def fuzz_models(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[ZooModel, Service]]:
    """kind -> (zoo model, its loaded Service); each built and loaded on first use only."""
    loaded: dict[str, tuple[ZooModel, Service]] = {}

    def get(kind: str) -> tuple[ZooModel, Service]:
        if kind not in loaded:
            zoo = build(kind, tmp_path_factory.mktemp(f"fuzz-{kind}"))
            loaded[kind] = (zoo, load_service(zoo.path))
        return loaded[kind]

    return get


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY:
        return
    write = terminalreporter.write_line
    mode = "nightly (SERVEML_FUZZ_EXAMPLES, random)" if nightly() else "CI (derandomized)"
    terminalreporter.section("serveml fuzz")
    write(f"target {total_examples():,} cases, {mode}")
    grand = 0
    for kind in WEIGHTS:
        tally = TALLY.get(kind)
        if not tally:
            continue
        cases = tally["cases"]
        grand += cases
        predictions = tally["prediction"] + tally["v2"]
        errors = sum(n for outcome, n in tally.items() if outcome.startswith("error:"))
        codes = ", ".join(
            f"{outcome[6:]} {n}"
            for outcome, n in sorted(tally.items(), key=lambda i: -i[1])
            if outcome.startswith("error:")
        )
        write(
            f"{kind:18} {cases:6,} cases: {predictions:,} answered ({tally['checked']:,} checked against the model), "
            f"{errors:,} errors, {tally['refused']:,} refused as events, {tally['warmed'] + tally['health']:,} "
            f"warm-up/health; {tally['good']:,} good requests after them"
        )
        write(f"{'':18} codes: {codes}")
    write(f"total {grand:,} cases")
