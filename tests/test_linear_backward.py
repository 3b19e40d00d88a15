"""The Linear backward kernels (csrc/nn/linear.h, linear_backward) against the float64 reference:
dx = dy . W, dW = dy^T . x and db = the column sums of dy, each checked as the linear form it is
with THE tolerance rule, over shape sweeps through every tile and block size, every kernel
family, both float dtypes and strided operands; and bitwise equality with the forward kernel on
packed operands (gemm.h: the strided path has the same numerics)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import lincore
from conftest import BLOCK_SIZES, EDGE_SIZES, assert_linear_close, num_threads

DTYPES = {"f32": np.float32, "f64": np.float64}


def backward(x: np.ndarray, w: np.ndarray, dy: np.ndarray, need=(True, True, True)):
    t = lincore.as_tensor
    grads = lincore._core.linear_backward(t(x), t(w), t(dy), *need)
    return [None if g is None else np.asarray(g) for g in grads]


def check_grads(x, w, dy):
    dx, dw, db = backward(x, w, dy)
    m, k = x.shape
    n = w.shape[0]
    assert dx.shape == (m, k) and dw.shape == (n, k) and db.shape == (n,)
    assert dx.dtype == dw.dtype == db.dtype == x.dtype
    assert_linear_close(dx, dy, np.ascontiguousarray(w.T))  # K = n
    assert_linear_close(dw, np.ascontiguousarray(dy.T), np.ascontiguousarray(x.T))  # K = m
    assert_linear_close(db[None, :], np.ones((1, m), x.dtype), np.ascontiguousarray(dy.T))


def _case(rng, m, n, k, dt):
    return (
        rng.standard_normal((m, k)).astype(dt),
        rng.standard_normal((n, k)).astype(dt),
        rng.standard_normal((m, n)).astype(dt),
    )


EDGE_GRID = list(
    itertools.product(
        [0, 1, 2, 3, 5, 12, 13, 25], [0, 1, 3, 8, 17, 33, 65], [0, 1, 4, 9, 16, 31, 33]
    )
)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("m,n,k", EDGE_GRID, ids=[f"m{m}-n{n}-k{k}" for m, n, k in EDGE_GRID])
def test_linear_backward_edge_shapes_every_isa(isa, rng, dt, m, n, k):
    check_grads(*_case(rng, m, n, k, DTYPES[dt]))


SIZES_1D = sorted(set(EDGE_SIZES + BLOCK_SIZES))


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("size", SIZES_1D)
@pytest.mark.parametrize("axis", ["m", "n", "k"])
def test_linear_backward_each_dim_through_the_blocks(isa, rng, dt, axis, size):
    dims = {"m": 14, "n": 19, "k": 37}
    dims[axis] = size
    check_grads(*_case(rng, dims["m"], dims["n"], dims["k"], DTYPES[dt]))


@pytest.mark.parametrize(
    "m,n,k",
    [
        (300, 70, 600),
        (2, 1000, 513),
        (700, 3, 1030),
        (256, 256, 1024),
        (37, 1024, 45),
        (300, 512, 70),
    ],
    ids=[
        "m300-n70-k600",
        "m2-n1000-k513",
        "m700-n3-k1030",
        "m256-n256-k1024",
        "m37-n1024-k45",
        "m300-n512-k70",
    ],
)
def test_linear_backward_several_slices_and_blocks(isa, rng, m, n, k):
    # n = 1024 (f32) or 512 (f64): dy's rows 4 KiB apart, so the kernel packs x' both ways (dy
    # row-major for dx, dy^T column-major for dW); k = 1024: x's rows 4 KiB apart.
    for dt in DTYPES.values():
        check_grads(*_case(rng, m, n, k, dt))


LAYOUTS = {
    "f_order": np.asfortranarray,
    "sliced_rows": lambda a: np.repeat(a, 2, axis=0)[::2],
    "sliced_cols": lambda a: np.repeat(a, 2, axis=1)[:, ::2],
    "neg_rows": lambda a: a[::-1].copy()[::-1],
    "broadcast": None,  # a zero-stride view, built below
}


@pytest.mark.parametrize("which", ["x", "w", "dy"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_linear_backward_strided_operands_match_contiguous_bitwise(isa, rng, layout, which):
    x, w, dy = _case(rng, 29, 23, 41, np.float32)
    ops = {"x": x, "w": w, "dy": dy}
    if layout == "broadcast":
        ops[which] = np.broadcast_to(ops[which][0], ops[which].shape)
    else:
        ops[which] = LAYOUTS[layout](ops[which])
    got = backward(ops["x"], ops["w"], ops["dy"])
    want = backward(*(np.ascontiguousarray(ops[k]) for k in ("x", "w", "dy")))
    for g, e in zip(got, want):
        assert np.array_equal(g, e)
    check_grads(*(np.ascontiguousarray(ops[k]) for k in ("x", "w", "dy")))


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize(
    "m,n,k",
    [(37, 45, 70), (5, 200, 9), (130, 2, 333)],
    ids=["m37-n45-k70", "m5-n200-k9", "m130-n2-k333"],
)
def test_linear_backward_bitwise_equal_to_forward_kernel(isa, rng, dt, m, n, k):
    """dx and dW read their operands in place; the forward packs its weight. Both are the same
    FMA chains (gemm.h), so dx == linear(dy, W^T) and dW == linear(dy^T, x^T) bitwise."""
    x, w, dy = _case(rng, m, n, k, DTYPES[dt])
    dx, dw, _ = backward(x, w, dy)
    t = lincore.as_tensor
    fwd_dx = np.asarray(lincore._core.linear(t(dy), t(np.ascontiguousarray(w.T)), None))
    fwd_dw = np.asarray(
        lincore._core.linear(t(np.ascontiguousarray(dy.T)), t(np.ascontiguousarray(x.T)), None)
    )
    assert np.array_equal(dx, fwd_dx)
    assert np.array_equal(dw, fwd_dw)


def test_linear_backward_only_what_is_asked(rng):
    x, w, dy = _case(rng, 4, 3, 5, np.float32)
    for need in itertools.product([False, True], repeat=3):
        got = backward(x, w, dy, need)
        assert [g is not None for g in got] == list(need)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_linear_backward_independent_of_thread_count(rng, threads):
    x, w, dy = _case(rng, 200, 300, 500, np.float32)
    with num_threads(1):
        want = backward(x, w, dy)
    with num_threads(threads):
        got = backward(x, w, dy)
    for g, e in zip(got, want):
        assert np.array_equal(g, e)


def test_linear_backward_nonfinite_values_propagate(rng):
    x, w, dy = _case(rng, 6, 5, 7, np.float32)
    x[2, 3] = np.nan
    dy[4, 1] = np.inf
    dx, dw, db = backward(x, w, dy)
    assert np.isnan(dw[:, 3]).any()  # NaN in x reaches dW's column 3
    assert not np.isfinite(dx[4]).all()  # inf in dy reaches that row of dx
    assert np.isinf(db[1])
