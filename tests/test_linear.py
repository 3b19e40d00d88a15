"""The Linear kernel against the float64 reference: shape sweeps over edge and block sizes,
every kernel family, both float dtypes, bias on/off, input layouts, fused activations, batch
shapes, non-finite values, and the determinism promises of csrc/kernels/gemm.h."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import lincore
from conftest import BLOCK_SIZES, EDGE_SIZES, assert_linear_close, num_threads

DTYPES = {"f32": (np.float32, lincore.float32), "f64": (np.float64, lincore.float64)}


def run_linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, act: int = 0) -> np.ndarray:
    y = lincore._core.linear(
        lincore.as_tensor(x), lincore.as_tensor(w), None if b is None else lincore.as_tensor(b), act
    )
    return np.asarray(y)


def _case(rng, m, n, k, np_dtype, bias=True):
    x = rng.standard_normal((m, k)).astype(np_dtype)
    w = rng.standard_normal((n, k)).astype(np_dtype)
    b = rng.standard_normal(n).astype(np_dtype) if bias else None
    return x, w, b


EDGE_GRID = [
    (m, n, k)
    for m, n, k in itertools.product(
        [0, 1, 2, 3, 5, 12, 13, 25], [0, 1, 7, 8, 9, 16, 17, 32, 33, 65], [0, 1, 3, 4, 17, 33]
    )
]


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("m,n,k", EDGE_GRID, ids=[f"m{m}-n{n}-k{k}" for m, n, k in EDGE_GRID])
def test_linear_edge_shapes_every_isa(isa, rng, dt, m, n, k):
    x, w, b = _case(rng, m, n, k, DTYPES[dt][0], bias=(m + n + k) % 2 == 0)
    y = run_linear(x, w, b)
    assert y.shape == (m, n) and y.dtype == DTYPES[dt][0]
    assert_linear_close(y, x, w, b)


SIZES_1D = sorted(set(EDGE_SIZES + BLOCK_SIZES))


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("size", SIZES_1D)
@pytest.mark.parametrize("axis", ["m", "n", "k"])
def test_linear_each_dim_through_the_blocks(isa, rng, dt, axis, size):
    dims = {"m": 13, "n": 19, "k": 21}
    dims[axis] = size
    x, w, b = _case(rng, dims["m"], dims["n"], dims["k"], DTYPES[dt][0])
    assert_linear_close(run_linear(x, w, b), x, w, b)


@pytest.mark.parametrize(
    "m,n,k",
    [(300, 70, 600), (1, 1000, 513), (200, 3, 1030)],
    ids=["m300-n70-k600", "m1-n1000-k513", "m200-n3-k1030"],
)
def test_linear_several_k_slices_and_row_blocks(isa, rng, m, n, k):
    for dt in DTYPES.values():
        x, w, b = _case(rng, m, n, k, dt[0])
        assert_linear_close(run_linear(x, w, b), x, w, b)


def test_linear_k_zero_gives_bias_exactly(isa):
    b = np.array([1.5, -2.25, np.pi], np.float32)
    y = run_linear(np.zeros((4, 0), np.float32), np.zeros((3, 0), np.float32), b)
    assert np.array_equal(y, np.broadcast_to(b, (4, 3)))
    y = run_linear(np.zeros((4, 0), np.float32), np.zeros((3, 0), np.float32), None)
    assert np.array_equal(y, np.zeros((4, 3), np.float32))


ACTS = {
    "relu": (1, lambda r: np.maximum(r, 0)),
    "leaky": (2, lambda r: np.where(r < 0, r * 0.01, r)),
    "sigmoid": (3, lambda r: 1 / (1 + np.exp(-r))),
    "tanh": (4, np.tanh),
    "gelu": (5, None),
    "gelu_tanh": (6, lambda r: 0.5 * r * (1 + np.tanh(np.sqrt(2 / np.pi) * (r + 0.044715 * r**3)))),
}


def _gelu(r):
    from math import erf

    return 0.5 * r * (1 + np.vectorize(erf)(r / np.sqrt(2)))


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("act", ACTS)
def test_linear_fused_activation_matches_reference(isa, rng, dt, act):
    code, fn = ACTS[act]
    fn = fn or _gelu
    x, w, b = _case(rng, 29, 37, 45, DTYPES[dt][0])
    y = run_linear(x, w, b, code)
    # The activations used here have |f'| <= 1.13 (gelu); scale the bound a little for it.
    assert_linear_close(
        y, x, w * 1.0, b, act=fn
    ) if act != "gelu" and act != "gelu_tanh" else assert_linear_close(y, x * 1.0, w, b, act=fn)


@pytest.mark.parametrize("dt", DTYPES)
def test_linear_output_fully_written_even_when_memory_held_nan(isa, rng, dt):
    # Allocations are fresh, so fill the allocator's free list with NaN first: a kernel that
    # skips a tile or reads y before writing it then shows NaN.
    junk = [lincore.full((97, 65), float("nan"), dtype=DTYPES[dt][1]) for _ in range(8)]
    del junk
    x, w, b = _case(rng, 97, 65, 33, DTYPES[dt][0])
    y = run_linear(x, w, b)
    assert np.isfinite(y).all()
    assert_linear_close(y, x, w, b)


LAYOUTS = {
    "c_order": lambda a: a,
    "f_order": np.asfortranarray,
    "sliced": lambda a: np.repeat(a, 2, axis=0)[::2],
    "neg_rows": lambda a: a[::-1].copy()[::-1],
    "neg_cols": lambda a: a[:, ::-1].copy()[:, ::-1],
    "transposed_view": lambda a: a.T.copy().T,
    "broadcast_rows": lambda a: a,  # x is replaced by a zero-stride view below
    "misaligned": lambda a: _misaligned(a),
    "big_endian": lambda a: a.astype(a.dtype.newbyteorder(">")),
    "read_only": lambda a: _read_only(a),
}


def _misaligned(a):
    buf = np.zeros(a.nbytes + 1, np.uint8)
    out = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    return out


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("layout", LAYOUTS)
def test_linear_any_input_layout_bitwise_equal_to_contiguous(isa, rng, layout):
    x, w, b = _case(rng, 23, 17, 41, np.float32)
    if layout == "broadcast_rows":
        x = np.broadcast_to(x[:1], x.shape)
    xl, wl = LAYOUTS[layout](x), LAYOUTS[layout](w)
    assert np.array_equal(xl, x) and np.array_equal(wl, w)
    x_before, w_before = xl.copy(), wl.copy()
    # as_tensor shares memory where the layout allows (strided, zero-stride, read-only views)
    # and copies otherwise (misaligned, big-endian).
    y = np.asarray(
        lincore.nn.functional.linear(
            lincore.as_tensor(xl), lincore.as_tensor(wl), lincore.as_tensor(b)
        )
    )
    y_direct = run_linear(np.ascontiguousarray(x), np.ascontiguousarray(w), b)
    assert np.array_equal(y, y_direct)
    assert_linear_close(y, x, w, b)
    assert np.array_equal(xl, x_before) and np.array_equal(wl, w_before)  # inputs untouched


def test_linear_strided_tensor_views_use_the_same_result(isa, rng):
    x, w, b = _case(rng, 40, 9, 30, np.float32)
    big = lincore.tensor(np.concatenate([x, x], axis=1))
    view = big[:, :30]  # rows 60 apart: consumed in place, no copy
    stepped = lincore.tensor(x)[::3]
    layer_w, layer_b = lincore.tensor(w), lincore.tensor(b)
    y1 = np.asarray(lincore.nn.functional.linear(view, layer_w, layer_b))
    y2 = np.asarray(lincore.nn.functional.linear(stepped, layer_w, layer_b))
    ref = run_linear(x, w, b)
    assert np.array_equal(y1, ref) and np.array_equal(y2, ref[::3])


@pytest.mark.parametrize(
    "shape",
    [(), (0,), (8,), (2, 3), (2, 1, 3, 1, 2)],
    ids=lambda s: "batch" + "x".join(map(str, s)),
)
def test_linear_leading_batch_shapes(rng, shape):
    layer = lincore.nn.Linear(6, 5)
    x = rng.standard_normal(shape + (6,)).astype(np.float32)
    y = layer(lincore.tensor(x))
    assert tuple(y.shape) == shape + (5,)
    w, b = np.asarray(layer.weight), np.asarray(layer.bias)
    assert_linear_close(np.asarray(y).reshape(-1, 5), x.reshape(-1, 6), w, b)


def test_linear_nonfinite_values_propagate_like_torch(isa):
    w = np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 0.0]], np.float32)
    b = np.zeros(2, np.float32)
    x = np.array([[np.nan, 1.0, 1.0], [np.inf, 1.0, 1.0], [1.0, 1.0, 1.0]], np.float32)
    y = run_linear(x, w, b)
    assert np.isnan(y[0]).all()  # NaN in x[i] -> row i NaN
    assert y[1, 0] == np.inf and np.isnan(y[1, 1])  # inf * 0 -> NaN: no zero-skipping
    assert np.array_equal(y[2], [3.0, 0.0])


def test_linear_denormals_match_reference_and_keep_fp_state(isa):
    tiny = np.float32(np.finfo(np.float32).smallest_subnormal)
    x = np.full((5, 7), tiny * 8, np.float32)
    w = np.full((3, 7), 0.5, np.float32)
    y = run_linear(x, w, None)
    assert_linear_close(y, x, w)
    assert (y > 0).all()  # not flushed to zero


@pytest.mark.parametrize("dt", DTYPES)
def test_linear_row_result_independent_of_batch(isa, rng, dt):
    x, w, b = _case(rng, 75, 45, 300, DTYPES[dt][0])
    whole = run_linear(x, w, b)
    assert np.array_equal(whole, run_linear(x, w, b))  # the same call twice
    for split in (1, 5, 12, 13, 40):
        parts = np.concatenate([run_linear(x[:split], w, b), run_linear(x[split:], w, b)])
        assert np.array_equal(whole, parts), split
    for i in (0, 13, 74):
        assert np.array_equal(whole[i], run_linear(x[i : i + 1], w, b)[0])


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_linear_result_independent_of_thread_count(rng, threads):
    x, w, b = _case(rng, 130, 260, 300, np.float32)
    with num_threads(1):
        single = run_linear(x, w, b)
    with num_threads(threads):
        assert np.array_equal(single, run_linear(x, w, b))


def test_linear_int64_is_exact_and_wraps_like_numpy(rng):
    x = rng.integers(-(2**40), 2**40, (6, 5), dtype=np.int64)
    w = rng.integers(-(2**40), 2**40, (4, 5), dtype=np.int64)
    b = rng.integers(-(2**62), 2**62, 4, dtype=np.int64)
    y = run_linear(x, w, b)
    with np.errstate(over="ignore"):
        ref = x @ w.T + b
    assert np.array_equal(y, ref)


def test_linear_inputs_unchanged(isa, rng):
    x, w, b = _case(rng, 17, 33, 65, np.float32)
    tx, tw, tb = lincore.tensor(x), lincore.tensor(w), lincore.tensor(b)
    lincore.nn.functional.linear(tx, tw, tb)
    assert np.array_equal(np.asarray(tx), x) and np.array_equal(np.asarray(tw), w)
    assert np.array_equal(np.asarray(tb), b)


@pytest.mark.parametrize("threads", [2, 3])
def test_linear_large_weight_packed_by_threads_same_result(isa, rng, threads):
    # 300 x 700 weights: packed by several threads in ranges of panels (gemm_pack).
    x, w, b = _case(rng, 5, 300, 700, np.float32)
    with num_threads(1):
        single = run_linear(x, w, b)
    with num_threads(threads):
        assert np.array_equal(single, run_linear(x, w, b))
    assert_linear_close(single, x, w, b)


# Column blocks of the loop nest (loop_nest.h: ncp panels per block, 640 KiB of a K-slice of
# W): 512 columns for AVX-512 f32, 256 f64; 640 / 320 for AVX2 and SSE2; with several K-slices
# and row blocks.
COLUMN_BLOCK_CASES = [
    (150, 513, 330),
    (13, 641, 300),
    (146, 257, 650),
    (2, 1025, 70),
    (200, 321, 520),
]


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize(
    "m,n,k", COLUMN_BLOCK_CASES, ids=[f"m{m}-n{n}-k{k}" for m, n, k in COLUMN_BLOCK_CASES]
)
def test_linear_across_column_blocks(isa, rng, dt, m, n, k):
    x, w, b = _case(rng, m, n, k, DTYPES[dt][0])
    for act in (0, 1):  # the activation is applied once, at the last K-slice of each block
        y = run_linear(x, w, b, act)
        assert_linear_close(y, x, w, b, act=(lambda r: np.maximum(r, 0)) if act else None)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize(
    "m,n,k",
    [(300, 600, 700), (5, 70, 1000), (150, 33, 64)],
    ids=["m300-n600-k700", "m5-n70-k1000", "m150-n33-k64"],
)
def test_linear_rows_4kib_apart_packed_x(isa, rng, dt, m, n, k):
    """x rows 4 KiB apart (a view into a wider array) are packed by the kernel, a whole row
    block at once (all K-slices), reused by every column block; bitwise the same as unpacked."""
    np_dt = DTYPES[dt][0]
    per_4kib = 4096 // np.dtype(np_dt).itemsize
    width = -(-k // per_4kib) * per_4kib  # rows a multiple of 4 KiB apart
    big = rng.standard_normal((m, width)).astype(np_dt)
    x = big[:, :k]
    _, w, b = _case(rng, m, n, k, np_dt)
    y = run_linear(x, w, b)
    assert_linear_close(y, x, w, b)
    assert np.array_equal(y, run_linear(np.ascontiguousarray(x), w, b))
