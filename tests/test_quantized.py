"""int8 dynamic quantization (lincore.quantize_dynamic, nn.DynamicQuantizedLinear): each layer
against a float64 reference of the same quantized arithmetic (exact int32 sums, only the fp32
scaling rounds) under every int8 kernel level this CPU has, bitwise agreement between the
levels, the stated accuracy bound against the float computation (docs/quantization.md), native
Sequential runs, pickling, and bad input."""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

import lincore
import lincore.nn as nn
from conftest import num_threads

U = 2.0**-24  # fp32 unit roundoff
ACT_CODES = lincore._core.ACTIVATIONS


@pytest.fixture(params=lincore.supported_cpu_capabilities("int8"))
def isa8(request):
    """Runs the test under each int8 kernel level this CPU supports, then follows the fp32
    level again."""
    lincore._core._set_int8_capability(request.param)
    try:
        yield request.param
    finally:
        lincore._core._set_int8_capability("")


def ref_quantize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """qgemm.h's rule in numpy (each step one IEEE fp32 operation, so the codes are exact):
    s = max|x_row| / 127, q = rne(clip(x / s, -127, 127)); scale 0 and codes 0 for a zero
    row; scale NaN and codes 0 for a row holding NaN or Inf."""
    x = np.asarray(x, np.float32)
    k = x.shape[1]
    with np.errstate(all="ignore"):
        amax = np.abs(x).max(axis=1) if k else np.zeros(len(x), np.float32)
        s = (amax / np.float32(127)).astype(np.float32)
        q = np.rint(np.clip(x / s[:, None], np.float32(-127), np.float32(127)))
    bad = ~np.isfinite(x).all(axis=1)
    q[(s == 0) | bad] = 0
    s[bad] = np.nan
    return q.astype(np.int8), s


def quantized_reference(x, layer) -> tuple[np.ndarray, np.ndarray]:
    """(ref, G): the same quantized arithmetic in float64 (exact int sums, exact products), and
    G = |sx sw acc| + |b| that the three fp32 roundings are relative to."""
    xq, sx = ref_quantize(x)
    wq, sw = layer.int8_weight(), layer.scales()
    acc = xq.astype(np.int64) @ wq.astype(np.int64).T
    prod = acc * (sx.astype(np.float64)[:, None] * sw.astype(np.float64)[None, :])
    b = layer.bias()
    b = np.zeros(len(sw)) if b is None else b.astype(np.float64)
    return prod + b, np.abs(prod) + np.abs(b)


def assert_quantized_close(y, ref, g, extra=0.0):
    """float(acc), sx * sw and the FMA round once each: |y - ref| <= 3.01 u G (+ subnormal
    slack, + the activation's own rounding)."""
    y = np.asarray(y, np.float64)
    tol = 3.01 * U * g + 4 * 2.0**-149 + extra
    err = np.abs(y - ref)
    bad = ~(err <= tol) & ~(np.isnan(ref) & np.isnan(y))
    assert not bad.any(), (
        f"{bad.sum()} outside; first {np.argwhere(bad)[0]}: {y[bad][0]} vs {ref[bad][0]}"
    )


def make_layer(rng, k, n, bias=True, scale=1.0):
    lin = nn.Linear(k, n, bias=bias)
    with lincore.no_grad():
        lin.weight.copy_(lincore.tensor((rng.standard_normal((n, k)) * scale).astype(np.float32)))
    return lin, nn.DynamicQuantizedLinear.from_float(lin)


SHAPES = [
    (m, k, n)
    for m in (0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 25)
    for k, n in ((0, 3), (1, 1), (3, 5), (4, 16), (5, 17), (17, 15), (64, 33), (257, 100))
]


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_codes_match_the_rule(m, k, n, rng):
    x = rng.standard_normal((m, k)).astype(np.float32)
    q, s = lincore._core._quantize_rows(x)
    rq, rs = ref_quantize(x)
    np.testing.assert_array_equal(q, rq)
    np.testing.assert_array_equal(s, rs)
    _, layer = make_layer(rng, k, n)
    wq, ws = ref_quantize(np.asarray(make_layer(np.random.default_rng(5), k, n)[0].weight.detach()))
    assert layer.int8_weight().shape == (n, k)
    assert wq.shape == (n, k) and ws.shape == (n,)


