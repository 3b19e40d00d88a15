"""lincore.bfloat16: the dtype, its conversions (csrc/tensor/bfloat16.h's rule, bit for bit with
PyTorch), tensors and the ops that widen to float32 and round once, numpy (ml_dtypes) and torch
interop, the bf16 Linear (against a float64 reference of the same bf16 inputs with the rule in
docs/testing.md plus the output rounding, and against the fp32 layer within the bound in
docs/quantization.md), Sequential runs, memory, save/load/pickle, inference-only autograd and bad
input. The kernels themselves: tests/test_bf16_kernels.py."""

from __future__ import annotations

import copy
import io
import math
import pickle
import sys

import numpy as np
import pytest

import lincore
import lincore.nn as nn
import lincore.nn.functional as F
from conftest import (
    BF16_UNIT_ROUNDOFF,
    EDGE_SIZES,
    UNIT_ROUNDOFF,
    assert_bf16_linear_close,
    num_threads,
)

BF = lincore.bfloat16
LEVELS = lincore._core.supported_bf16_capabilities()


def torch_or_skip():
    return pytest.importorskip("torch", reason="PyTorch is the reference for bf16 behaviour")


def bits_of(t: lincore.Tensor) -> np.ndarray:
    return np.array(t._bits(False))


def rule(f: np.ndarray) -> np.ndarray:
    """fp32 -> bf16 bits by the rule (round to nearest even; NaN quiet, sign kept)."""
    u = np.asarray(f, np.float32).view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF
    return np.where(nan, (u >> 16) | 0x40, rounded).astype(np.uint16)


def widen(bits: np.ndarray) -> np.ndarray:
    return (np.asarray(bits, np.uint16).astype(np.uint32) << 16).view(np.float32)


def bf16_values(rng, shape, scale=1.0) -> np.ndarray:
    """float32 values that are exactly bf16 (random normals rounded by the rule)."""
    return widen(rule((rng.standard_normal(shape) * scale).astype(np.float32)))


@pytest.fixture(params=LEVELS)
def level(request):
    """Runs the test under each bf16 level this CPU supports, then follows the fp32 level."""
    lincore._core._set_bf16_capability(request.param)
    try:
        yield request.param
    finally:
        lincore._core._set_bf16_capability("")


# --- the dtype -----------------------------------------------------------------------------------


def test_dtype_object():
    assert repr(BF) == "lincore.bfloat16" and BF.name == "bfloat16"
    assert BF.itemsize == 2 and BF.is_floating_point and BF.is_signed
    assert pickle.loads(pickle.dumps(BF)) is BF and copy.deepcopy(BF) is BF
    assert "bfloat16" in lincore.__all__ and lincore.bfloat16 is BF
    t = lincore.zeros(3, dtype=BF)
    assert t.dtype is BF and t.element_size() == 2 and t.is_floating_point()
    assert "ml_dtypes" not in lincore.__dict__


def test_import_does_not_import_ml_dtypes():
    import subprocess

    code = "import sys, lincore; lincore.ones(2, dtype=lincore.bfloat16) + 1; "
    code += "print('ml_dtypes' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# --- conversions: the rule, and PyTorch's bits -------------------------------------------------


def special_floats() -> np.ndarray:
    f32 = np.finfo(np.float32)
    vals = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, -np.nan, f32.max, -f32.max]
    vals += [f32.tiny, f32.smallest_subnormal, -f32.smallest_subnormal, 3.3895314e38, 3.39e38]
    vals += [1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, 255.5, 256.5, 257.0, 65504.0]
    patterns = np.array([0x7F800001, 0xFF800001, 0x7FC00000, 0x00008000, 0x0000FFFF], np.uint32)
    return np.concatenate([np.array(vals, np.float32), patterns.view(np.float32)])


def test_float32_to_bf16_is_the_rule_and_torch(rng):
    values = np.concatenate([special_floats(), rng.standard_normal(5000).astype(np.float32) * 1e3])
    values = np.concatenate(
        [values, rng.integers(0, 2**32, 20000, dtype=np.uint64).astype(np.uint32).view(np.float32)]
    )
    t = lincore.tensor(values).to(BF)
    np.testing.assert_array_equal(bits_of(t), rule(values))
    # non-contiguous source and target take the scalar loop: the same bits
    strided = lincore.tensor(np.stack([values, values], 1))[:, 1].to(BF)
    np.testing.assert_array_equal(bits_of(strided), rule(values))
    torch = torch_or_skip()
    expect = torch.from_numpy(values).to(torch.bfloat16).view(torch.int16).numpy()
    # torch's vectorized conversion gives every NaN the pattern 0xFFFF; the rule keeps the sign
    # and the payload's top bits (a NaN either way)
    nan = np.isnan(values)
    np.testing.assert_array_equal(bits_of(t)[~nan], expect.view(np.uint16)[~nan])
    assert np.all(np.isnan(widen(bits_of(t)[nan])))


