"""Cold start: ServeML's init against a bare import-and-load, each in a fresh interpreter."""

from __future__ import annotations

import compileall
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_MARK = "BENCH_RESULT "

# Both scripts time from before their first import to a usable model, and report the process's
# peak RSS; the interpreter's own start-up is in the wall time the parent measures.
# Peak RSS is VmHWM from /proc/self/status: Linux carries ru_maxrss over fork and execve, so a child
# of this (large) bench process reports the parent's peak whenever that is higher. ru_maxrss is
# still recorded, for comparison.
_REPORT = f"""
import resource
hwm_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print({_MARK!r} + json.dumps({{"init_ms": (time.perf_counter() - started) * 1000, "peak_rss_mb": hwm_kb / 1024,
    "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}), flush=True)
"""

SERVEML_SCRIPT = (
    """
import json, sys, time
started = time.perf_counter()
from runtime.service import load_service
model = load_service(sys.argv[1])  # import + load + warm-up prediction
"""
    + _REPORT
)

#: What a bare handler does at init for each framework: import it, load the model, nothing else.
BARE_LOADS = {
    "sklearn-joblib": "import joblib\nmodel = joblib.load(sys.argv[1])",
    "onnx": (
        "import onnxruntime\nmodel = onnxruntime.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])"
    ),
    "torchscript": "import torch\nmodel = torch.jit.load(sys.argv[1])",
    "keras": "import keras\nmodel = keras.saving.load_model(sys.argv[1])",
}


def bare_script(kind: str) -> str:
    return "\nimport json, sys, time\nstarted = time.perf_counter()\n" + BARE_LOADS[kind] + "\n" + _REPORT


def compile_serveml() -> None:
    """Compile ServeML's modules to bytecode, as its image does at build time (``Dockerfile``).

    The bare scripts import frameworks that pip installed compiled; without this, under
    PYTHONDONTWRITEBYTECODE (or on a read-only tree) ServeML alone would compile its source in
    every run, which no image of it does."""
    for package in ("runtime", "frameworks"):
        compileall.compile_dir(ROOT / package, quiet=1)


def run_once(script: str, target: Path) -> dict[str, float]:
    # As in Lambda, the memory size is set: ServeML's memory guard measures the model's working
    # memory at warm-up when it is, and that is part of its init.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = "3008"
    compile_serveml()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", script, str(target)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    wall_ms = (time.perf_counter() - started) * 1000
    lines = [line for line in done.stdout.splitlines() if line.startswith(_MARK)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"cold-start subprocess failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(lines[-1][len(_MARK) :])
    result["wall_ms"] = wall_ms
    return result


def measure(kind: str, model_file: Path, repetitions: int) -> dict[str, Any]:
    """Medians over ``repetitions`` fresh processes, alternating ServeML and bare."""
    # ServeML is given the directory (it reads serveml.json there); the bare script the file.
    runs: dict[str, list[dict[str, float]]] = {"serveml": [], "bare": []}
    for _ in range(repetitions):
        runs["serveml"].append(run_once(SERVEML_SCRIPT, model_file.parent))
        runs["bare"].append(run_once(bare_script(kind), model_file))
    summary: dict[str, Any] = {"kind": kind, "repetitions": repetitions}
    for who, results in runs.items():
        summary[who] = {key: round(statistics.median(r[key] for r in results), 1) for key in results[0]}
    serveml, bare = summary["serveml"], summary["bare"]
    summary["init_ratio"] = round(serveml["init_ms"] / bare["init_ms"], 2)
    summary["init_delta_ms"] = round(serveml["init_ms"] - bare["init_ms"], 1)
    summary["rss_ratio"] = round(serveml["peak_rss_mb"] / bare["peak_rss_mb"], 2)
    summary["rss_delta_mb"] = round(serveml["peak_rss_mb"] - bare["peak_rss_mb"], 1)
    return summary
