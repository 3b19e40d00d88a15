"""The bf16 kernels (kernels/bgemm.h) on raw bf16 bits, through the private test entry
_core._bgemm: each bf16 level this CPU has against a float64 reference of the same bf16
inputs (docs/testing.md's rule with k terms; one more relative 2^-8 for a bf16 output), shape
sweeps with edge sizes derived from the levels' tiles, every activation, bias or none, threads
1 and 2; and the vectorized conversions against tensor/bfloat16.h's scalar rule, bit for bit."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

import lincore
from conftest import SMALLEST_SUBNORMAL, UNIT_ROUNDOFF, assert_within_bound, num_threads

C = lincore._core
U32 = UNIT_ROUNDOFF[np.dtype(np.float32)]
BF16_U = 2.0**-8  # bf16's unit roundoff: 8 significant bits

LEVELS = C.supported_bf16_capabilities()


@pytest.fixture(params=LEVELS)
def level(request):
    """Runs the test under each bf16 level this CPU supports, then follows the fp32 level."""
    C._set_bf16_capability(request.param)
    try:
        yield request.param
    finally:
        C._set_bf16_capability("")


# --- the scalar rule (tensor/bfloat16.h) in numpy ---------------------------------------------


def rule_to_bf16(f: np.ndarray) -> np.ndarray:
    """fp32 -> bf16 bits: round to nearest even on the bits; NaN keeps its sign, gets the quiet
    bit."""
    u = np.array(f, np.float32).view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF
    return np.where(nan, (u >> 16) | 0x40, rounded).astype(np.uint16)


def rule_to_float(b: np.ndarray) -> np.ndarray:
    return (np.asarray(b, np.uint16).astype(np.uint32) << 16).view(np.float32)


def test_widening_all_65536_patterns(level):
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    for lo, hi in [(0, 1 << 16), (3, 1 << 16), (0, 13), (5, 20)]:  # tails and offsets
        got = C._bf16_to_floats(bits[lo:hi])
        assert got.dtype == np.float32 and got.shape == (hi - lo,)
        np.testing.assert_array_equal(
            got.view(np.uint32), rule_to_float(bits[lo:hi]).view(np.uint32)
        )


def _narrowing_cases() -> np.ndarray:
    rng = np.random.default_rng(7)
    edges = []
    for hi in range(1 << 16):  # every bf16 pattern with the low halves that decide the rounding
        base = hi << 16
        edges += [base, base | 0x7FFF, base | 0x8000, base | 0x8001, base | 0xFFFF]
    edges = np.array(edges, np.uint64).astype(np.uint32)
    special = np.array(
        [
            0x00000000,
            0x80000000,
            0x00000001,
            0x80000001,
            0x007FFFFF,
            0x807FFFFF,  # subnormals
            0x00008000,
            0x00018000,
            0x00800000,
            0x7F7FFFFF,
            0xFF7FFFFF,
            0x7F7F8000,
            0x7F7F7FFF,
            0x7F800000,
            0xFF800000,
            0x7F800001,
            0xFF800001,
            0x7FC00000,
            0xFFC00000,  # Inf, NaN
            0x7F80FFFF,
            0x7FBFFFFF,
            0x7FFFFFFF,
            0xFFFFFFFF,
            0x7F808000,
        ],
        np.uint32,
    )
    rand = rng.integers(0, 1 << 32, size=1 << 20, dtype=np.uint64).astype(np.uint32)
    return np.concatenate([special, edges, rand]).view(np.float32)


NARROWING = _narrowing_cases()


def test_narrowing_matches_the_scalar_rule(level):
    want = rule_to_bf16(NARROWING)
    for lo, hi in [(0, len(NARROWING)), (1, 40), (0, 15), (2, 33)]:
        got = C._floats_to_bf16(NARROWING[lo:hi])
        assert got.dtype == np.uint16
        np.testing.assert_array_equal(got, want[lo:hi])


def test_narrowing_agrees_with_torch():
    torch = pytest.importorskip("torch", reason="torch is the rule's stated model")
    f = NARROWING[~np.isnan(NARROWING)]  # torch's NaN payloads are its own business
    want = torch.from_numpy(f.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(C._floats_to_bf16(f), want)


# --- the kernels ---------------------------------------------------------------------------------

_erf = np.vectorize(math.erf, otypes=[np.float64])
_GELU_C = math.sqrt(2.0 / math.pi)

# name -> (float64 definition, Lipschitz bound, relative size of the activation's own rounding
# in fp32 ulps of max(|f|, |z|, 1), or of |f| for the exact ones)
ACTS = {
    "none": (lambda z: z, 1.0, 0),
    "relu": (lambda z: np.maximum(z, 0), 1.0, 0),
    "leaky_relu": (lambda z: np.where(z < 0, z * 0.01, z), 1.0, 2),
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), 1.0, 8),
    "tanh": (np.tanh, 1.0, 8),
    "gelu": (lambda z: 0.5 * z * (1.0 + _erf(z / math.sqrt(2.0))), 1.13, 8),
    "gelu_tanh": (lambda z: 0.5 * z * (1.0 + np.tanh(_GELU_C * (z + 0.044715 * z**3))), 1.13, 8),
}


def bf16_operands(rng, m, k, n, *, bias=True, scale=1.0):
    """bf16 bits for x (m, k) and w (n, k) (random normals rounded by the rule), an fp32 bias."""
    x = rule_to_bf16((rng.standard_normal((m, k)) * scale).astype(np.float32))
    w = rule_to_bf16((rng.standard_normal((n, k)) / max(1.0, math.sqrt(k))).astype(np.float32))
    b = rng.standard_normal(n).astype(np.float32) if bias else None
    return x, w, b


def assert_bgemm_close(y, x, w, b, act="none", out_bf16=False):
    """bgemm.h's rule against float64: the fp32 sums of k terms (docs/testing.md), through an
    activation of Lipschitz bound L with its own rounding; a bf16 output adds one rounding of
    relative 2^-8 of the fp32 value (which lies within the fp32 bound of the reference)."""
    fn, lip, ulps = ACTS[act]
    xf, wf = rule_to_float(x).astype(np.float64), rule_to_float(w).astype(np.float64)
    k = xf.shape[1]
    z = xf @ wf.T
    g = np.abs(xf) @ np.abs(wf).T
    if b is not None:
        z = z + b.astype(np.float64)
        g = g + np.abs(b.astype(np.float64))
    with np.errstate(over="ignore"):
        ref = fn(z)
    if act in ("sigmoid", "tanh", "gelu", "gelu_tanh"):
        extra = ulps * U32 * np.maximum(np.maximum(np.abs(ref), np.abs(z)), 1.0)
    else:
        extra = ulps * U32 * np.abs(ref)
    if out_bf16:
        assert y.dtype == np.uint16
        y = rule_to_float(y)
        gamma = (k + 2) * U32 / (1 - (k + 2) * U32)
        fp32_tol = lip * gamma * g + (k + 1) * SMALLEST_SUBNORMAL[np.dtype(np.float32)] + extra
        extra = extra + BF16_U * (np.abs(ref) + fp32_tol)
    else:
        assert y.dtype == np.float32
    assert_within_bound(y, ref, lip * g, k + 2, extra=extra)


_BLOCK = C._bf16_blocking()
PANEL, PAIR = _BLOCK["panel"], _BLOCK["pair"]
_MRS = {lv["mr"] for lv in _BLOCK["levels"].values()}


def _around(values, deltas=(-1, 0, 1)):
    return {v + d for v in values for d in deltas if v + d >= 0}


# Rows: every level's row tile +- 1 and twice it +- 1 (a tile and a remainder), the few-row
# widths (4, 8), and the 4 mr row count where two threads switch from a column to a row split.
M_SIZES = sorted(
    {0, 1, 2, 3, 5, 7, 8, 9}
    | _around(_MRS)
    | _around({2 * v for v in _MRS})
    | _around({8 * v for v in _MRS}, (0, 1))
)
# Columns: the panel and one to four panels (the widest tile) +- 1.
N_SIZES = sorted({0, 1, 2, 3, 7} | _around({PANEL * i for i in range(1, 6)}))
# Depth: 0 to 3, odd and even around the pair, and primes.
K_SIZES = sorted({0, 1, 2, 3, 4, 5, 31, 67, 127, 128} | _around({2 * PAIR, 8 * PAIR}))


@pytest.mark.parametrize("threads", [1, 2])
def test_shape_sweep(level, threads):
    rng = np.random.default_rng(11)
    cases = [(m, 37, 47) for m in M_SIZES] + [(13, k, 33) for k in K_SIZES]
    cases += [(m, 19, n) for n in N_SIZES for m in (1, 5, 13)]
    cases += [(0, 0, 0), (1, 1, 1), (3, 0, 17), (25, 129, 65)]
    with num_threads(threads):
        for m, k, n in cases:
            for bias in (True, False):
                x, w, b = bf16_operands(rng, m, k, n, bias=bias)
                y = C._bgemm(x, w, b)
                assert y.shape == (m, n)
                assert_bgemm_close(y, x, w, b)


@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("out_bf16", [False, True])
def test_activations_and_outputs(level, act, out_bf16):
    rng = np.random.default_rng(3)
    for threads in (1, 2):
        with num_threads(threads):
            for m, k, n in [(1, 31, 33), (5, 64, 48), (13, 67, 17), (26, 130, 70), (40, 9, 65)]:
                for bias in (True, False):
                    x, w, b = bf16_operands(rng, m, k, n, bias=bias, scale=2.0)
                    y = C._bgemm(x, w, b, act, out_bf16)
                    assert y.shape == (m, n)
                    assert_bgemm_close(y, x, w, b, act, out_bf16)


def test_large_enough_for_threads_and_cache_blocks(level):
    # k deep enough that a 512 KiB block of panels ends inside n; rows over several tiles.
    rng = np.random.default_rng(5)
    x, w, b = bf16_operands(rng, 53, 2050, 300)
    for threads in (1, 2):
        with num_threads(threads):
            y = C._bgemm(x, w, b, "relu", False)
            assert_bgemm_close(y, x, w, b, "relu")
            yb = C._bgemm(x, w, b, "relu", True)
            np.testing.assert_array_equal(yb, rule_to_bf16(y))


def test_a_row_does_not_depend_on_batch_or_threads(level):
    """The sums of one output run over k in order in every tile: bitwise the same result for a
    row alone, in any batch, on any thread count."""
    rng = np.random.default_rng(9)
    x, w, b = bf16_operands(rng, 61, 333, 150)
    with num_threads(1):
        whole = C._bgemm(x, w, b)
    with num_threads(2):
        np.testing.assert_array_equal(C._bgemm(x, w, b), whole)
        for lo, hi in [(0, 1), (5, 9), (13, 40), (60, 61)]:
            np.testing.assert_array_equal(C._bgemm(x[lo:hi], w, b), whole[lo:hi])


def test_bf16_output_is_the_rounded_fp32_output(level):
    rng = np.random.default_rng(4)
    x, w, b = bf16_operands(rng, 17, 45, 70, scale=3.0)
    for act in ACTS:
        np.testing.assert_array_equal(
            C._bgemm(x, w, b, act, True), rule_to_bf16(C._bgemm(x, w, b, act))
        )


def test_nan_and_inf_propagate(level):
    rng = np.random.default_rng(2)
    x, w, b = bf16_operands(rng, 6, 21, 40)
    x[2, 7] = rule_to_bf16(np.float32(np.nan))
    x[4, 20] = rule_to_bf16(np.float32(np.inf))
    w[:, 20] = rule_to_bf16(np.abs(rule_to_float(w[:, 20])))  # every product +Inf (or 0 * Inf)
    w[3, 20] = 0
    y = C._bgemm(x, w, b)
    assert np.isnan(y[2]).all()
    assert np.isnan(y[4, 3]) and np.isposinf(np.delete(y[4], 3)).all()
    others = [0, 1, 3, 5]
    assert np.isfinite(y[others]).all()
    assert_bgemm_close(y[others], x[others], w, b)


def test_subnormal_inputs(level):
    """Exact on the levels that widen to fp32; VDPBF16PS counts subnormal inputs as zero (the
    contract says so)."""
    tiny = rule_to_bf16(np.float32(2.0**-130))  # a bf16 subnormal
    x = np.array([[tiny, rule_to_bf16(np.float32(1.0))]], np.uint16)
    w = rule_to_bf16(np.array([[2.0**100, 0.0], [2.0**100, 2.0**-30]], np.float32))
    y = C._bgemm(x, w)
    if level == "avx512_bf16":
        np.testing.assert_array_equal(y, [[0.0, 2.0**-30]])
    else:
        np.testing.assert_array_equal(y, [[2.0**-30, 2.0**-29]])


def test_inputs_unchanged_and_empty(level):
    rng = np.random.default_rng(1)
    x, w, b = bf16_operands(rng, 9, 33, 20)
    copies = x.copy(), w.copy(), b.copy()
    C._bgemm(x, w, b, "gelu", True)
    for a, c in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(
        C._bgemm(np.zeros((4, 0), np.uint16), np.zeros((3, 0), np.uint16), b[:3]),
        np.broadcast_to(b[:3], (4, 3)),
    )
    assert C._bgemm(np.zeros((0, 5), np.uint16), w[:, :5]).shape == (0, 20)


def test_levels_and_capability():
    assert LEVELS and LEVELS[-1] == "scalar"
    assert set(LEVELS) <= set(_BLOCK["levels"])
    assert lincore.cpu_capability("bf16") == C.bf16_capability()
    assert lincore.supported_cpu_capabilities("bf16") == LEVELS
    C._set_bf16_capability(LEVELS[-1])
    try:
        assert C.bf16_capability() == LEVELS[-1]
    finally:
        C._set_bf16_capability("")
    assert C.bf16_capability() == LEVELS[0] or lincore.cpu_capability() != "avx512"
    with pytest.raises(ValueError, match="unknown bf16 capability 'avx9'"):
        C._set_bf16_capability("avx9")


def test_bf16_level_follows_the_fp32_level():
    previous = lincore.cpu_capability()
    try:
        lincore._core._set_cpu_capability("scalar")
        assert C.bf16_capability() == "scalar"
        if "avx2" in lincore.supported_cpu_capabilities():
            lincore._core._set_cpu_capability("avx2")
            assert C.bf16_capability() == "avx2"
    finally:
        lincore._core._set_cpu_capability(previous)


def test_levels_follow_lincore_isa():
    """LINCORE_ISA forces the bf16 level down with the fp32 one (sse2 runs the portable bf16
    level); LINCORE_BF16_ISA forces it alone; a bad name fails the first bf16 call, saying which
    names exist."""
    fp32 = lincore.supported_cpu_capabilities()
    code = "import lincore; print(lincore.cpu_capability(), lincore.cpu_capability('bf16'))"

    def run(**env):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
        )
        return out.stdout.split() if out.returncode == 0 else out.stderr

    assert run(LINCORE_ISA="scalar") == ["scalar", "scalar"]
    if "sse2" in fp32:
        assert run(LINCORE_ISA="sse2") == ["sse2", "scalar"]
    if "avx2" in fp32:
        assert run(LINCORE_ISA="avx2") == ["avx2", "avx2"]
    for level in LEVELS:
        assert run(LINCORE_BF16_ISA=level)[1] == level
    assert "unknown bf16 capability 'avx9'" in run(LINCORE_BF16_ISA="avx9")


def test_bad_input():
    x = np.zeros((2, 3), np.uint16)
    with pytest.raises(ValueError, match="x has 3 columns but w has 4"):
        C._bgemm(x, np.zeros((5, 4), np.uint16))
    with pytest.raises(ValueError, match="expected a 2-D x"):
        C._bgemm(x[0], np.zeros((5, 3), np.uint16))
    with pytest.raises(ValueError, match="expected a 2-D w"):
        C._bgemm(x, np.zeros(3, np.uint16))
    with pytest.raises(ValueError, match="bias of 5 values"):
        C._bgemm(x, np.zeros((5, 3), np.uint16), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        C._bgemm(x, np.zeros((5, 3), np.uint16), None, "swish")


def test_packed_weight(level):
    """A weight packed once (_bgemm_pack) gives bitwise what packing per call gives; it holds
    its bias, and its size is bgemm.h's padded layout."""
    rng = np.random.default_rng(8)
    x, w, b = bf16_operands(rng, 10, 35, 50)
    pw = C._bgemm_pack(w, b)
    assert (pw.n, pw.k) == (50, 35)
    kpad, npad = 36, 64
    assert pw.nbytes == -(-npad * kpad * 2 // 64) * 64 + npad * 4
    for act in ("none", "gelu"):
        np.testing.assert_array_equal(C._bgemm(x, pw, None, act), C._bgemm(x, w, b, act))
    for n, k in [(50, 35), (16, 36), (17, 1), (3, 0), (0, 4)]:
        bits = rng.integers(0, 1 << 16, (n, k), dtype=np.uint16)
        np.testing.assert_array_equal(C._bgemm_pack(bits).weight_bits(), bits)
    with pytest.raises(ValueError, match="holds its bias"):
        C._bgemm(x, pw, b)
    with pytest.raises(ValueError, match="x has 34 columns but w has 35"):
        C._bgemm(x[:, :34], pw)