def test_widening_is_exact_for_every_pattern():
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    t = lincore._core._from_buffer(bits, BF._code)
    assert t.dtype is BF
    got = np.asarray(t.float())
    np.testing.assert_array_equal(got.view(np.uint32), widen(bits).view(np.uint32))
    with np.errstate(invalid="ignore"):  # numpy's own cast of signaling NaNs
        wide = widen(bits).astype(np.float64)
    np.testing.assert_array_equal(np.asarray(t.double()), wide)


def test_other_dtypes_narrow_as_torch():
    torch = torch_or_skip()
    f64 = np.array([1 + 2**-8 + 2**-30, 1e300, -1e-300, 2**-133, np.nan], np.float64)
    i64 = np.array([0, 1, -257, 2**24 + 1, 2**62 + 2**40, -(2**63)], np.int64)
    b = np.array([True, False])
    for arr in (f64, i64, b):
        got = bits_of(lincore.tensor(arr).to(BF))
        want = torch.from_numpy(arr).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        np.testing.assert_array_equal(got, want)
        got = bits_of(lincore.tensor(arr.tolist(), dtype=BF))
        np.testing.assert_array_equal(got, want)
    back = lincore.tensor([1.5, -0.0, np.nan, 3.0], dtype=BF)
    assert np.asarray(back.long()).tolist()[:2] == [1, 0]
    assert np.asarray(back.bool()).tolist() == [True, False, True, True]


# --- tensors -------------------------------------------------------------------------------------


def test_factories():
    assert bits_of(lincore.zeros(2, 3, dtype=BF)).tolist() == [[0] * 3] * 2
    assert lincore.ones(4, dtype=BF).tolist() == [1.0] * 4
    assert lincore.full((2,), 1 + 2**-8 + 2**-30, dtype=BF).tolist() == [1.0, 1.0]
    assert lincore.full((2,), 3, dtype=BF).dtype is BF
    assert lincore.empty(5, dtype=BF).shape == (5,)
    assert lincore.arange(0, 3, 0.5, dtype=BF).tolist() == [0, 0.5, 1, 1.5, 2, 2.5]
    for t in (lincore.rand(50, dtype=BF), lincore.randn(50, dtype=BF)):
        assert t.dtype is BF and np.all(np.isfinite(t.float().numpy()))
    like = lincore.zeros_like(lincore.ones(2, dtype=BF))
    assert like.dtype is BF and lincore.ones_like(like).tolist() == [1.0, 1.0]
    assert lincore.tensor(2.5, dtype=BF).item() == 2.5 and lincore.tensor([], dtype=BF).numel() == 0
    assert lincore.ones(2).bfloat16().dtype is BF and lincore.ones(2).to(BF).float().dtype is (
        lincore.float32
    )


@pytest.mark.parametrize(
    "values",
    [
        [1.0, 2.0],
        [1.0, 2.5, 3.14159, -7.25],
        [1e-5, 1e5],
        [0.1, 123456.0, -0.0, float("nan"), float("inf")],
        [[1.5, 2.25], [3.0, 4.0]],
        [],
        3.14159,
        list(range(2000)),
    ],
)
def test_printing_is_torchs(values):
    torch = torch_or_skip()
    t = lincore.tensor(values, dtype=BF)
    expect = repr(torch.tensor(values, dtype=torch.bfloat16)).replace("torch.", "lincore.")
    assert repr(t) == expect
    p = nn.Parameter(lincore.ones(2, dtype=BF))
    assert repr(p) == repr(torch.nn.Parameter(torch.ones(2, dtype=torch.bfloat16))).replace(
        "torch.", "lincore."
    )


