"""Smoke test of the benchmark command: ``python -m bench --quick`` writes both result files,
times every contender of every case in-process and through the real emulator, and checks the
targets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_quick_bench_writes_every_contender(tmp_path: Path) -> None:
    from bench.contenders import NAMES, RATIOS, RIE_NAMES

    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=230,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "RESULTS.md").read_text().startswith("# ServeML handler benchmark")
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results["latency"]) == 2
    for case in results["latency"]:
        for path, names in (("in_process", NAMES), ("rie", RIE_NAMES)):
            measured = case[path]
            assert set(measured["contenders"]) == set(names)
            for stats in measured["contenders"].values():
                assert stats["n"] == measured["repetitions"] > 0
                assert 0 < stats["p50_us"] <= stats["p99_us"]
            expected = {label for label, mine, theirs in RATIOS if mine in names and theirs in names}
            assert set(measured["ratios_p50"]) == expected
            assert all(ratio > 0 for ratio in measured["ratios_p50"].values())
    assert results["coldstart"], "no cold-start figures"
    for cold in results["coldstart"]:
        for who in ("serveml", "bare"):
            assert all(value > 0 for value in cold[who].values())
        assert cold["image_mb"] is None  # --quick builds no images, and says so
    assert results["images"] == {"skipped": "not asked for (--quick or --no-images)"}
    assert "Image sizes were not measured: not asked for" in (tmp_path / "RESULTS.md").read_text()
    # every target row says what was measured against what limit
    assert results["targets"]
    for target in results["targets"]:
        assert set(target) == {"target", "measured", "limit", "met"}