def hard_rows(rng) -> list[np.ndarray]:
    """Inputs where a quantizer could round or scale differently from the rule: every row width
    0-70 (vector bodies and tails), values at and next to half-integer codes, subnormal values
    and scales, magnitudes from 2^-30 to 2^30, signed zeros, Inf and NaN."""
    out = []
    for k in list(range(71)) + [255, 781, 784, 1027]:
        x = rng.uniform(-1, 1, (6, k)).astype(np.float32)
        x *= np.float32(2.0) ** rng.integers(-30, 31, (6, 1)).astype(np.float32)
        half = (rng.integers(-127, 127, k) + np.float32(0.5)).astype(np.float32)
        x[1] = half  # amax 126.5 or so: codes at ties after the division
        x[2] = np.nextafter(half, np.where(rng.random(k) < 0.5, np.inf, -np.inf).astype(np.float32))
        x[3] = rng.uniform(-1, 1, k).astype(np.float32) * np.float32(1e-40)  # subnormal scale
        x[4] = np.where(rng.random(k) < 0.5, np.float32(-0.0), np.float32(0.0))
        if k:
            x[5, rng.integers(k)] = rng.choice([np.inf, -np.inf, np.nan])
        out.append(x)
    return out


def test_every_levels_quantizer_gives_the_rules_codes(isa8, rng):
    """The quantizer of x each level runs (qgemm_run's, not only the portable one that
    _quantize_rows uses by default) against the numpy rule, bit for bit."""
    for x in hard_rows(rng):
        q, s = lincore._core._quantize_rows(x, active=True)
        rq, rs = ref_quantize(x)
        np.testing.assert_array_equal(q, rq, err_msg=f"k={x.shape[1]}")
        np.testing.assert_array_equal(s, rs, err_msg=f"k={x.shape[1]}")


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_layer_matches_quantized_reference(isa8, m, k, n, rng):
    lin, layer = make_layer(rng, k, n)
    np.testing.assert_array_equal(
        layer.int8_weight(), ref_quantize(np.asarray(lin.weight.detach()))[0]
    )
    x = rng.standard_normal((m, k)).astype(np.float32)
    y = layer(lincore.tensor(x))
    assert y.shape == (m, n) and y.dtype == lincore.float32
    ref, g = quantized_reference(x, layer)
    assert_quantized_close(y, ref, g)


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "sigmoid", "tanh", "gelu"])
def test_fused_activation(isa8, act, rng):
    lin, layer = make_layer(rng, 37, 45)
    x = rng.standard_normal((11, 37)).astype(np.float32)
    y = np.asarray(lincore._core.qlinear(lincore.tensor(x), layer._packed, ACT_CODES[act], 0.1))
    ref, g = quantized_reference(x, layer)
    f = {
        "relu": lambda v: np.maximum(v, 0),
        "leaky_relu": lambda v: np.where(v < 0, 0.1 * v, v),
        "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
        "tanh": np.tanh,
        "gelu": lambda v: 0.5 * v * (1 + np.vectorize(__import__("math").erf)(v / np.sqrt(2))),
    }[act]
    # Derivatives at most 1.13 (GELU); the float activation's own rounding a few u of |ref|.
    assert_quantized_close(y, f(ref), 1.13 * g, extra=8 * U * (np.abs(f(ref)) + 1e-30) + 8 * U * g)


def test_every_level_is_bitwise_the_same(rng):
    levels = lincore.supported_cpu_capabilities("int8")
    for m, k, n in ((1, 4096, 300), (8, 1000, 257), (50, 333, 129), (130, 64, 70)):
        _, layer = make_layer(rng, k, n)
        x = lincore.tensor(rng.standard_normal((m, k)).astype(np.float32))
        outs = []
        try:
            for level in levels:
                lincore._core._set_int8_capability(level)
                for threads in (1, 2):
                    with num_threads(threads):
                        outs.append(np.asarray(layer(x)))
        finally:
            lincore._core._set_int8_capability("")
        for o in outs[1:]:
            np.testing.assert_array_equal(o, outs[0])


