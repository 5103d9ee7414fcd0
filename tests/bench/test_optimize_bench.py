"""Smoke test of the --optimize onnx benchmark: one run on the scikit-learn model."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.optimize import measure
from builder.optimize import DEFAULT_TOLERANCE


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_optimize_bench_times_both_images_and_sizes_their_packages(tmp_path: Path) -> None:
    (row,) = measure(tmp_path, runs=1, kinds=["sklearn-joblib"])

    assert row["framework"] == "sklearn"
    assert row["original_init_ms"] > 0
    assert row["onnx_init_ms"] > 0
    assert row["original_peak_rss_mb"] > 0
    assert row["onnx_peak_rss_mb"] > 0
    assert row["init_speedup"] == round(row["original_init_ms"] / row["onnx_init_ms"], 1)
    assert 0 <= row["max_abs_diff"] <= DEFAULT_TOLERANCE.atol
    assert row["converter"].startswith("skl2onnx ")
    # scikit-learn brings scipy; the ONNX image has onnxruntime and numpy instead: both real, and different
    assert row["original_packages_mb"] > 0
    assert row["onnx_packages_mb"] > 0
    assert row["original_packages_mb"] != row["onnx_packages_mb"]