def test_views_copies_and_indexing():
    t = lincore.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=BF)
    assert t.view(3, 2).tolist() == [[1, 2], [3, 4], [5, 6]]
    assert t.T.contiguous().tolist() == [[1, 4], [2, 5], [3, 6]]
    assert t.reshape(-1)[2:].tolist() == [3, 4, 5, 6]
    assert t[1, 2].item() == 6.0 and t[:, 1].tolist() == [2, 5]
    assert t[[1, 0]].tolist() == [[4, 5, 6], [1, 2, 3]] and t[t > 2.5].tolist() == [3, 4, 5, 6]
    c = t.clone()
    c[0, 0] = 7.3
    c[1] = lincore.tensor([1.0, 1.0, 1.0])
    assert c.tolist() == [[7.3125, 2, 3], [1, 1, 1]] and t[0, 0].item() == 1.0
    c.copy_(lincore.tensor([9.0, 8.0, 7.0]))
    assert c.tolist() == [[9, 8, 7]] * 2
    c.fill_(0.1)
    assert np.all(bits_of(c) == rule(np.float32(0.1)))
    c.zero_()
    assert c.tolist() == [[0, 0, 0]] * 2
    d = lincore.zeros(3)
    d.copy_(t[0])
    assert d.dtype is lincore.float32 and d.tolist() == [1, 2, 3]
    assert (t == t.clone()).all() if hasattr(t, "all") else bool((t == t.clone()).sum() == 6)
    assert float(t[0, 1]) == 2.0 and len(t) == 2 and [r.dtype for r in t] == [BF, BF]


OPS = [
    ("add", lambda a, b: a + b),
    ("sub", lambda a, b: a - b),
    ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b),
    ("pow", lambda a, b: abs(a) ** b),
]


@pytest.mark.parametrize("name,op", OPS)
def test_elementwise_with_torch(name, op, rng):
    """Operands cast to bf16 (the result dtype), computed in fp32, rounded once: PyTorch's bits
    for two tensors and for add/sub with a scalar; PyTorch's mul/div/pow kernels keep a scalar
    (or an exponent) in fp32, so there the results may differ in the last bf16 bit."""
    torch = torch_or_skip()
    a = bf16_values(rng, (5, 7))
    b = bf16_values(rng, (7,)) + np.float32(2.0)
    la, lb = lincore.tensor(a, dtype=BF), lincore.tensor(b, dtype=BF)
    ta, tb = torch.from_numpy(a).bfloat16(), torch.from_numpy(b).bfloat16()
    i = b.astype(np.int64)
    exact = name in ("add", "sub")
    for lincore_out, torch_out, bitwise in [
        (op(la, lb), op(ta, tb), name != "pow"),
        (op(la, 0.3), op(ta, 0.3), exact),
        (op(la, 3), op(ta, 3), exact),
        (op(la, lincore.tensor(b)), op(ta, torch.from_numpy(b)), name != "pow"),  # -> float32
        (op(la, lincore.tensor(i)), op(ta, torch.from_numpy(i)), name != "pow"),
    ]:
        assert lincore_out.dtype.name == str(torch_out.dtype).removeprefix("torch.")
        got, want = lincore_out.float().numpy(), torch_out.float().numpy()
        if bitwise:
            np.testing.assert_array_equal(got, want, err_msg=name)
        else:
            np.testing.assert_allclose(got, want, rtol=2**-6, atol=0, err_msg=name)
    inplace = la.clone()
    inplace += 0.1
    inplace *= lb
    assert inplace.dtype is BF
    np.testing.assert_array_equal(bits_of(inplace), bits_of((la + 0.1) * lb))


def test_unary_reductions_and_matmul_with_torch(rng):
    torch = torch_or_skip()
    a = bf16_values(rng, (6, 33), scale=3.0)
    la, ta = lincore.tensor(a, dtype=BF), torch.from_numpy(a).bfloat16()
    pairs = [
        (-la, -ta),
        (abs(la), abs(ta)),
        (la.sum(), ta.sum()),
        (la.sum(1), ta.sum(1)),
        (la.mean(0), ta.mean(0)),
        (la.max(), ta.max()),
        (la.min(1).values, ta.min(1).values),
        (la.sigmoid(), ta.sigmoid()),
        (la.tanh(), ta.tanh()),
        (la.softmax(1), ta.softmax(1)),
        (F.relu(la), torch.relu(ta)),
    ]
    for got, want in pairs:
        assert got.dtype is BF
        np.testing.assert_allclose(got.float().numpy(), want.float().numpy(), rtol=2**-7, atol=0)
    assert la.argmax().item() == ta.argmax().item()
    # matmul: fp32 sums, one rounding
    b = bf16_values(rng, (33, 4))
    got = (la @ lincore.tensor(b, dtype=BF)).float().numpy()
    assert_bf16_linear_close(got, a, b.T)
    assert (la == la).dtype is lincore.bool and bool((la != la).sum() == 0)