def test_a_row_does_not_depend_on_its_batch(isa8, rng):
    _, layer = make_layer(rng, 200, 90)
    x = rng.standard_normal((40, 200)).astype(np.float32)
    full = np.asarray(layer(lincore.tensor(x)))
    for i in (0, 7, 39):
        np.testing.assert_array_equal(
            np.asarray(layer(lincore.tensor(x[i : i + 1]))), full[i : i + 1]
        )


def test_accuracy_bound_against_float(isa8, rng):
    """docs/quantization.md: |y_int8 - y| <= sum_p (|x_p| sw/2 + |w_p| sx/2 + sx sw/4)(1 + 256u)
    + 3.01 u G, with y the exact float result and G as in the reference test."""
    for k, n, m in ((64, 10, 30), (784, 256, 17), (1024, 1024, 4)):
        lin, layer = make_layer(rng, k, n)
        x = rng.standard_normal((m, k)).astype(np.float32)
        x[:, ::3] = np.abs(x[:, ::3]) * 4  # uneven magnitudes
        y = np.asarray(layer(lincore.tensor(x)), np.float64)
        w = np.asarray(lin.weight.detach(), np.float64)
        b = np.asarray(lin.bias.detach(), np.float64)
        exact = x.astype(np.float64) @ w.T + b
        _, sx = ref_quantize(x)
        sw = layer.scales().astype(np.float64)
        sx = sx.astype(np.float64)[:, None]
        bound = (
            (np.abs(x).sum(1)[:, None] * sw[None, :] / 2)
            + (sx * np.abs(w).sum(1)[None, :] / 2)
            + k * sx * sw[None, :] / 4
        ) * (1 + 256 * U)
        _, g = quantized_reference(x, layer)
        err = np.abs(y - exact)
        assert (err <= bound + 3.01 * U * g + 1e-30).all()
        # And the bound is not vacuous: the typical error is well inside it.
        assert np.median(err / bound) < 0.2


def test_nonfinite_input_row_gives_nan_row_only(isa8, rng):
    _, layer = make_layer(rng, 20, 9)
    x = rng.standard_normal((4, 20)).astype(np.float32)
    x[1, 3] = np.nan
    x[2, 0] = np.inf
    x[3] = 0
    y = np.asarray(layer(lincore.tensor(x)))
    assert np.isnan(y[1]).all() and np.isnan(y[2]).all()
    assert np.isfinite(y[0]).all()
    np.testing.assert_array_equal(y[3], layer.bias())  # a zero row: exactly the bias


def test_sequential_runs_natively_and_matches_layer_by_layer(isa8, rng):
    model = nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.GELU(), nn.Linear(64, 10)
    )
    q = lincore.quantize_dynamic(model)
    assert [type(m).__name__ for m in q] == [
        "DynamicQuantizedLinear",
        "ReLU",
        "DynamicQuantizedLinear",
        "GELU",
        "DynamicQuantizedLinear",
    ]
    for m, threads in ((1, 1), (5, 2), (300, 2), (301, 1)):
        x = lincore.tensor(rng.standard_normal((m, 64)).astype(np.float32))
        with num_threads(threads):
            y = q(x)
            assert isinstance(q._plan.only, lincore._core.SequentialPlan)
            manual = q[4](q[3](q[2](q[1](q[0](x)))))
        np.testing.assert_array_equal(np.asarray(y), np.asarray(manual))
    # Mixed with float layers, and 3-D input.
    mixed = nn.Sequential(
        nn.Linear(6, 8), nn.ReLU(), nn.DynamicQuantizedLinear.from_float(nn.Linear(8, 3))
    )
    x3 = lincore.randn(2, 5, 6)
    with lincore.no_grad():
        ref = mixed[2](mixed[1](mixed[0](x3)))
    np.testing.assert_array_equal(np.asarray(mixed(x3)), np.asarray(ref))


def test_backward_through_a_quantized_layer_is_refused():
    q = lincore.quantize_dynamic(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)))
    x = lincore.randn(5, 4, requires_grad=True)
    with pytest.raises(NotImplementedError, match="quantized Linear"):
        q(x).sum().backward()
    alone = lincore.quantize_dynamic(nn.Linear(4, 3))
    with pytest.raises(NotImplementedError, match="autograd"):
        alone(x)
    with lincore.no_grad():
        assert alone(x).shape == (5, 3)
    # A float head on a quantized body trains: no gradient is wanted through the int8 layer.
    head = nn.Sequential(lincore.quantize_dynamic(nn.Linear(4, 3)), nn.ReLU(), nn.Linear(3, 2))
    head(lincore.randn(5, 4)).sum().backward()
    assert head[2].weight.grad is not None


