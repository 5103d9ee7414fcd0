"""The performance targets, checked against one run's medians.

- one row: ServeML's p50 at most 1.05x the minimal handler's (direct payloads);
- the 10,000-row batch: at least 2x faster than the minimal handler, end to end;
- init: at most the bare import-and-load plus 50 ms, per framework;
- peak RSS: at most the bare load's plus 30 MB, per framework;
- ``serveml build --optimize onnx``: a PyTorch or Keras model's init at least 5x faster.
"""

from __future__ import annotations

from typing import Any

from bench.contenders import MINIMAL, SERVEML

SINGLE_ROW_MAX_RATIO = 1.05
BATCH_MIN_SPEEDUP = 2.0
INIT_MAX_EXTRA_MS = 50.0
ONNX_MIN_INIT_SPEEDUP = 5.0  # for PyTorch and Keras models
RSS_MAX_EXTRA_MB = 30.0
_PATHS = (("in_process", "in-process"), ("rie", "through the RIE"))


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target and case: what was measured, the limit, and whether it was met."""
    rows: list[dict[str, Any]] = []
    for case in results["latency"]:
        for key, label in _PATHS:
            stats = case[key]["contenders"]
            ours, theirs = stats[SERVEML]["p50_us"], stats[MINIMAL]["p50_us"]
            if case["rows"] == 1:
                ratio = round(ours / theirs, 3)
                rows.append(
                    _row(f"{case['case']}, {label}: serveml / minimal", ratio, f"<= {SINGLE_ROW_MAX_RATIO}x")
                    | {"met": ratio <= SINGLE_ROW_MAX_RATIO}
                )
            elif case["rows"] >= 10_000:
                speedup = round(theirs / ours, 2)
                rows.append(
                    _row(f"{case['case']}, {label}: minimal / serveml", speedup, f">= {BATCH_MIN_SPEEDUP}x")
                    | {"met": speedup >= BATCH_MIN_SPEEDUP}
                )
    for cold in results["coldstart"]:
        rows.append(
            _row(f"init, {cold['kind']}: serveml - bare", cold["init_delta_ms"], f"<= +{INIT_MAX_EXTRA_MS:.0f} ms")
            | {"met": cold["init_delta_ms"] <= INIT_MAX_EXTRA_MS}
        )
        rows.append(
            _row(f"peak RSS, {cold['kind']}: serveml - bare", cold["rss_delta_mb"], f"<= +{RSS_MAX_EXTRA_MB:.0f} MB")
            | {"met": cold["rss_delta_mb"] <= RSS_MAX_EXTRA_MB}
        )
    for row in results.get("optimize", []):
        if row["framework"] in ("pytorch", "tensorflow"):
            speedup = row["init_speedup"] or 0.0
            rows.append(
                _row(f"--optimize onnx, {row['kind']}: init original / onnx", speedup, f">= {ONNX_MIN_INIT_SPEEDUP}x")
                | {"met": speedup >= ONNX_MIN_INIT_SPEEDUP}
            )
    return rows


def _row(target: str, measured: float, limit: str) -> dict[str, Any]:
    return {"target": target, "measured": measured, "limit": limit}
