"""Smoke test of the benchmark command: ``python -m bench --quick`` writes both result files and
times every contender of every case."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_quick_bench_writes_every_contender(tmp_path: Path) -> None:
    from bench.contenders import NAMES, RATIOS

    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "RESULTS.md").read_text().startswith("# ServeML handler benchmark")
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results["latency"]) == 2
    for case in results["latency"]:
        assert set(case["contenders"]) == set(NAMES)
        for stats in case["contenders"].values():
            assert stats["n"] == case["repetitions"] > 0
            assert 0 < stats["p50_us"] <= stats["p99_us"]
        assert {label for label, _, _ in RATIOS} == set(case["ratios_p50"])
        assert all(ratio > 0 for ratio in case["ratios_p50"].values())
    assert results["coldstart"], "no cold-start figures"
    for cold in results["coldstart"]:
        for who in ("serveml", "bare"):
            assert all(value > 0 for value in cold[who].values())