def test_quantize_dynamic_copies_unless_inplace_and_selects():
    model = nn.Sequential(
        nn.Linear(4, 5), nn.ReLU(), nn.Sequential(nn.Linear(5, 6), nn.Linear(6, 2))
    )
    q = lincore.quantize_dynamic(model)
    assert type(model[0]) is nn.Linear and type(q[0]) is nn.DynamicQuantizedLinear
    assert type(q[2][1]) is nn.DynamicQuantizedLinear
    by_name = lincore.quantize_dynamic(model, {"2.0"})
    assert [type(m).__name__ for m in (by_name[0], by_name[2][0], by_name[2][1])] == [
        "Linear",
        "DynamicQuantizedLinear",
        "Linear",
    ]
    by_type = lincore.quantize_dynamic(model, {nn.Linear}, dtype="qint8")
    assert type(by_type[2][0]) is nn.DynamicQuantizedLinear
    same = lincore.quantize_dynamic(model, inplace=True)
    assert same is model and type(model[0]) is nn.DynamicQuantizedLinear
    assert list(same.parameters()) == []  # no fp32 copy of a quantized weight is kept


def test_memory_is_the_int8_bytes(rng):
    for k, n in ((256, 256), (784, 128), (4096, 4096)):
        _, layer = make_layer(rng, k, n)
        assert layer.nbytes <= 1.3 * n * k


def test_pickle_and_deepcopy_are_bitwise(rng):
    q = lincore.quantize_dynamic(
        nn.Sequential(nn.Linear(30, 20), nn.ReLU(), nn.Linear(20, 4, bias=False))
    )
    x = lincore.tensor(rng.standard_normal((6, 30)).astype(np.float32))
    for other in (pickle.loads(pickle.dumps(q)), copy.deepcopy(q)):
        np.testing.assert_array_equal(np.asarray(other(x)), np.asarray(q(x)))
        np.testing.assert_array_equal(other[0].int8_weight(), q[0].int8_weight())
        np.testing.assert_array_equal(other[0].scales(), q[0].scales())
        assert other[2].bias() is None


def test_from_int8_round_trip_and_hostile_values(rng):
    _, layer = make_layer(rng, 12, 7)
    again = nn.DynamicQuantizedLinear.from_int8(layer.int8_weight(), layer.scales(), layer.bias())
    x = lincore.randn(3, 12)
    np.testing.assert_array_equal(np.asarray(again(x)), np.asarray(layer(x)))
    codes, scales = layer.int8_weight(), layer.scales()
    bad_codes = codes.copy()
    bad_codes[0, 0] = -128
    with pytest.raises(ValueError, match=r"\[-127, 127\]"):
        nn.DynamicQuantizedLinear.from_int8(bad_codes, scales)
    with pytest.raises(TypeError, match="int8 codes"):
        nn.DynamicQuantizedLinear.from_int8(codes.astype(np.int16), scales)
    with pytest.raises(ValueError, match="scales"):
        nn.DynamicQuantizedLinear.from_int8(codes, scales[:-1])
    nan_scales = scales.copy()
    nan_scales[2] = np.nan
    with pytest.raises(ValueError, match="scale 2"):
        nn.DynamicQuantizedLinear.from_int8(codes, nan_scales)
    with pytest.raises(ValueError, match="bias"):
        nn.DynamicQuantizedLinear.from_int8(codes, scales, np.zeros(3, np.float32))