def test_promotion_is_torchs():
    torch = torch_or_skip()
    ld = {
        "f32": lincore.float32,
        "f64": lincore.float64,
        "i64": lincore.int64,
        "bool": lincore.bool,
    }
    td = {"f32": torch.float32, "f64": torch.float64, "i64": torch.int64, "bool": torch.bool}
    b, tb = lincore.ones(2, dtype=BF), torch.ones(2, dtype=torch.bfloat16)
    for key in ld:
        got = (b + lincore.ones(2, dtype=ld[key])).dtype.name
        assert got == str((tb + torch.ones(2, dtype=td[key])).dtype).removeprefix("torch.")
    for scalar in (1, 1.5, True):
        assert (b * scalar).dtype is BF
    assert (lincore.ones(2, dtype=lincore.int64) + b).dtype is BF
    # comparisons: a scalar is cast to bf16 first, a float32 tensor compares in float32
    t, tt = lincore.tensor([0.1, 1.0], dtype=BF), torch.tensor([0.1, 1.0], dtype=torch.bfloat16)
    for got, want in [
        (t == 0.1, tt == 0.1),
        (t > 0.1, tt > 0.1),
        (t == lincore.tensor([0.1, 1.0]), tt == torch.tensor([0.1, 1.0])),
    ]:
        assert got.dtype is lincore.bool and got.tolist() == want.tolist()


# --- numpy ---------------------------------------------------------------------------------------


def test_numpy_is_an_ml_dtypes_view():
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="numpy's bfloat16 comes from ml_dtypes")
    t = lincore.tensor([1.0, 2.5, -3.0], dtype=BF)
    arr = t.numpy()
    assert arr.dtype == ml_dtypes.bfloat16 and arr.tolist() == [1.0, 2.5, -3.0]
    arr[0] = 5.0  # shares memory
    assert t[0].item() == 5.0
    assert np.asarray(t).dtype == ml_dtypes.bfloat16
    assert np.asarray(t, dtype=np.float32).tolist() == [5.0, 2.5, -3.0]
    src = np.array([0.5, -1.25, 3.0], dtype=ml_dtypes.bfloat16)
    shared = lincore.from_numpy(src)
    src[1] = 7.0
    assert shared.dtype is BF and shared.tolist() == [0.5, 7.0, 3.0]
    copied, viewed = lincore.tensor(src), lincore.as_tensor(src)
    src[0] = 0.0
    assert copied.tolist() == [0.5, 7.0, 3.0] and viewed.tolist() == [0.0, 7.0, 3.0]
    assert lincore.tensor(src, dtype=lincore.float32).tolist() == [0.0, 7.0, 3.0]


def test_numpy_without_ml_dtypes_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # import ml_dtypes -> ImportError
    t = lincore.tensor([1.0, 2.0], dtype=BF)
    with pytest.raises(TypeError, match=r"Got unsupported ScalarType BFloat16.*float\(\)\.numpy"):
        t.numpy()
    with pytest.raises(TypeError, match="unsupported ScalarType BFloat16"):
        np.asarray(t)
    with pytest.raises(TypeError, match="no buffer format"):
        memoryview(t)
    assert t.float().numpy().tolist() == [1.0, 2.0] and t.tolist() == [1.0, 2.0]


# --- torch interop -------------------------------------------------------------------------------


