"""Shared test helpers: the float64 reference, THE tolerance rule (docs/testing.md), the
shape grid, and a fixture that runs a test under every kernel family this CPU supports."""

from __future__ import annotations

import contextlib
import copy

import numpy as np
import pytest

import lincore

# numpy < 2.1 (the newest numpy for Python 3.9) marks every array that np.from_dlpack imports
# read-only, and its from_dlpack takes no copy=: tests write through such arrays only from 2.1 on,
# and check that they are read-only before.
NUMPY_DLPACK_WRITABLE = np.lib.NumpyVersion(np.__version__) >= "2.1.0"

UNIT_ROUNDOFF = {np.dtype(np.float32): 2.0**-24, np.dtype(np.float64): 2.0**-53}
SMALLEST_SUBNORMAL = {
    np.dtype(np.float32): float(np.finfo(np.float32).smallest_subnormal),
    np.dtype(np.float64): float(np.finfo(np.float64).smallest_subnormal),
}


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
    k = np.shape(w)[-1]
    ref = linear_reference(x, w, b)
    g = np.abs(np.asarray(x, np.float64)) @ np.abs(np.asarray(w, np.float64)).T
    if b is not None:
        g = g + np.abs(np.asarray(b, np.float64))
    extra = 0.0
    if act is not None:
        ref = act(ref)
        extra = UNIT_ROUNDOFF[y.dtype] * np.abs(ref)  # the activation's own rounding
    assert_within_bound(y, ref, g, k + 2, extra=extra)


def assert_within_bound(y, ref, g, n, *, extra=0.0) -> None:
    """The same rule for any computation whose rounding error analysis bounds its error by
    gamma(n) * G (n roundings, each relative to a quantity at most G in magnitude: a softmax, a
    normalization, their gradients): fail when |y - ref| > c * gamma(n) * G + (n - 1) *
    denorm_min + extra, c as in assert_linear_close. ref and G in float64."""
    y = np.asarray(y)
    dt = y.dtype
    u = UNIT_ROUNDOFF[dt]
    c = 1.0 if dt == np.float32 else 2.0
    ref = np.asarray(ref, np.float64)
    gamma = n * u / (1 - n * u)
    tol = c * gamma * np.asarray(g, np.float64) + (n - 1) * SMALLEST_SUBNORMAL[dt] + extra
    err = np.abs(y.astype(np.float64) - ref)
    bad = ~(err <= tol)
    same_nonfinite = (
        ~np.isfinite(ref) & (np.isnan(ref) == np.isnan(y)) & ((ref == y) | np.isnan(ref))
    )
    bad &= ~same_nonfinite
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise AssertionError(
            f"{bad.sum()} of {bad.size} elements outside tolerance; first at {i}: "
            f"got {y[i]!r}, expected {ref[i]!r} +- {tol[i]!r}"
        )


# bfloat16's unit roundoff: 8 significant bits (csrc/tensor/bfloat16.h, docs/quantization.md).
BF16_UNIT_ROUNDOFF = 2.0**-8


def assert_bf16_linear_close(y, x, w, b=None, *, act=None) -> None:
    """A bfloat16 Linear's output y against the float64 reference of the same bf16 inputs
    (x, w, b given as float arrays of bf16 values): the rule above for the fp32 sums of k terms
    (c = 1), plus the one rounding of the output to bf16, relative 2^-8 of the fp32 value (which
    lies within the fp32 bound of the reference). `act`: an activation with |derivative| <= 1
    applied to the reference (ReLU is exact; others add their own fp32 rounding)."""
    y = np.asarray(y, np.float32)
    x64, w64 = np.asarray(x, np.float64), np.asarray(w, np.float64)
    b64 = None if b is None else np.asarray(b, np.float64)
    k = w64.shape[-1]
    ref = linear_reference(x64, w64, b64)
    g = np.abs(x64) @ np.abs(w64).T
    if b64 is not None:
        g = g + np.abs(b64)
    u32 = UNIT_ROUNDOFF[np.dtype(np.float32)]
    extra = 0.0
    if act is not None:
        ref = act(ref)
        extra = u32 * np.abs(ref)
    gamma = (k + 2) * u32 / (1 - (k + 2) * u32)
    fp32_tol = gamma * g + (k + 1) * SMALLEST_SUBNORMAL[np.dtype(np.float32)] + extra
    extra = extra + BF16_UNIT_ROUNDOFF * (np.abs(ref) + fp32_tol)
    assert_within_bound(y, ref, g, k + 2, extra=extra)


# The shape grids, derived from the block sizes that the kernel files state and the compiled
# module exports (lincore._core._kernel_blocking(): every family, supported here or not), so
# that a change of MR, NR, MC or KC moves the edge cases with it. EDGE_SIZES: 0-3, every
# register tile's MR and NR (NR is a multiple of the vector width) +- 1, and the primes 7, 31,
# 67. BLOCK_SIZES: MC and 2 MC +- 1 (one and two row blocks), KC and KC +- 1, 2 KC + 1 (K just
# past two slices: slices are balanced, so 641 = 3 x 214 - 1 for KC 320), the few-row tile's
# width (wide_panels x NR) +- 1, and the prime 127.
def _around(values, deltas=(-1, 0, 1)):
    return {v + d for v in values for d in deltas if v + d >= 0}


_KERNELS = lincore._core._kernel_blocking()
_TILES = [b for fam in _KERNELS["families"].values() for b in fam.values()]
EDGE_SIZES = sorted(
    {0, 1, 2, 3, 7, 31, 67} | _around({b["mr"] for b in _TILES} | {b["nr"] for b in _TILES})
)
BLOCK_SIZES = sorted(
    (
        _around({b["mc"] for b in _TILES} | {2 * b["mc"] for b in _TILES}, (-1, 1))
        | _around({b["kc"] for b in _TILES})
        | {2 * b["kc"] + 1 for b in _TILES}
        | _around({_KERNELS["wide_panels"] * b["nr"] for b in _TILES}, (-1, 1))
        | {127}
    )
    - set(EDGE_SIZES)
)


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


@pytest.fixture(scope="session")
def _digits_mlp_trained():
    """The digits MLP of examples/train_digits.py trained once in fp32 (15 epochs of Adam),
    with the held-out rows: what the int8 and bf16 accuracy tests compare against."""
    datasets = pytest.importorskip(
        "sklearn.datasets", reason="the digits data come with scikit-learn"
    )
    digits = datasets.load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    train, test = order[:1300], order[1300:]
    lincore.manual_seed(0)
    nn = lincore.nn
    model = nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)
    )
    loss_fn = nn.CrossEntropyLoss()
    opt = lincore.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(15):
        perm = rng.permutation(train)
        for first in range(0, len(perm), 64):
            batch = perm[first : first + 64]
            loss = loss_fn(model(lincore.tensor(x[batch])), lincore.tensor(y[batch]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model, x[test], y[test]


@pytest.fixture
def digits_mlp(_digits_mlp_trained):
    """(a copy of the trained digits MLP, test inputs as a tensor, test labels)."""
    model, x, y = _digits_mlp_trained
    return copy.deepcopy(model), lincore.tensor(x), y
