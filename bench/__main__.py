"""``python -m bench [--quick] [--out DIR]``: warm latency per case, then cold start per framework."""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import coldstart, contenders, latency, models, report

# The model zoo the tests use; it imports each framework only inside that framework's builder.
from tests import modelzoo

#: (rows in the batch case, timed calls for iris, for the batch, warm-up calls, cold-start kinds and runs)
_FULL: dict[str, Any] = {
    "batch_rows": 10_000,
    "iris_reps": 2000,
    "batch_reps": 40,
    "warmup": 3,
    "cold": {"sklearn-joblib": 3, "onnx": 3, "torchscript": 3, "keras": 1},
}
_QUICK: dict[str, Any] = {
    "batch_rows": 100,
    "iris_reps": 30,
    "batch_reps": 10,
    "warmup": 2,
    "cold": {"sklearn-joblib": 1},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few repetitions (a smoke run)")
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
    }
    with tempfile.TemporaryDirectory(prefix="serveml-bench-") as tmp:
        root = Path(tmp)
        cases = [
            models.iris_case(root / "iris", plan["iris_reps"]),
            models.batch_case(root / "batch", plan["batch_rows"], plan["batch_reps"]),
        ]
        for case in cases:
            with latency.quiet_stdout():  # ServeML's init and check-call log lines
                calls = contenders.build(case.model_dir, case.rows)
                contenders.check_agree(calls, case.model_dir)
            samples = latency.measure(calls, case.repetitions, plan["warmup"])
            stats = {name: latency.summarize(samples[name]) for name in contenders.NAMES}
            ratios = {
                label: round(stats[mine]["p50_us"] / stats[theirs]["p50_us"], 3)
                for label, mine, theirs in contenders.RATIOS
            }
            results["latency"].append(
                {"case": case.name, "repetitions": case.repetitions, "contenders": stats, "ratios_p50": ratios}
            )
            print(f"{case.name}: " + ", ".join(f"{k} {v}" for k, v in ratios.items()), file=sys.stderr)
        for kind, runs in plan["cold"].items():
            directory = root / "cold" / kind
            directory.mkdir(parents=True)
            zoo = modelzoo.build(kind, directory)
            cold = coldstart.measure(kind, zoo.path, runs)
            results["coldstart"].append(cold)
            print(f"cold start {kind}: init x{cold['init_ratio']}, rss x{cold['rss_ratio']}", file=sys.stderr)
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    md_path, json_path = report.write(args.out, results)
    print(f"wrote {md_path} and {json_path} in {results['elapsed_s']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