def test_torch_interop_both_ways(rng):
    torch = torch_or_skip()
    tm = torch.nn.Sequential(torch.nn.Linear(9, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    tm = tm.bfloat16()
    lm = lincore.from_torch(tm)
    assert lm[0].weight.dtype is BF and lm[0].weight.requires_grad
    x = torch.from_numpy(bf16_values(rng, (4, 9))).bfloat16()
    lx = lincore.from_dlpack(x)
    assert lx.dtype is BF and np.array_equal(bits_of(lx), x.view(torch.int16).numpy().view("u2"))
    x[0, 0] = 42.0  # shares memory
    assert lx[0, 0].item() == 42.0
    with lincore.no_grad():
        y = lm(lx)
    ty = torch.from_dlpack(y)
    assert ty.dtype == torch.bfloat16 and ty.shape == (4, 3)
    with torch.no_grad():
        want = tm(x)
    np.testing.assert_allclose(ty.float().numpy(), want.float().numpy(), rtol=2**-7, atol=1e-6)
    back = lm.to_torch()
    assert back[0].weight.dtype == torch.bfloat16 and torch.equal(back[0].weight, tm[0].weight)
    state = lincore.from_torch(tm.state_dict())
    assert state["2.bias"].dtype is BF and np.array_equal(
        bits_of(state["2.bias"]), tm[2].bias.detach().view(torch.int16).numpy().view("u2")
    )


# --- the bf16 Linear -----------------------------------------------------------------------------


def bf16_layer(rng, k, n, bias=True):
    layer = nn.Linear(k, n, bias=bias, dtype=BF)
    w = bf16_values(rng, (n, k), scale=1 / max(1.0, math.sqrt(k)))
    b = bf16_values(rng, (n,)) if bias else None
    with lincore.no_grad():
        layer.weight.copy_(lincore.tensor(w))
        if bias:
            layer.bias.copy_(lincore.tensor(b))
    return layer, w, b


SIZES = sorted({0, 1, 2, 3, 7, 16, 17, 31, 33, 67} | set(EDGE_SIZES[:12]))


@pytest.mark.parametrize("m", [1, 2, 5, 13])
def test_linear_against_float64_reference(level, rng, m):
    for k in SIZES:
        for n in (1, 16, 17, 33):
            layer, w, b = bf16_layer(rng, k, n, bias=(k + n) % 2 == 0)
            x = bf16_values(rng, (m, k))
            with lincore.no_grad():
                y = layer(lincore.tensor(x, dtype=BF))
            assert y.dtype is BF and y.shape == (m, n)
            assert_bf16_linear_close(y.float().numpy(), x, w, b)


def test_linear_bigger_shapes_threads_and_batches(rng):
    layer, w, b = bf16_layer(rng, 300, 130)
    x = bf16_values(rng, (2, 3, 65, 300))
    with lincore.no_grad():
        for threads in (1, 2):
            with num_threads(threads):
                y = layer(lincore.tensor(x, dtype=BF))
                assert y.shape == (2, 3, 65, 130)
                assert_bf16_linear_close(
                    y.float().numpy().reshape(-1, 130), x.reshape(-1, 300), w, b
                )
        # a 1-D input, a transposed (non-contiguous) one, a broadcast row
        xt = lincore.tensor(x[0, 0].T.copy(), dtype=BF).T
        assert_bf16_linear_close(layer(xt).float().numpy(), x[0, 0], w, b)
        assert_bf16_linear_close(
            layer(lincore.tensor(x[0, 0, 0], dtype=BF)).float().numpy(), x[0, 0, 0][None], w, b
        )


def test_linear_matches_torch(rng):
    """PyTorch's bf16 Linear sums in fp32 too, in another order: the same bits almost always
    (measured: 1 element in 51100 one bf16 ulp apart), and both within the rule."""
    torch = torch_or_skip()
    torch.manual_seed(0)
    total = same = 0
    for k in (1, 7, 64, 300):
        for n in (1, 17, 128):
            for m in (1, 5, 64):
                tl = torch.nn.Linear(k, n).bfloat16()
                ll = lincore.from_torch(tl)
                x = torch.from_numpy(bf16_values(rng, (m, k))).bfloat16()
                with torch.no_grad():
                    want = tl(x)
                with lincore.no_grad():
                    got = torch.from_dlpack(ll(lincore.from_dlpack(x)))
                w, b = tl.weight.float().detach().numpy(), tl.bias.float().detach().numpy()
                assert_bf16_linear_close(got.float().numpy(), x.float().numpy(), w, b)
                assert_bf16_linear_close(want.float().numpy(), x.float().numpy(), w, b)
                total += got.numel()
                same += int((got.view(torch.int16) == want.view(torch.int16)).sum())
    assert same >= 0.999 * total


def test_activations_fused_and_functional(rng):
    layer, w, b = bf16_layer(rng, 40, 24)
    x = bf16_values(rng, (9, 40))
    lx = lincore.tensor(x, dtype=BF)
    with lincore.no_grad():
        relu = nn.Sequential(layer, nn.ReLU())(lx)
        assert_bf16_linear_close(relu.float().numpy(), x, w, b, act=lambda z: np.maximum(z, 0))
        y = F.linear(lx, layer.weight, layer.bias)
        np.testing.assert_array_equal(bits_of(y), bits_of(layer(lx)))
        # a sigmoid after a bf16 Linear: the Linear's output rounded first, as PyTorch does
        sig = nn.Sequential(layer, nn.Sigmoid())(lx)
        np.testing.assert_array_equal(bits_of(sig), bits_of(layer(lx).sigmoid()))


def test_linear_against_fp32_layer_within_the_stated_bound(rng):
    """docs/quantization.md's bound, u = 2^-8, G = |x| |W|^T + |b|:
    |y_bf16 - y_fp32| <= E + u (|y_fp32| + E),
    E = (2u + u^2) G + u |b| + gamma(k+2) ((1 + u)^2 + 1) G:
    the inputs' rounding, the fp32 sums of both layers, and the output's rounding."""
    for k, n in ((64, 128), (128, 64), (784, 10), (5, 3)):
        x = rng.standard_normal((17, k)).astype(np.float32)
        w = (rng.standard_normal((n, k)) / math.sqrt(k)).astype(np.float32)
        b = rng.standard_normal(n).astype(np.float32)
        f32 = nn.Linear(k, n)
        with lincore.no_grad():
            f32.weight.copy_(lincore.tensor(w))
            f32.bias.copy_(lincore.tensor(b))
            y32 = np.asarray(f32(lincore.tensor(x)), np.float64)
            y16 = copy.deepcopy(f32).bfloat16()(lincore.tensor(x).bfloat16()).float().numpy()
        u, u32 = BF16_UNIT_ROUNDOFF, UNIT_ROUNDOFF[np.dtype(np.float32)]
        g = np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64)).T + np.abs(b)
        gamma = (k + 2) * u32 / (1 - (k + 2) * u32)
        inner = (2 * u + u * u) * g + u * np.abs(b) + gamma * ((1 + u) ** 2 + 1) * g
        bound = inner + u * (np.abs(y32) + inner)
        err = np.abs(y16.astype(np.float64) - y32)
        assert np.all(err <= bound), float((err / bound).max())