def test_bad_models():
    with pytest.warns(UserWarning, match="nothing|no lincore.nn.Linear"):
        out = lincore.quantize_dynamic(nn.Sequential(nn.ReLU()))
    assert type(out[0]) is nn.ReLU
    with pytest.raises(ValueError, match="unsupported dtype"):
        lincore.quantize_dynamic(nn.Linear(2, 2), dtype="float16")
    with pytest.raises(TypeError, match="float32 weights, but got float64"):
        lincore.quantize_dynamic(nn.Linear(2, 2, dtype=lincore.float64))
    with pytest.raises(TypeError, match="lincore.nn.Module"):
        lincore.quantize_dynamic(object())
    for bad in (np.nan, np.inf, -np.inf):
        model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        with lincore.no_grad():
            model[2].weight[1, 1] = bad
        with pytest.raises(ValueError, match="NaN or infinite.*layer '2'"):
            lincore.quantize_dynamic(model, inplace=True)
        assert type(model[0]) is nn.Linear  # nothing replaced
    model = nn.Linear(3, 2)
    with lincore.no_grad():
        model.bias[0] = np.nan
    with pytest.raises(ValueError, match="bias"):
        lincore.quantize_dynamic(model)
    too_wide = lincore._core.QMAX_IN_FEATURES + 1
    with pytest.raises(ValueError, match="at most"):
        lincore.quantize_dynamic(nn.Linear(too_wide, 1))


def test_zero_size_layers_and_inputs(isa8):
    empty_in = lincore.quantize_dynamic(nn.Linear(0, 4))
    y = np.asarray(empty_in(lincore.zeros(3, 0)))
    np.testing.assert_array_equal(y, np.broadcast_to(empty_in.bias(), (3, 4)))
    empty_out = lincore.quantize_dynamic(nn.Linear(5, 0))
    assert empty_out(lincore.randn(3, 5)).shape == (3, 0)
    layer = lincore.quantize_dynamic(nn.Linear(5, 2))
    assert layer(lincore.zeros(0, 5)).shape == (0, 2)
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        layer(lincore.randn(3, 4))
    with pytest.raises(RuntimeError, match="float32"):
        layer(lincore.randn(3, 5, dtype=lincore.float64))


def test_levels_follow_lincore_isa():
    """LINCORE_ISA forces the int8 level down with the fp32 one; LINCORE_INT8_ISA forces it
    alone."""
    levels = lincore.supported_cpu_capabilities("int8")
    fp32 = lincore.supported_cpu_capabilities()
    code = "import lincore; print(lincore.cpu_capability(), lincore.cpu_capability('int8'))"

    # The forcing variables come from each call alone (not from a run of the suite that forces
    # a level itself, e.g. LINCORE_INT8_ISA=avx2 pytest).
    base = {k: v for k, v in os.environ.items() if k not in ("LINCORE_ISA", "LINCORE_INT8_ISA")}

    def run(**env):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**base, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.split()

    assert run(LINCORE_ISA="scalar") == ["scalar", "scalar"]
    if "sse2" in fp32:
        assert run(LINCORE_ISA="sse2") == ["sse2", "scalar"]
    if "avx2" in fp32:
        best_avx2 = [lv for lv in levels if lv in ("avx_vnni", "avx2")][0]
        assert run(LINCORE_ISA="avx2") == ["avx2", best_avx2]
    for level in levels:
        assert run(LINCORE_INT8_ISA=level)[1] == level
    with pytest.raises(ValueError, match="kind"):
        lincore.cpu_capability("int4")
    with pytest.raises(ValueError, match="unknown int8 capability"):
        lincore._core._set_int8_capability("avx9")


def test_digits_mlp_accuracy_within_half_a_point(digits_mlp):
    model, xt, y_test = digits_mlp
    with lincore.no_grad():
        acc32 = (np.asarray(model(xt).argmax(dim=1)) == y_test).mean()
    q = lincore.quantize_dynamic(model)
    acc8 = (np.asarray(q(xt).argmax(dim=1)) == y_test).mean()
    assert acc32 > 0.9
    assert abs(acc8 - acc32) <= 0.005


def test_save_and_load_are_bitwise_with_documented_keys(tmp_path, rng):
    def build():
        return lincore.quantize_dynamic(
            nn.Sequential(nn.Linear(12, 9), nn.ReLU(), nn.Linear(9, 4, bias=False))
        )

    q = build()
    path = tmp_path / "q.safetensors"
    lincore.save(q, path)
    loaded = lincore.load(path)
    assert list(loaded) == [
        "0.weight_int8",
        "0.weight_scale",
        "0.bias",
        "2.weight_int8",
        "2.weight_scale",
    ]
    assert loaded["0.weight_int8"].dtype == np.int8  # I8 in the file, numpy on loading
    safetensors_numpy = pytest.importorskip("safetensors.numpy", reason="the file's own reader")
    raw = safetensors_numpy.load_file(str(path))
    assert raw["0.weight_int8"].dtype == np.int8 and raw["0.weight_scale"].dtype == np.float32
    other = build()
    other.load_state_dict(loaded)
    x = lincore.tensor(rng.standard_normal((5, 12)).astype(np.float32))
    np.testing.assert_array_equal(np.asarray(other(x)), np.asarray(q(x)))
    np.testing.assert_array_equal(other[0].int8_weight(), q[0].int8_weight())


