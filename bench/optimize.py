"""``serveml build --optimize onnx``, measured: init and installed packages of the original image
against the converted one, for each framework.

Each zoo model is built twice with the builder itself (``builder.build.build``): as it is, and with
``optimize="onnx"``, so that the packages are exactly what each image would install (the sum of the
unpacked wheels, the build's own ``packages_mb``) and the served directory is the context's
``model/``, hash check included. Init is ServeML's ``load_service`` (import, load, warm-up) in a
fresh interpreter, ``bench.coldstart.run_once``, alternating original and ONNX; medians over ``runs``.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.coldstart import SERVEML_SCRIPT, run_once
from builder.build import BuildOptions, BuildResult, build

# The model zoo the tests use; it imports each framework only inside that framework's builder.
from tests.modelzoo import build as build_model

#: The zoo models measured by default: one per framework the converters take.
KINDS: tuple[str, ...] = ("sklearn-joblib", "torchscript", "keras")


def measure(work: Path, runs: int, kinds: Sequence[str] = KINDS) -> list[dict[str, Any]]:
    """One row per zoo kind: init (ms, medians) and installed packages (MB) of both images."""
    rows: list[dict[str, Any]] = []
    for kind in kinds:
        zoo = build_model(kind, work / kind / "model")
        original = _build(zoo.path, work / kind / "original", optimize=None)
        converted = _build(zoo.path, work / kind / "onnx", optimize="onnx")
        row: dict[str, Any] = {
            "framework": zoo.framework,
            "kind": kind,
            "runs": runs,
            "original_packages_mb": round(original.packages_mb, 1),
            "onnx_packages_mb": round(converted.packages_mb, 1),
            "max_abs_diff": None,
        }
        if converted.converted_from is None:
            # the builder kept the original: say why, and time nothing that was not built
            row |= {"onnx_init_ms": None, "init_speedup": None, "note": "; ".join(converted.notes)}
            row["original_init_ms"] = _median_init([original.out / "model"], runs)[0]
            rows.append(row)
            continue
        original_ms, onnx_ms = _median_init([original.out / "model", converted.out / "model"], runs)
        row |= {
            "original_init_ms": original_ms,
            "onnx_init_ms": onnx_ms,
            "init_speedup": round(original_ms / onnx_ms, 1),
            "max_abs_diff": converted.converted_from["max_abs_diff"],
            "converter": converted.converted_from["converter"],
        }
        rows.append(row)
    return rows


def _build(model: Path, out: Path, *, optimize: str | None) -> BuildResult:
    return build(BuildOptions(model=model, out=out, optimize=optimize), echo=lambda _line: None)


def _median_init(targets: list[Path], runs: int) -> list[float]:
    """Median init_ms of each target, the targets alternating so drift hits them alike."""
    times: list[list[float]] = [[] for _ in targets]
    for _ in range(runs):
        for index, target in enumerate(targets):
            times[index].append(run_once(SERVEML_SCRIPT, target)["init_ms"])
    return [round(statistics.median(found), 1) for found in times]


__all__ = ["KINDS", "measure"]
