"""Interleaved timing for the Python benchmarks (onnx_bench.py, dropin_bench.py): each engine
calibrated to blocks of at least MIN_MEASUREMENT_S, then timed block by block in a rotated order,
round after round, so that every engine sees the same host."""

from __future__ import annotations

import statistics
import time
from typing import Callable

MIN_MEASUREMENT_S = 0.01  # one timed block of calls lasts at least this long


def calibrate(fn: Callable) -> int:
    """Calls per timed block, so that one block lasts at least MIN_MEASUREMENT_S."""
    fn()
    reps = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        if time.perf_counter() - t0 >= MIN_MEASUREMENT_S:
            return reps
        reps *= 2


def interleaved(engines: dict[str, Callable], rounds: int) -> dict[str, tuple]:
    """(median, min) microseconds per call of each engine, timed in blocks in a rotated order
    (the min as well: on a shared host the median carries the other processes' load)."""
    reps = {k: calibrate(f) for k, f in engines.items()}
    names = list(engines)
    samples: dict[str, list] = {k: [] for k in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for k in order:
            fn, n = engines[k], reps[k]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples[k].append((time.perf_counter() - t0) / n * 1e6)
    return {k: (statistics.median(v), min(v)) for k, v in samples.items()}
