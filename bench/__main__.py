"""``python -m bench [--quick] [--no-images] [--out DIR]``: warm latency per case (in-process and
through the real Runtime Interface Emulator), cold start, peak memory and (where Docker runs) image
size per framework, ``--optimize onnx`` against the original, the targets."""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import coldstart, contenders, images, latency, models, optimize, report, targets
from bench import rie as rie_path

# The model zoo the tests use; it imports each framework only inside that framework's builder.
from tests import modelzoo

CaseMaker = Callable[[Path], models.Case]

#: Cases as (make, timed calls through the RIE); the in-process count is in the Case.
_FULL: dict[str, Any] = {
    "cases": [
        (lambda d: models.iris_case(d, 2000), 300),
        (lambda d: models.batch_case(d, 10_000, 30), 15),
        (lambda d: models.forest_case(d, 1000), 200),
        (lambda d: models.torchscript_case(d, 1000), 200),
        (lambda d: models.keras_case(d, 500), 150),
        (lambda d: models.onnx_case(d, 2000), 300),
    ],
    "warmup": 5,
    # Keras imports in 3-5 s and varies by a few hundred ms between runs: more runs for its median
    "cold": {"sklearn-joblib": 9, "onnx": 9, "torchscript": 7, "keras": 9},
    "optimize_runs": 3,
    "images": True,  # where a Docker engine runs
}
_QUICK: dict[str, Any] = {
    "cases": [
        (lambda d: models.iris_case(d, 30), 10),
        (lambda d: models.batch_case(d, 100, 10), 5),
    ],
    "warmup": 2,
    "cold": {"sklearn-joblib": 1},
    "optimize_runs": 0,  # builds real contexts (wheels and all): tests/bench/test_optimize_bench.py covers it
    "images": False,  # docker builds: tests/e2e/test_image_sizes.py covers them
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few repetitions (a smoke run)")
    parser.add_argument("--no-images", action="store_true", help="do not build images to measure their size")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="where to write results")
    args = parser.parse_args(argv)
    plan = _QUICK if args.quick else _FULL
    started = time.perf_counter()
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick,
        "machine": report.machine(),
        "latency": [],
        "coldstart": [],
        "optimize": [],
        "images": {},
    }
    sizer = None
    if plan["images"] and not args.no_images:
        sizer = _sizer(results["images"])
    else:
        results["images"]["skipped"] = "not asked for (--quick or --no-images)"
    with tempfile.TemporaryDirectory(prefix="serveml-bench-") as tmp:
        root = Path(tmp)
        for index, (make, rie_repetitions) in enumerate(plan["cases"]):
            case = make(root / f"case{index}")
            results["latency"].append(_latency(case, rie_repetitions, plan["warmup"]))
        for kind, runs in plan["cold"].items():
            directory = root / "cold" / kind
            directory.mkdir(parents=True)
            zoo = modelzoo.build(kind, directory)
            cold = coldstart.measure(kind, zoo.path, runs)
            cold["image_mb"] = None
            if sizer is not None:
                built = optimize.build_context(zoo.path, directory / "context", optimize=None)
                cold["image_mb"] = sizer.image_mb(kind, built.out, built.framework)
            results["coldstart"].append(cold)
            _say(f"cold start {kind}: init +{cold['init_delta_ms']} ms, peak RSS +{cold['rss_delta_mb']} MB")
        if plan["optimize_runs"]:
            results["optimize"] = optimize.measure(root / "optimize", plan["optimize_runs"], sizer=sizer)
            for row in results["optimize"]:
                _say(f"--optimize onnx {row['kind']}: init x{row['init_speedup']} faster")
    results["targets"] = targets.evaluate(results)
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    md_path, json_path = report.write(args.out, results)
    _say(f"wrote {md_path} and {json_path} in {results['elapsed_s']} s")
    return 0


def _latency(case: models.Case, rie_repetitions: int, warmup: int) -> dict[str, Any]:
    """One case, in-process then through the emulator; every contender's answer checked first."""
    with latency.quiet_stdout():  # ServeML's init and check-call log lines
        calls = contenders.build(case)
        contenders.check_agree({name: call() for name, call in calls.items()}, case.model_dir)
    in_process = latency.measure(calls, case.repetitions, warmup)
    with rie_path.served(case) as served:
        contenders.check_agree({name: call() for name, call in served.items()}, case.model_dir)
        through_rie = latency.measure(served, rie_repetitions, warmup)
    result = {
        "case": case.name,
        "kind": case.kind,
        "rows": len(case.rows),
        "in_process": latency.summary(in_process, contenders.RATIOS),
        "rie": latency.summary(through_rie, contenders.RATIOS),
    }
    _say(f"{case.name}: in-process {result['in_process']['ratios_p50']}, RIE {result['rie']['ratios_p50']}")
    return result


def _sizer(found: dict[str, Any]) -> images.Sizer | None:
    """A Sizer on the base image, recording which one in ``found``; None (and why) without Docker."""
    base, why = images.find_base_image()
    if base is None:
        found["skipped"] = why
        _say(f"image sizes skipped: {why}")
        return None
    sizer = images.Sizer(base)
    found |= {"base_image": base, "base_image_mb": sizer.base_mb}
    return sizer


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
