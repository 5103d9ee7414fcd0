"""``serveml build --optimize onnx``, measured: init and installed packages of the original image
against the converted one, for each framework.

Each zoo model is built twice with the builder itself (``builder.build.build``): as it is, and with
``optimize="onnx"``, so that the packages are exactly what each image would install (the sum of the
unpacked wheels, the build's own ``packages_mb``) and the served directory is the context's
``model/``, hash check included. Init is ServeML's ``load_service`` (import, load, warm-up) in a
fresh interpreter, ``bench.coldstart.run_once``, alternating original and ONNX; medians over ``runs``.
Where a Docker engine runs, ``bench.images.Sizer`` builds both contexts and measures the images.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.coldstart import SERVEML_SCRIPT, run_once
from bench.images import Sizer
from builder.build import BuildOptions, BuildResult, build

# The model zoo the tests use; it imports each framework only inside that framework's builder.
from tests.modelzoo import build as build_model

#: The zoo models measured by default: one per framework the converters take.
KINDS: tuple[str, ...] = ("sklearn-joblib", "torchscript", "keras")


def measure(work: Path, runs: int, kinds: Sequence[str] = KINDS, sizer: Sizer | None = None) -> list[dict[str, Any]]:
    """One row per zoo kind: init (ms) and peak RSS (MB), medians, installed packages (MB) of both
    images, and with a ``sizer`` both images' sizes (MB)."""
    rows: list[dict[str, Any]] = []
    for kind in kinds:
        zoo = build_model(kind, work / kind / "model")
        original = build_context(zoo.path, work / kind / "original", optimize=None)
        converted = build_context(zoo.path, work / kind / "onnx", optimize="onnx")
        row: dict[str, Any] = {
            "framework": zoo.framework,
            "kind": kind,
            "runs": runs,
            "original_packages_mb": round(original.packages_mb, 1),
            "onnx_packages_mb": round(converted.packages_mb, 1),
            "max_abs_diff": None,
            "original_image_mb": None,
            "onnx_image_mb": None,
        }
        if sizer is not None:
            row["original_image_mb"] = sizer.image_mb(kind, original.out, original.framework)
        if converted.converted_from is None:
            # the builder kept the original: say why, and time nothing that was not built
            (alone,) = _medians([original.out / "model"], runs)
            row |= {"original_init_ms": alone["init_ms"], "original_peak_rss_mb": alone["peak_rss_mb"]}
            row |= {"onnx_init_ms": None, "init_speedup": None, "note": "; ".join(converted.notes)}
            rows.append(row)
            continue
        if sizer is not None:
            row["onnx_image_mb"] = sizer.image_mb(f"{kind}-onnx", converted.out, converted.framework)
        before, after = _medians([original.out / "model", converted.out / "model"], runs)
        row |= {
            "original_init_ms": before["init_ms"],
            "onnx_init_ms": after["init_ms"],
            "init_speedup": round(before["init_ms"] / after["init_ms"], 1),
            "original_peak_rss_mb": before["peak_rss_mb"],
            "onnx_peak_rss_mb": after["peak_rss_mb"],
            "max_abs_diff": converted.converted_from["max_abs_diff"],
            "converter": converted.converted_from["converter"],
        }
        rows.append(row)
    return rows


def build_context(model: Path, out: Path, *, optimize: str | None) -> BuildResult:
    """``serveml build MODEL --out OUT [--optimize onnx]``, quietly."""
    return build(BuildOptions(model=model, out=out, optimize=optimize), echo=lambda _line: None)


def _medians(targets: list[Path], runs: int) -> list[dict[str, float]]:
    """Median init_ms and peak_rss_mb of each target, the targets alternating so drift hits them alike."""
    results: list[list[dict[str, float]]] = [[] for _ in targets]
    for _ in range(runs):
        for index, target in enumerate(targets):
            results[index].append(run_once(SERVEML_SCRIPT, target))
    keys = ("init_ms", "peak_rss_mb")
    return [{key: round(statistics.median(r[key] for r in found), 1) for key in keys} for found in results]


__all__ = ["KINDS", "build_context", "measure"]
