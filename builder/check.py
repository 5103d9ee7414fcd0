"""The builder's model check, run in a clean interpreter: load the model with its framework and
answer one prediction on a sample made from its input contract.

``python -m builder.check MODEL --result FILE [--sample FILE]`` writes a JSON report to FILE;
``check_model`` runs it as a subprocess and reads the report.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runtime.context import LocalContext
from runtime.contract import Contract
from runtime.errors import ServeMLError
from runtime.service import load_service


class CheckFailed(Exception):
    """The model did not load, or did not predict on its sample."""


def sample_request(contract: Contract, rows: int = 2) -> dict[str, Any]:
    """A request of ``rows`` zero (or "a") rows, in the form the contract takes."""

    def value(kind: str) -> Any:
        return "a" if kind == "O" else False if kind == "b" else 0

    specs = contract.inputs
    if contract.tabular and len(specs) > 1:
        return {"data": [[value(s.np_dtype.kind) for s in specs] for _ in range(rows)]}

    def tensor(spec: Any) -> Any:
        item: Any = value(spec.np_dtype.kind)
        for size in reversed(spec.row_shape if not spec.any_shape else ()):
            item = [item] * (size if size > 0 else 1)
        return [item] * rows

    if len(specs) == 1:
        return {"data": tensor(specs[0])}
    return {"data": {s.name: tensor(s) for s in specs}}


def _run(model: Path, sample: Path | None) -> dict[str, Any]:
    try:
        service = load_service(model)
    except ServeMLError as error:
        return {"ok": False, "stage": "load", "code": error.code, "message": error.message}
    request = json.loads(sample.read_text()) if sample else sample_request(service.contract)
    response = json.loads(service.handle(request, LocalContext()))
    timings = service.init_timings
    return {
        "ok": "error" not in response,
        "stage": "predict",
        "framework": service.adapter.name,
        "model_file": str(service.model_path),
        "contract": service.contract.to_json(),
        "contract_known": service.contract.source != "none",
        "versions": service.adapter.versions,
        "init_ms": None if timings is None else timings.total_ms,
        "request": request,
        "response": response,
    }


def run_isolated(
    module: str,
    args: list[str],
    *,
    timeout_s: float,
    failure: Callable[[str], Exception],
    doing: str,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run ``python -m module *args --result FILE`` in a fresh interpreter (HOME in a scratch
    directory, the runtime's logs at ERROR) and return the JSON report it writes to FILE.

    ``failure`` is raised, naming ``doing``, when it runs out of time or dies without a report.
    """
    with tempfile.TemporaryDirectory(prefix="serveml-") as scratch:
        result = Path(scratch) / "result.json"
        argv = [sys.executable, "-m", module, *args, "--result", str(result)]
        environment = {**os.environ, "SERVEML_LOG_LEVEL": "ERROR", "HOME": scratch, **(env or {})}
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=environment, check=False)
        except subprocess.TimeoutExpired as exc:
            raise failure(f"{doing} took longer than {timeout_s:.0f} s") from exc
        if not result.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise failure(f"the process {doing} died: " + " | ".join(tail))
        report: dict[str, Any] = json.loads(result.read_text())
        return report


def check_model(model: Path, *, sample: Path | None = None, timeout_s: float = 600) -> dict[str, Any]:
    """Run the check in a fresh interpreter and return its report; ``CheckFailed`` says why not."""
    args = [str(model), *(["--sample", str(sample)] if sample is not None else [])]
    report = run_isolated(
        "builder.check", args, timeout_s=timeout_s, failure=CheckFailed, doing="loading and predicting"
    )
    if not report["ok"]:
        if report["stage"] == "load":
            raise CheckFailed(f"{report['code']}: {report['message']}")
        error = report["response"]["error"]
        raise CheckFailed(f"the sample prediction failed: {error['code']}: {error['message']}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m builder.check")
    parser.add_argument("model", type=Path)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--sample", type=Path)
    args = parser.parse_args(argv)
    report = _run(args.model, args.sample)
    args.result.write_text(json.dumps(report, default=str))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
