"""The bench's image sizes, proven on a real Docker engine: a scikit-learn model built as it is and
with ``--optimize onnx``; the converted image carries onnxruntime and no scikit-learn, is smaller,
has ServeML's bytecode compiled, and serves the same predictions as the original model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.images import Sizer, find_base_image
from bench.optimize import build_context, measure
from tests.e2e.docker_support import base_image, build_image, docker, free_port, remove_image, run_container
from tests.modelzoo import build as build_model

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.timeout(1800)]


def test_the_bench_finds_the_base_image_the_tests_use() -> None:
    base = base_image()  # skips without an engine (fails in CI)
    assert find_base_image() == (base, "")


def test_the_optimize_bench_sizes_both_images(tmp_path: Path) -> None:
    sizer = Sizer(base_image())
    (row,) = measure(tmp_path, runs=1, kinds=["sklearn-joblib"], sizer=sizer)

    # both images are the base plus their packages; the ONNX one leaves scikit-learn and scipy out
    assert row["original_image_mb"] > sizer.base_mb + 0.5 * row["original_packages_mb"]
    assert row["onnx_image_mb"] > sizer.base_mb + 0.5 * row["onnx_packages_mb"]
    assert row["onnx_image_mb"] < row["original_image_mb"]
    # the size is remembered by key: asking again builds nothing (and gives the same figure)
    assert sizer.image_mb("sklearn-joblib", tmp_path / "nowhere", "sklearn") == row["original_image_mb"]


def test_an_optimized_image_carries_onnxruntime_only_and_predicts_as_the_original(tmp_path: Path) -> None:
    base = base_image()
    zoo = build_model("sklearn-joblib", tmp_path / "model")
    built = build_context(zoo.path, tmp_path / "context", optimize="onnx")
    assert built.framework == "onnx", built.notes
    tag = "serveml-e2e-optimized:test"
    build_image(built.out, tag, build_args={"BASE_IMAGE": base, "FRAMEWORK": built.framework})
    try:
        listing = docker("run", "--rm", "--entrypoint", "ls", tag, "/var/task").stdout.split()
        assert "onnxruntime" in listing
        assert "sklearn" not in listing, listing
        assert "scipy" not in listing, listing
        # ServeML's own modules were compiled at build time: Lambda's read-only file system
        # would otherwise make every cold start compile them again
        compiled = docker("run", "--rm", "--entrypoint", "ls", tag, "/var/task/runtime/__pycache__").stdout.split()
        assert any(name.startswith("service.cpython-") for name in compiled), compiled
        with run_container(tag, free_port()) as running:
            answer = running.invoke({"data": zoo.rows})
            assert answer.status == 200, (answer.body, running.logs())
            assert answer.body["model"]["framework"] == "onnx"
            got, expected = answer.body["predictions"], zoo.expected
            if expected and isinstance(expected[0], str):
                assert got == expected
            else:
                np.testing.assert_allclose(np.asarray(got, float), np.asarray(expected, float), rtol=1e-5, atol=1e-6)
    finally:
        remove_image(tag)
