"""Shared test helpers: the float64 reference, THE tolerance rule (../shared/TESTING.md), the
shape grid, and a fixture that runs a test under every kernel family this CPU supports."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

import lincore

# numpy < 2.1 (the newest numpy for Python 3.9) marks every array that np.from_dlpack imports
# read-only, and its from_dlpack takes no copy=: tests write through such arrays only from 2.1 on,
# and check that they are read-only before.
NUMPY_DLPACK_WRITABLE = np.lib.NumpyVersion(np.__version__) >= "2.1.0"

UNIT_ROUNDOFF = {np.dtype(np.float32): 2.0 ** -24, np.dtype(np.float64): 2.0 ** -53}
SMALLEST_SUBNORMAL = {np.dtype(np.float32): float(np.finfo(np.float32).smallest_subnormal),
                      np.dtype(np.float64): float(np.finfo(np.float64).smallest_subnormal)}


def linear_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """x @ w.T + b in float64."""
    y = np.asarray(x, np.float64) @ np.asarray(w, np.float64).T
    return y + np.asarray(b, np.float64) if b is not None else y


def assert_linear_close(y, x, w, b=None, *, act=None) -> None:
    """The one tolerance rule: |y - y_ref| <= c * gamma(K + 2) * G + (K + 1) * denorm_min, with
    G = |b| + |x| @ |w|.T (float64), gamma(n) = n u / (1 - n u), c = 1 for float32 against a
    float64 reference and 2 for float64. It bounds the error of a length-K dot product summed in
    any order, so it cannot be flaky. `act` maps the reference through an activation whose
    derivative is at most 1 in magnitude, so the bound still holds."""
    y = np.asarray(y)
    dt = y.dtype
    k = np.shape(w)[-1]
    u = UNIT_ROUNDOFF[dt]
    c = 1.0 if dt == np.float32 else 2.0
    ref = linear_reference(x, w, b)
    g = np.abs(np.asarray(x, np.float64)) @ np.abs(np.asarray(w, np.float64)).T
    if b is not None:
        g = g + np.abs(np.asarray(b, np.float64))
    n = k + 2
    gamma = n * u / (1 - n * u)
    tol = c * gamma * g + (k + 1) * SMALLEST_SUBNORMAL[dt]
    if act is not None:
        ref = act(ref)
        tol = tol + u * np.abs(ref)  # the activation's own rounding
    err = np.abs(y.astype(np.float64) - ref)
    bad = ~(err <= tol)
    same_nonfinite = ~np.isfinite(ref) & (np.isnan(ref) == np.isnan(y)) & \
        ((ref == y) | np.isnan(ref))
    bad &= ~same_nonfinite
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise AssertionError(
            f"{bad.sum()} of {bad.size} elements outside tolerance; first at {i}: "
            f"got {y[i]!r}, expected {ref[i]!r} +- {tol[i]!r}"
        )


# Sizes around every vector width (4, 8, 16 lanes) and tile (MR 4/6/12, NR 8/16/32), primes,
# and edge sizes; the larger list has the cache blocks +- 1: MC (96 for AVX2/SSE2, 144 for
# AVX-512, 64 scalar), KC (256; 320 for AVX-512) and K just past two and three slices (K-slices
# are balanced: 641 = 3 x 214 - 1).
EDGE_SIZES = [0, 1, 2, 3, 4, 5, 7, 8, 9, 11, 12, 13, 15, 16, 17, 31, 32, 33, 67]
BLOCK_SIZES = [63, 65, 95, 97, 127, 143, 145, 191, 193, 255, 256, 257, 319, 320, 321, 513, 641]


@contextlib.contextmanager
def num_threads(n: int):
    """lincore.set_num_threads(n) for the duration of a with block, then the previous value."""
    previous = lincore.get_num_threads()
    lincore.set_num_threads(n)
    try:
        yield
    finally:
        lincore.set_num_threads(previous)


@pytest.fixture(params=lincore.supported_cpu_capabilities())
def isa(request):
    """Runs the test under each kernel family this CPU supports, then restores the default."""
    previous = lincore.cpu_capability()
    lincore._core._set_cpu_capability(request.param)
    try:
        yield request.param
    finally:
        lincore._core._set_cpu_capability(previous)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