def test_pack_is_built_once_and_rebuilt_when_the_weight_changes(rng):
    layer, w, b = bf16_layer(rng, 20, 10)
    x = lincore.tensor(bf16_values(rng, (3, 20)), dtype=BF)
    with lincore.no_grad():
        y0 = layer(x)
        built = layer._pack.packs_built
        layer(x)
        assert layer._pack.packs_built == built
        layer.weight[0, 0] = 100.0
        y1 = layer(x)
        assert layer._pack.packs_built == built + 1 and not np.array_equal(bits_of(y0), bits_of(y1))
        built = layer._pack.packs_built
        pickle.dumps(layer)  # readers of the weight (saving, pickling) leave the pack current
        lincore.save(layer, io.BytesIO())
        layer(x)
        assert layer._pack.packs_built == built
        layer.bias.copy_(lincore.zeros(10))
        y2 = layer(x)
        assert_bf16_linear_close(
            y2.float().numpy(), x.float().numpy(), layer.weight.float().numpy(), None
        )
        ml_dtypes = pytest.importorskip("ml_dtypes", reason="a numpy view of the weight")
        view = layer.weight.detach().numpy()
        assert view.dtype == ml_dtypes.bfloat16
        view[:] = 0  # a write through numpy: the pack is not trusted while the view lives
        assert np.all(layer(x).float().numpy() == 0)


def test_memory_is_the_bf16_bytes_once_more(rng):
    for k, n in ((256, 256), (784, 128), (1024, 1000), (3, 5)):
        layer = nn.Linear(k, n, dtype=BF)
        with lincore.no_grad():
            layer(lincore.ones(1, k, dtype=BF))
        weight_bytes = layer.weight.numel() * layer.weight.element_size()
        held = weight_bytes + layer.bias.numel() * 2 + layer._pack.packed_bytes
        assert held <= 2.1 * weight_bytes + 64 * 4 + 16 * 6, (k, n, held / weight_bytes)
        if k * n >= 65536:
            assert held <= 2.1 * weight_bytes
    model = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 256)).bfloat16()
    with lincore.no_grad():
        model(lincore.ones(2, 512, dtype=BF))
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    packs = model[0]._pack.packed_bytes + model[2]._pack.packed_bytes
    assert all(p.dtype is BF for p in model.parameters()) and params + packs <= 2.1 * params


