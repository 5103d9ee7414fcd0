"""Warm latency: the contenders called round-robin, each call timed with perf_counter_ns."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from time import perf_counter_ns
from typing import Any

import numpy as np

from bench.contenders import Call


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send fd 1 to os.devnull: ServeML's log line and EMF blob are still written (their cost is
    part of ServeML) but not to a terminal. At fd level, because Powertools' Logger holds on to the
    sys.stdout it saw when it was made."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def measure(calls: dict[str, Call], repetitions: int, warmup: int) -> dict[str, list[int]]:
    """Nanoseconds per call for every contender, ``repetitions`` each after ``warmup`` untimed.

    Round-robin, with the order rotated each round, so that machine noise and cache effects from
    the previous call land on every contender alike.
    """
    names = list(calls)
    samples: dict[str, list[int]] = {name: [] for name in names}
    with quiet_stdout():
        for _ in range(warmup):
            for name in names:
                calls[name]()
        for round_ in range(repetitions):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                call = calls[name]
                started = perf_counter_ns()
                call()
                samples[name].append(perf_counter_ns() - started)
    return samples


def summarize(samples: list[int]) -> dict[str, float]:
    """p50 and p99 in µs."""
    values = np.asarray(samples, dtype=np.float64) / 1000
    return {
        "p50_us": round(float(np.percentile(values, 50)), 1),
        "p99_us": round(float(np.percentile(values, 99)), 1),
        "n": len(samples),
    }


def summary(samples: dict[str, list[int]], ratios: tuple[tuple[str, str, str], ...]) -> dict[str, Any]:
    """Every contender's p50/p99 and the p50 ratios among those present."""
    stats = {name: summarize(values) for name, values in samples.items()}
    return {
        "repetitions": min(len(values) for values in samples.values()),
        "contenders": stats,
        "ratios_p50": {
            label: round(stats[mine]["p50_us"] / stats[theirs]["p50_us"], 3)
            for label, mine, theirs in ratios
            if mine in stats and theirs in stats
        },
    }
