"""Soak: many invocations through the real Runtime Interface Emulator, per framework, with the
runtime process's resident memory sampled from /proc. After warm-up it must stay flat (growth
under 5 MB), and every answer must be the right one: predictions equal to the model's own, and
the documented error for the deliberately bad requests mixed in (the error path leaks too, if
anything does).

SERVEML_SOAK_INVOCATIONS sets the count per framework (default 20,000).
"""

from __future__ import annotations

import http.client
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.conftest import E2E_KINDS, INVOKE_PATH, SOAK_RESULTS, _descendants, running_server
from tests.modelzoo import ZooModel, build

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

INVOCATIONS = int(os.environ.get("SERVEML_SOAK_INVOCATIONS", "20000"))
#: Memory is compared from here on: imports, the allocator's arenas and caches settle first.
WARMUP = max(INVOCATIONS // 10, 100)
SAMPLE_EVERY = max(INVOCATIONS // 100, 10)
MAX_GROWTH_MB = 5.0
#: One request in ten is wrong on purpose (a row one feature short): SHAPE_MISMATCH.
BAD_EVERY = 10


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def runtime_pid(emulator_pid: int) -> int:
    """The awslambdaric process under the emulator (the one that holds the model)."""
    for pid in _descendants(emulator_pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        # python -m awslambdaric HANDLER (the emulator's own command line names it too, later on)
        if command.split(b"\0")[1:3] == [b"-m", b"awslambdaric"]:
            return pid
    raise AssertionError("no awslambdaric process under the emulator")


def close(actual: Any, expected: Any) -> bool:
    try:
        return bool(
            np.allclose(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float), rtol=1e-5, atol=1e-6)
        )
    except (TypeError, ValueError):
        return bool(actual == expected)


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("kind", E2E_KINDS)
def test_memory_stays_flat_and_every_answer_is_right(kind: str, tmp_path: Path) -> None:
    zoo: ZooModel = build(kind, tmp_path / "model")
    good = json.dumps({"data": zoo.rows}).encode()
    one_row = json.dumps({"data": zoo.rows[:1]}).encode()
    bad = json.dumps({"data": [zoo.rows[0][:-1]]}).encode()
    with running_server(Path(zoo.path), tmp_path) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=240)
        samples: list[tuple[int, float]] = []
        wrong: list[str] = []
        pid = 0
        started = time.perf_counter()
        for index in range(INVOCATIONS):
            body = bad if index % BAD_EVERY == BAD_EVERY - 1 else (good if index % 2 else one_row)
            connection.request("POST", INVOKE_PATH, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = json.loads(response.read())
            if body is bad:
                if answer.get("error", {}).get("code") != "SHAPE_MISMATCH":
                    wrong.append(f"#{index}: expected SHAPE_MISMATCH, got {str(answer)[:200]}")
            elif response.status != 200 or not close(
                answer.get("predictions"), zoo.expected if body is good else zoo.expected[:1]
            ):
                wrong.append(f"#{index}: {response.status} {str(answer)[:200]}")
            if index == 0:
                pid = runtime_pid(server.process.pid)
            if index % SAMPLE_EVERY == 0 or index == INVOCATIONS - 1:
                samples.append((index, rss_mb(pid)))
        elapsed = time.perf_counter() - started
        connection.close()
    assert not wrong, f"{len(wrong)} wrong answers of {INVOCATIONS}; first: {wrong[:3]}"
    baseline = next(rss for index, rss in samples if index >= WARMUP)
    after = [rss for index, rss in samples if index >= WARMUP]
    growth, peak_growth = after[-1] - baseline, max(after) - baseline
    SOAK_RESULTS[kind] = {
        "invocations": INVOCATIONS,
        "seconds": round(elapsed, 1),
        "per_invocation_ms": round(elapsed / INVOCATIONS * 1000, 2),
        "rss_after_warmup_mb": round(baseline, 1),
        "rss_end_mb": round(after[-1], 1),
        "growth_mb": round(growth, 2),
        "max_growth_mb": round(peak_growth, 2),
        "errors": len(wrong),
    }
    assert peak_growth < MAX_GROWTH_MB, f"RSS grew {peak_growth:.1f} MB after warm-up: {samples}"