def test_mismatched_or_hostile_state_is_refused_and_changes_nothing(rng):
    q = lincore.quantize_dynamic(nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)))
    state = q.state_dict()
    before = q[0].int8_weight()
    cases = {
        "size mismatch": {**state, "0.weight_int8": np.zeros((5, 7), np.int8)},
        r"\[-127, 127\]": {**state, "0.weight_int8": np.full((5, 6), -128, np.int8)},
        "dtype int8": {**state, "0.weight_int8": np.zeros((5, 6), np.int16)},
        "not a finite": {**state, "2.weight_scale": np.full(3, np.inf, np.float32)},
        "Missing key": {k: v for k, v in state.items() if k != "2.bias"},
    }
    for message, bad in cases.items():
        with pytest.raises(RuntimeError, match=message):
            q.load_state_dict(bad)
        np.testing.assert_array_equal(q[0].int8_weight(), before)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).load_state_dict(state)


def test_from_torch_converts_torch_dynamic_quantized_linear(rng):
    torch = pytest.importorskip("torch", reason="converts a PyTorch model")
    from torch.ao.quantization import per_channel_dynamic_qconfig
    from torch.ao.quantization import quantize_dynamic as torch_quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own deprecation notices
        model = torch.nn.Sequential(
            torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)
        )
        tq = torch_quantize_dynamic(
            model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
        )
    lq = lincore.from_torch(tq)
    assert [type(m).__name__ for m in lq] == [
        "DynamicQuantizedLinear",
        "ReLU",
        "DynamicQuantizedLinear",
    ]
    # Requantized from torch's dequantized weight: each weight within half a step of it.
    dq = tq[0].weight().dequantize().numpy()
    np.testing.assert_allclose(
        lq[0].dequantized_weight(), dq, atol=float(lq[0].scales().max()) / 2 * 1.001
    )
    x = rng.standard_normal((6, 20)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    y = np.asarray(lq(lincore.tensor(x)))
    assert np.abs(y - ref).max() <= 0.05 * np.abs(ref).max()


def test_to_torch_gives_torchs_dynamic_quantized_linear_with_the_same_codes(rng):
    torch = pytest.importorskip("torch", reason="converts to a PyTorch model")
    # A fixed model: the 2 % agreement below is int8 error, not a bound; over unseeded models it
    # was exceeded about once in seven (worst 3.5 %), where this one sits at 1.1 %.
    lincore.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 4, bias=False))
    with lincore.no_grad():
        model[0].weight[3] = 0.0  # a zero row: scale 0
    q = lincore.quantize_dynamic(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own deprecation notices
        tq = q.to_torch()
        assert type(tq[0]).__module__.startswith("torch.ao.nn.quantized.dynamic")
        w = tq[0].weight()
        assert w.qscheme() == torch.per_channel_affine and w.dtype == torch.qint8
        np.testing.assert_array_equal(w.int_repr().numpy(), q[0].int8_weight())
        scales = q[0].scales()
        np.testing.assert_array_equal(
            w.q_per_channel_scales().numpy()[scales != 0], scales[scales != 0]
        )
        assert tq[2].bias() is None
        np.testing.assert_array_equal(tq[0].bias().detach().numpy(), q[0].bias())
        x = rng.standard_normal((5, 20)).astype(np.float32)
        with torch.no_grad():
            got = tq(torch.from_numpy(x)).numpy()
        back = lincore.from_torch(tq)
    want = np.asarray(q(lincore.tensor(x)))
    # torch quantizes x per tensor (lincore per row): the two agree within int8 error.
    assert np.abs(got - want).max() <= 0.02 * np.abs(want).max()
    np.testing.assert_array_equal(back[0].int8_weight(), q[0].int8_weight())
    np.testing.assert_array_equal(back[2].int8_weight(), q[2].int8_weight())