def test_sequential_runs_natively_in_bf16(rng):
    lincore.manual_seed(3)
    model = nn.Sequential(
        nn.Linear(30, 40),
        nn.ReLU(),
        nn.Linear(40, 20),
        nn.Tanh(),
        nn.Linear(20, 5),
        nn.Softmax(dim=-1),
    ).bfloat16()
    x = lincore.tensor(bf16_values(rng, (8, 30)), dtype=BF)
    with lincore.no_grad():
        y = model(x)
        h = x
        for layer in model:
            h = layer(h)
        assert y.dtype is BF and np.array_equal(bits_of(y), bits_of(h))
    torch = pytest.importorskip("torch", reason="PyTorch's own bf16 run")
    tm = model.to_torch()
    with torch.no_grad():
        want = tm(torch.from_dlpack(x))
    np.testing.assert_allclose(y.float().numpy(), want.float().numpy(), rtol=2**-6, atol=2**-9)


def test_mixed_dtypes_raise_like_torch():
    mixed = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    mixed[2].bfloat16()
    with lincore.no_grad():
        with pytest.raises(
            RuntimeError, match="must have the same dtype, but got Float and BFloat16"
        ):
            mixed(lincore.ones(1, 4))
        bf = nn.Linear(4, 3, dtype=BF)
        with pytest.raises(
            RuntimeError, match="must have the same dtype, but got Float and BFloat16"
        ):
            bf(lincore.ones(1, 4))
        with pytest.raises(RuntimeError, match="but got BFloat16 and Float"):
            nn.Linear(4, 3)(lincore.ones(1, 4, dtype=BF))
        with pytest.raises(RuntimeError, match="but got Double and BFloat16"):
            F.linear(lincore.ones(1, 4, dtype=lincore.float64), bf.weight)


def test_inference_only():
    layer = nn.Linear(4, 3, dtype=BF)
    x = lincore.ones(2, 4, dtype=BF)
    assert layer.weight.requires_grad  # as torch's
    for run in (
        lambda: layer(x),
        lambda: F.linear(x, layer.weight, layer.bias),
        lambda: nn.Sequential(layer, nn.ReLU())(x),
    ):
        with pytest.raises(RuntimeError, match=r"inference-only in lincore.*no_grad"):
            run()
    with lincore.no_grad():
        assert layer(x).shape == (2, 3)
    with lincore.inference_mode():
        assert layer(x).shape == (2, 3)
    layer.requires_grad_(False)
    assert layer(x).shape == (2, 3) and not layer(x).requires_grad
    grad_x = lincore.ones(2, 4, dtype=BF, requires_grad=True)
    with pytest.raises(RuntimeError, match="inference-only"):
        layer(grad_x)
    with pytest.raises(RuntimeError, match="bfloat16 tensors are inference-only"):
        grad_x * 2
    with pytest.raises(RuntimeError, match="bfloat16 tensors are inference-only"):
        lincore.ones((), dtype=BF, requires_grad=True).backward()
    with pytest.raises(RuntimeError, match="bfloat16 tensors are inference-only"):
        lincore.ones(2, requires_grad=True).to(BF)
    model = nn.Sequential(nn.Linear(4, 3)).bfloat16()
    assert model[0].weight.requires_grad and model[0].weight.dtype is BF


def test_bad_input():
    torch = torch_or_skip()
    # NaN and Inf weights are kept, as torch keeps them
    layer = nn.Linear(3, 2, dtype=BF)
    with lincore.no_grad():
        layer.weight.copy_(lincore.tensor([[np.nan, 0, 0], [np.inf, 0, 0]]))
        y = layer(lincore.ones(1, 3, dtype=BF)).float().numpy()
    assert np.isnan(y[0, 0]) and np.isinf(y[0, 1])
    with pytest.raises(TypeError, match="dtype must be lincore.float32, lincore.float64 or"):
        nn.Linear(2, 2, dtype=lincore.int64)
    with pytest.raises(TypeError, match="only accepts floating point"):
        nn.Linear(2, 2).to(lincore.int64)
    # zero-size layers work, as torch's do
    with lincore.no_grad():
        assert nn.Linear(0, 3, dtype=BF)(lincore.ones(2, 0, dtype=BF)).tolist() == [[0.0] * 3] * 2
        assert nn.Linear(3, 0, dtype=BF)(lincore.ones(2, 3, dtype=BF)).shape == (2, 0)
        assert nn.Linear(3, 4, dtype=BF)(lincore.ones(0, 3, dtype=BF)).shape == (0, 4)
    with torch.no_grad(), pytest.warns(UserWarning, match="zero-element"):
        want = torch.nn.Linear(0, 3, dtype=torch.bfloat16)(torch.ones(2, 0, dtype=torch.bfloat16))
    assert want.tolist() == [[0.0] * 3] * 2
    # ops with no bf16 kernel raise, never compute on bits
    t = lincore.ones(2, dtype=BF)
    with pytest.raises((TypeError, NotImplementedError)):
        F.mse_loss(t, t)


