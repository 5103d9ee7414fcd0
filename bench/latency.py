"""Warm latency: the contenders called round-robin, each call timed with perf_counter_ns."""

from __future__ import annotations

import contextlib
import os
import random
import sys
from collections.abc import Iterator
from time import perf_counter_ns
from typing import Any

import numpy as np

from bench.contenders import Call

_SEED = 20261204


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

    Every contender once a round, in a fresh (seeded) random order each round, so that machine
    noise and the cache effects of the previous call land on every contender alike. A fixed or
    rotated order would not do that: rotating keeps each contender behind the same neighbour,
    and a call after FastAPI's (which evicts the caches) ran up to twice as slow.
    """
    names = list(calls)
    samples: dict[str, list[int]] = {name: [] for name in names}
    order = random.Random(_SEED)  # noqa: S311 - the order of benchmark calls, not a secret
    with quiet_stdout():
        for _ in range(warmup):
            for name in names:
                calls[name]()
        for _ in range(repetitions):
            order.shuffle(names)
            for name in names:
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