def test_quantized_layers_are_left_alone():
    model = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 4))
    q = lincore.quantize_dynamic(model, {"2"})
    codes = q[2].int8_weight().copy()
    q.bfloat16()
    assert q[0].weight.dtype is BF and type(q[2]) is nn.DynamicQuantizedLinear
    np.testing.assert_array_equal(q[2].int8_weight(), codes)


# --- save, load, pickle --------------------------------------------------------------------------


def test_save_load_pickle_are_bitwise(rng, tmp_path):
    model = nn.Sequential(nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 2)).bfloat16()
    x = lincore.tensor(bf16_values(rng, (3, 7)), dtype=BF)
    with lincore.no_grad():
        y = model(x)
    path = tmp_path / "bf16.safetensors"
    lincore.save(model, path)
    loaded = lincore.load(path)
    assert [t.dtype for t in loaded.values()] == [BF] * 4
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(bits_of(loaded[key]), bits_of(value))
    again = nn.Sequential(nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 2)).bfloat16()
    again.load_state_dict(loaded)
    with lincore.no_grad():
        np.testing.assert_array_equal(bits_of(again(x)), bits_of(y))
        for other in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
            assert other[0].weight.dtype is BF and other[0].weight.requires_grad
            np.testing.assert_array_equal(bits_of(other(x)), bits_of(y))
    t = lincore.tensor([1.0, np.nan, -0.0, np.inf], dtype=BF)
    np.testing.assert_array_equal(bits_of(pickle.loads(pickle.dumps(t))), bits_of(t))
    np.testing.assert_array_equal(bits_of(copy.deepcopy(t[::2])), bits_of(t[::2]))
    safetensors_torch = pytest.importorskip("safetensors.torch", reason="torch reads the file")
    torch = torch_or_skip()
    raw = safetensors_torch.load_file(str(path))
    assert raw["0.weight"].dtype == torch.bfloat16
    assert np.array_equal(
        raw["0.weight"].view(torch.int16).numpy().view("u2"), bits_of(model[0].weight)
    )
    data = safetensors_torch.save({"w": torch.tensor([1.5, -2.0], dtype=torch.bfloat16)})
    assert lincore.serialization.from_bytes(data)["w"].tolist() == [1.5, -2.0]


def test_bf16_files_into_float32_models_widen_as_torch(tmp_path):
    # torch's load_state_dict copies with conversion (copy_): BF16 into float32 is exact
    bf = nn.Linear(3, 2).bfloat16()
    path = tmp_path / "w.safetensors"
    lincore.save(bf, path)
    f32 = nn.Linear(3, 2)
    f32.load_state_dict(lincore.load(path))
    assert f32.weight.dtype is lincore.float32
    np.testing.assert_array_equal(
        np.asarray(f32.weight.detach()), bf.weight.detach().float().numpy()
    )
    with pytest.raises(RuntimeError, match="size mismatch"):
        nn.Linear(4, 2).load_state_dict(lincore.load(path))


def test_hostile_bf16_files():
    import json
    import struct

    def file(header: dict, data: bytes) -> bytes:
        text = json.dumps(header).encode()
        return struct.pack("<Q", len(text)) + text + data

    good = file({"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}, b"\x80?\x00@")
    assert lincore.serialization.from_bytes(good)["w"].tolist() == [1.0, 2.0]
    for bad in (
        file({"w": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 4]}}, b"\x80?\x00@"),
        file({"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 3]}}, b"\x80?\x00"),
        file({"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}, b"\x80?"),
        file({"w": {"dtype": "BF16", "shape": [2**62, 2**62], "data_offsets": [0, 4]}}, b"\0" * 4),
    ):
        with pytest.raises(ValueError, match="lincore.load"):
            lincore.serialization.from_bytes(bad)


# --- accuracy ------------------------------------------------------------------------------------


def test_digits_mlp_accuracy_within_half_a_point(digits_mlp):
    model, xt, y_test = digits_mlp
    with lincore.no_grad():
        acc32 = (np.asarray(model(xt).argmax(dim=1)) == y_test).mean()
        model.bfloat16()
        acc16 = (np.asarray(model(xt.bfloat16()).argmax(dim=1)) == y_test).mean()
    assert acc32 > 0.9
    assert abs(acc16 - acc32) <= 0.005
