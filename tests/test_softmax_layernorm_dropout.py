"""nn.Softmax, LogSoftmax, LayerNorm and Dropout (and their functional forms): against float64
numpy references under the tolerance rule (conftest.assert_within_bound, docs/testing.md), their
gradients, inside compiled Sequential runs (bitwise equal to the layers one by one), train/eval
switching, seeded dropout, errors in PyTorch's words, pickling and PyTorch parity."""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest

import lincore
import lincore.nn as nn
import lincore.nn.functional as F
from conftest import EDGE_SIZES, assert_within_bound, num_threads

DTYPES = [lincore.float32, lincore.float64]
DTYPE_IDS = ["f32", "f64"]
# Lengths of the reduced dim: every edge size the kernels' blockings give, and a long one.
LENGTHS = sorted(set(EDGE_SIZES) | {1000})
# Shapes with the dims a softmax may run along: scalar, vector, batch, 3-D and 5-D.
SHAPES = [(), (0,), (1,), (7,), (0, 5), (5, 0), (3, 4), (2, 3, 5), (2, 1, 3, 2, 4)]


def arr(t) -> np.ndarray:
    return np.asarray(t.detach() if isinstance(t, lincore.Tensor) else t)


def as_np(dtype) -> type:
    return np.float32 if dtype is lincore.float32 else np.float64


# --- float64 references and their error bounds --------------------------------------------------
# Each bound is gamma(n) * G from a rounding analysis of the obvious algorithm in the tensor's
# dtype (lincore computes in double and rounds once, well within it). Softmax along a line of C:
# d = x - max (one rounding, relative error u |d| on e^d), the exp, a sum of C, a division:
# relative error (2C + 4 + |d|) u. log_softmax: d - log(sum), absolute error (|d| + |lse| + 1) u
# per rounding.


@np.errstate(all="ignore")  # empty lines, and log(0) where exp underflows
def softmax_ref(x, dim, log=False):
    x = np.asarray(x, np.float64)
    d = x - np.max(x, axis=dim, keepdims=True, initial=-np.inf)
    s = np.sum(np.exp(d), axis=dim, keepdims=True)
    return (d - np.log(s)) if log else np.exp(d) / s, d, np.log(s)


def assert_softmax_close(y, x, dim, log=False):
    x64 = np.asarray(x, np.float64)
    ref, d, lse = softmax_ref(x64, dim, log)
    c = x64.shape[dim] if x64.ndim else 1
    g = (np.abs(d) + np.abs(lse) + 1) if log else np.abs(ref) * (1 + np.abs(d))
    assert_within_bound(y, ref, g, 2 * c + 4)


@np.errstate(all="ignore")  # the mean of no elements
def layer_norm_ref(x, nd, w=None, b=None, eps=1e-5):
    x = np.asarray(x, np.float64)
    axes = tuple(range(x.ndim - nd, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    sigma = np.sqrt(var + eps)
    z = (x - mean) / sigma
    y = z * (1 if w is None else np.asarray(w, np.float64))
    y = y + (0 if b is None else np.asarray(b, np.float64))
    # The conditioning: the mean of |x| against sigma (a large offset cancels in x - mean).
    a = np.abs(x).mean(axis=axes, keepdims=True) / sigma
    return y, z, sigma, a


def assert_layer_norm_close(y, x, nd, w=None, b=None, eps=1e-5):
    assert np.shape(y) == np.shape(x)
    if np.size(x) == 0:
        return
    ref, z, _, a = layer_norm_ref(x, nd, w, b, eps)
    n = int(np.prod(np.shape(x)[np.ndim(x) - nd :]))
    wa = 1 if w is None else np.abs(np.asarray(w, np.float64))
    ba = 0 if b is None else np.abs(np.asarray(b, np.float64))
    # The mean (n terms), x - mean, the variance (n terms), sqrt, division, scale and shift:
    # errors relative to |w| (1 + |z|) (1 + A), and the final rounding relative to |b|.
    assert_within_bound(y, ref, wa * (1 + np.abs(z)) * (1 + a) + ba, 2 * n + 8)


def rand(rng, shape, dtype, scale=3.0):
    return lincore.tensor((rng.standard_normal(shape) * scale).astype(as_np(dtype)))


# --- softmax / log_softmax forward ----------------------------------------------------------------


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_softmax_every_dim(rng, shape, dtype, log):
    x = rand(rng, shape, dtype)
    for dim in range(-max(len(shape), 1), max(len(shape), 1)):
        y = (F.log_softmax if log else F.softmax)(x, dim)
        assert y.shape == x.shape and y.dtype is dtype
        assert_softmax_close(arr(y), arr(x), dim if len(shape) else None, log)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("c", LENGTHS)
def test_softmax_line_lengths(rng, c, dtype, log):
    x = rand(rng, (3, c, 2), dtype, scale=30.0)  # wide range: exp underflows for some
    for dim in (1, -1, 0):
        y = (F.log_softmax if log else F.softmax)(x, dim)
        assert_softmax_close(arr(y), arr(x), dim, log)


def test_softmax_is_stable_and_propagates_nan():
    x = lincore.tensor([[1000.0, 1000.0, -1000.0], [1.0, float("nan"), 2.0]])
    y = arr(F.softmax(x, 1))
    assert np.allclose(y[0], [0.5, 0.5, 0.0]) and np.isnan(y[1]).all()
    ly = arr(F.log_softmax(x, 1))
    assert ly[0, 0] == pytest.approx(-np.log(2)) and np.isnan(ly[1]).all()


def test_softmax_strided_input_equals_contiguous(rng):
    base = rand(rng, (6, 8), lincore.float64)
    x = base.transpose(0, 1)[::2]
    assert np.array_equal(arr(F.softmax(x, 1)), arr(F.softmax(x.contiguous(), 1)))


def test_softmax_threads_bitwise_equal(rng):
    x = rand(rng, (300, 257), lincore.float32)
    with num_threads(1):
        one = arr(F.softmax(x, 0))
    with num_threads(2):
        assert np.array_equal(arr(F.softmax(x, 0)), one)


def test_softmax_dtype_argument():
    x = lincore.tensor([[1.0, 2.0]])
    assert F.softmax(x, 1, dtype=lincore.float64).dtype is lincore.float64


@pytest.mark.parametrize("ndim,expected", [(0, 0), (1, 0), (2, 1), (3, 0), (4, 1)])
def test_implicit_dim_is_pytorchs_legacy_choice_with_its_warning(rng, ndim, expected):
    x = rand(rng, (2,) * ndim, lincore.float64)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax") as w:
        y = nn.Softmax()(x)
    assert w[0].filename == __file__  # points at the caller, past forward and __call__
    assert np.array_equal(arr(y), arr(F.softmax(x, expected)))
    with pytest.warns(UserWarning, match="Implicit dimension choice for log_softmax") as w:
        F.log_softmax(x)
    assert w[0].filename == __file__


# --- LayerNorm forward ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("n", LENGTHS)
def test_layer_norm_lengths(rng, n, dtype):
    ln = nn.LayerNorm(n, dtype=dtype)
    with lincore.no_grad():
        ln.weight.copy_(rng.standard_normal(n))
        ln.bias.copy_(rng.standard_normal(n))
    for lead in [(), (0,), (1,), (5,), (2, 3)]:
        x = rand(rng, lead + (n,), dtype)
        y = ln(x)
        assert y.shape == x.shape and y.dtype is dtype
        assert_layer_norm_close(arr(y), arr(x), 1, arr(ln.weight), arr(ln.bias))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_layer_norm_several_dims_no_affine_and_offsets(rng, dtype):
    x = rand(rng, (4, 3, 5), dtype)
    assert_layer_norm_close(arr(F.layer_norm(x, (3, 5))), arr(x), 2)
    ln = nn.LayerNorm([3, 5], eps=1e-3, elementwise_affine=False)
    assert ln.weight is None and ln.bias is None and list(ln.state_dict()) == []
    assert_layer_norm_close(arr(ln(x)), arr(x), 2, eps=1e-3)
    # A large common offset: ill-conditioned, and the bound widens with mean |x| / sigma.
    shifted = lincore.tensor(arr(x) + as_np(dtype)(1000))
    assert_layer_norm_close(arr(F.layer_norm(shifted, (5,))), arr(shifted), 1)
    # A constant row: var 0, output the bias.
    const = lincore.full((2, 4), 7.0, dtype=dtype)
    assert np.array_equal(arr(F.layer_norm(const, (4,))), np.zeros((2, 4)))


def test_layer_norm_defaults_and_state_dict():
    ln = nn.LayerNorm(4)
    assert ln.normalized_shape == (4,) and ln.eps == 1e-5 and ln.elementwise_affine
    assert isinstance(ln.weight, nn.Parameter) and isinstance(ln.bias, nn.Parameter)
    assert arr(ln.weight).tolist() == [1.0] * 4 and arr(ln.bias).tolist() == [0.0] * 4
    assert list(ln.state_dict()) == ["weight", "bias"]
    assert list(nn.LayerNorm(4, bias=False).state_dict()) == ["weight"]
    assert nn.LayerNorm(3, dtype=lincore.float64).weight.dtype is lincore.float64


# --- Dropout ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_dropout_train_scales_kept_and_zeroes_dropped(rng, p, dtype):
    x = rand(rng, (40, 50), dtype)
    d = nn.Dropout(p)
    lincore.manual_seed(3)
    y = arr(d(x))
    xs = arr(x)
    kept = y != 0
    scale = as_np(dtype)(1.0 / (1.0 - p)) if p < 1 else 0
    assert np.array_equal(y[kept], xs[kept] * scale)
    if p == 0:
        assert kept.all()
    elif p == 1:
        assert not kept.any()
    else:
        assert abs(1 - kept.mean() - p) < 0.05  # 2000 draws
    d.eval()
    assert d(x) is x


def test_dropout_seeded_reproducible_and_advances_the_generator(rng):
    x = rand(rng, (8, 9), lincore.float32)
    lincore.manual_seed(11)
    a, b = arr(F.dropout(x, 0.5)), arr(F.dropout(x, 0.5))
    lincore.manual_seed(11)
    assert np.array_equal(arr(F.dropout(x, 0.5)), a)
    assert np.array_equal(arr(F.dropout(x, 0.5)), b)
    assert not np.array_equal(a, b)


def test_dropout_identity_cases_return_the_input():
    x = lincore.randn(3, 4)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    ints = lincore.tensor([[1, 2]])
    assert F.dropout(ints, 0.5, training=False) is ints


def test_dropout_inplace():
    x = lincore.ones(4, 5)
    lincore.manual_seed(0)
    y = F.dropout(x, 0.5, inplace=True)
    assert y is x and set(np.unique(arr(x))) <= {0.0, 2.0}
    leaf = lincore.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        F.dropout(leaf, 0.5, inplace=True)


def test_train_eval_switching_recompiles_dropout_in_a_run(rng):
    model = nn.Sequential(nn.Linear(6, 30), nn.Dropout(0.5), nn.Linear(30, 4))
    x = rand(rng, (5, 6), lincore.float32)
    with lincore.no_grad():
        lincore.manual_seed(1)
        a = arr(model(x))
        lincore.manual_seed(2)
        assert not np.array_equal(arr(model(x)), a)  # train: a new mask per call
        model.eval()
        e = arr(model(x))
        assert np.array_equal(arr(model(x)), e)
        assert np.array_equal(e, arr(model[2](model[0](x))))  # eval: identity
        model.train()
        lincore.manual_seed(1)
        assert np.array_equal(arr(model(x)), a)
        model[1].p = 0.0  # attribute changes recompile too
        assert np.array_equal(arr(model(x)), e)


# --- gradients ----------------------------------------------------------------------------------


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape,dim", [((5, 7), 1), ((5, 7), 0), ((2, 3, 4), 1), ((4,), 0)])
def test_softmax_gradient(rng, shape, dim, dtype, log):
    x = rand(rng, shape, dtype).requires_grad_()
    g = rng.standard_normal(shape)
    y = (F.log_softmax if log else F.softmax)(x, dim)
    assert type(y.grad_fn).__name__ == ("LogSoftmaxBackward0" if log else "SoftmaxBackward0")
    y.backward(lincore.tensor(g.astype(as_np(dtype))))
    g = np.asarray(g.astype(as_np(dtype)), np.float64)
    ref_y, d, lse = softmax_ref(arr(x), dim, log)
    c = shape[dim]
    dmax = np.max(np.abs(d), axis=dim, keepdims=True)
    if log:
        p = np.exp(ref_y)
        ref = g - p * g.sum(axis=dim, keepdims=True)
        bound = np.abs(g) + p * np.abs(g).sum(axis=dim, keepdims=True) * (1 + dmax + np.abs(lse))
    else:
        dot = (g * ref_y).sum(axis=dim, keepdims=True)
        ref = ref_y * (g - dot)
        bound = ref_y * (np.abs(g) + (np.abs(g) * ref_y).sum(axis=dim, keepdims=True))
        bound = bound * (2 + dmax)
    # The forward's error in y, then a sum of C and three roundings.
    assert_within_bound(arr(x.grad), ref, bound, 3 * c + 8)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("affine,bias", [(True, True), (True, False), (False, False)])
@pytest.mark.parametrize("lead,ns", [((6,), (9,)), ((2, 3), (4, 5)), ((0,), (3,)), ((3,), (1,))])
def test_layer_norm_gradient(rng, lead, ns, affine, bias, dtype):
    ln = nn.LayerNorm(ns, elementwise_affine=affine, bias=bias, dtype=dtype)
    if affine:
        with lincore.no_grad():
            ln.weight.copy_(rng.standard_normal(ns))
    x = rand(rng, lead + ns, dtype).requires_grad_()
    y = ln(x)
    assert type(y.grad_fn).__name__ == "NativeLayerNormBackward0"
    g = rng.standard_normal(lead + ns).astype(as_np(dtype))
    y.backward(lincore.tensor(g))
    g = g.astype(np.float64)
    nd, n = len(ns), int(np.prod(ns))
    rows = int(np.prod(lead))
    axes = tuple(range(len(lead), len(lead) + nd))
    _, z, sigma, a = layer_norm_ref(arr(x), nd)
    w = arr(ln.weight).astype(np.float64) if affine else np.ones(ns)
    da = g * w
    ma = da.mean(axis=axes, keepdims=True)
    maz = (da * z).mean(axis=axes, keepdims=True)
    ref = (da - ma - z * maz) / sigma
    cond = (1 + a) * (1 + np.abs(z))
    bound = (
        (
            (np.abs(da) + np.abs(da).mean(axis=axes, keepdims=True))
            + np.abs(z) * np.abs(da * z).mean(axis=axes, keepdims=True)
        )
        * cond
        / sigma
    )
    assert_within_bound(arr(x.grad), ref, bound, 4 * n + 16)
    lead_axes = tuple(range(len(lead)))
    if affine:
        assert_within_bound(
            arr(ln.weight.grad),
            (g * z).sum(axis=lead_axes),
            (np.abs(g) * cond).sum(axis=lead_axes),
            rows + 2 * n + 8,
        )
    if bias:
        ref_db = g.sum(axis=lead_axes)
        assert_within_bound(arr(ln.bias.grad), ref_db, np.abs(g).sum(axis=lead_axes), rows + 1)
    elif affine:
        assert ln.bias is None


def test_dropout_gradient_is_the_mask(rng):
    x = rand(rng, (6, 7), lincore.float64).requires_grad_()
    lincore.manual_seed(5)
    y = F.dropout(x, 0.25)
    assert type(y.grad_fn).__name__ == "MulBackward0"
    y.sum().backward()
    mask = arr(y) / arr(x)
    assert np.array_equal(arr(x.grad), mask)
    assert set(np.unique(mask)) <= {0.0, 1 / 0.75}


# --- in Sequential runs ---------------------------------------------------------------------------

RUNS = {
    "classifier": lambda: [nn.Linear(7, 16), nn.ReLU(), nn.Linear(16, 5), nn.LogSoftmax(dim=1)],
    "ln-dropout": lambda: [
        nn.Linear(7, 12),
        nn.LayerNorm(12),
        nn.GELU(),
        nn.Dropout(0.3),
        nn.Linear(12, 6),
        nn.Softmax(dim=-1),
    ],
    "ln-first-no-bias": lambda: [
        nn.LayerNorm(7, bias=False),
        nn.Linear(7, 9, bias=False),
        nn.LayerNorm(9, elementwise_affine=False),
        nn.Tanh(),
        nn.Linear(9, 3),
        nn.LayerNorm(3),
    ],
    "softmax-dim0": lambda: [nn.Linear(7, 4), nn.Softmax(0), nn.Dropout(0.5), nn.Linear(4, 2)],
}


def one_by_one(layers, x):
    for layer in layers:
        x = layer(x)
    return x


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("rows", [0, 1, 5, 100])
@pytest.mark.parametrize("run", RUNS)
def test_sequential_run_equals_layers_one_by_one(rng, run, rows, dtype):
    lincore.manual_seed(rows)
    model = nn.Sequential(*RUNS[run]()).to(dtype)
    # LayerNorm weights off their defaults, so that their gradients are non-trivial.
    with lincore.no_grad():
        for m in model:
            if isinstance(m, nn.LayerNorm) and m.weight is not None:
                m.weight.copy_(rng.standard_normal(m.weight.shape))
    assert model._current_plan().only is not None  # one compiled run
    x_np = rng.standard_normal((rows, 7)).astype(as_np(dtype))
    for mode in ("train", "eval"):
        getattr(model, mode)()
        results = []
        for how in ("run", "layers"):
            model.zero_grad()
            x = lincore.tensor(x_np, requires_grad=True)
            lincore.manual_seed(42)
            y = model(x) if how == "run" else one_by_one(list(model), x)
            # A gradient that differs per output (a softmax's sum has none).
            g = np.cos(np.arange(y.numel())).reshape(y.shape).astype(as_np(dtype))
            y.backward(lincore.tensor(g))
            grads = [arr(p.grad) if p.grad is not None else None for p in model.parameters()]
            results.append((arr(y), type(y.grad_fn).__name__, arr(x.grad), grads))
        (y1, n1, dx1, g1), (y2, n2, dx2, g2) = results
        assert np.array_equal(y1, y2), mode
        assert n1 == n2, mode
        assert np.array_equal(dx1, dx2), mode
        for a, b in zip(g1, g2):
            assert (a is None and b is None) or np.array_equal(a, b), mode
        with lincore.no_grad():
            lincore.manual_seed(42)
            assert np.array_equal(arr(model(x_np)), y1), mode


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("rows", [1, 13, 47, 97, 200, 1000])
def test_whole_stack_path_with_row_steps_bitwise_equal_to_layers(isa, rng, rows, dtype):
    """Softmax along the last dim and LayerNorm over it run inside the row-block path
    (csrc/nn/sequential.cpp, run_rows): bitwise the layers' own result, at 1 and 2 threads."""
    model = nn.Sequential(
        nn.Linear(33, 40),
        nn.LayerNorm(40),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(40, 9),
        nn.LogSoftmax(dim=-1),
        nn.Softmax(dim=1),
    ).to(dtype)
    with lincore.no_grad():
        model[1].weight.copy_(rng.standard_normal(40))
        model[1].bias.copy_(rng.standard_normal(40))
    model.eval()
    x = rand(rng, (rows, 33), dtype)
    with lincore.no_grad():
        expected = arr(one_by_one(list(model), x))
        for threads in (1, 2):
            with num_threads(threads):
                assert np.array_equal(arr(model(x)), expected), threads


def test_softmax_without_dim_runs_as_a_python_module_in_a_sequential(rng):
    model = nn.Sequential(nn.Linear(3, 4), nn.Softmax(), nn.Linear(4, 2))
    x = rand(rng, (2, 3), lincore.float32)
    with pytest.warns(UserWarning, match="Implicit dimension"):
        y = model(x)
    assert len(model._current_plan().segments) == 3
    with pytest.warns(UserWarning):
        assert np.array_equal(arr(y), arr(one_by_one(list(model), x)))


def test_sequential_layer_norm_error_names_the_layer(rng):
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(5))
    with pytest.raises(RuntimeError, match=r"expected input with shape \[\*, 5\].*in layer 1"):
        model(rand(rng, (2, 3), lincore.float32))


# --- errors -------------------------------------------------------------------------------------


def test_errors_in_pytorchs_words():
    x = lincore.randn(2, 3)
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of "):
        F.softmax(x, 2)
    with pytest.raises(IndexError, match=r"range of \[-1, 0\], but got 1"):
        F.softmax(lincore.tensor(2.0), 1)
    with pytest.raises(NotImplementedError, match='"softmax_lastdim_kernel_impl" not implemented'):
        F.softmax(lincore.tensor([1, 2]), 0)
    with pytest.raises(NotImplementedError, match="log_softmax_lastdim_kernel_impl"):
        nn.LogSoftmax(0)(lincore.tensor([1, 2]))
    for p in (-0.1, 1.5):
        msg = f"dropout probability has to be between 0 and 1, but got {p}"
        with pytest.raises(ValueError, match=msg):
            nn.Dropout(p)
        with pytest.raises(ValueError, match=msg):
            F.dropout(x, p)
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired"):
        F.dropout(lincore.tensor([[1, 2]]), 0.5)
    with pytest.raises(
        RuntimeError,
        match=r"Given normalized_shape=\[4\], expected input with shape \[\*, 4\], but got "
        r"input of size\[2, 3\]",
    ):
        nn.LayerNorm(4)(x)
    with pytest.raises(RuntimeError, match=r"normalized_shape=\[2, 3\].*size\[3\]"):
        nn.LayerNorm([2, 3])(lincore.ones(3))
    with pytest.raises(RuntimeError, match=r"mixed dtype \(CPU\): all inputs must share"):
        nn.LayerNorm(3)(x.double())
    with pytest.raises(RuntimeError, match="Expected weight to be of same shape as normalized"):
        F.layer_norm(x, (3,), weight=lincore.ones(2))
    with pytest.raises(RuntimeError, match="Trying to create tensor with negative dimension -1"):
        nn.LayerNorm(-1)
    with pytest.raises(TypeError, match="dtype must be lincore.float32 or lincore.float64"):
        nn.LayerNorm(3, dtype=lincore.int64)
    before = arr(x).copy()
    with pytest.raises(RuntimeError):
        nn.LayerNorm(5)(x)
    assert np.array_equal(arr(x), before)


# --- repr, pickling, PyTorch --------------------------------------------------------------------


def test_reprs_are_pytorchs():
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)"
    assert repr(nn.Softmax()) == "Softmax(dim=None)"
    assert repr(nn.LogSoftmax(-1)) == "LogSoftmax(dim=-1)"
    assert repr(nn.Dropout()) == "Dropout(p=0.5, inplace=False)"
    assert repr(nn.Dropout(1, True)) == "Dropout(p=1, inplace=True)"
    # PyTorch 2.13 prints bias= too.
    assert repr(nn.LayerNorm(16)) == (
        "LayerNorm((16,), eps=1e-05, elementwise_affine=True, bias=True)"
    )
    assert repr(nn.LayerNorm([2, 3], eps=1e-3, elementwise_affine=False)) == (
        "LayerNorm((2, 3), eps=0.001, elementwise_affine=False, bias=False)"
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Softmax(1),
        lambda: nn.LogSoftmax(-1),
        lambda: nn.Softmax(),
        lambda: nn.Dropout(0.2),
        lambda: nn.LayerNorm((2, 4), eps=1e-3),
        lambda: nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Dropout(), nn.Softmax(1)),
    ],
    ids=["softmax", "logsoftmax", "softmax-none", "dropout", "layernorm", "sequential"],
)
def test_pickle_and_deepcopy(make):
    m = make()
    x = lincore.randn(3, 2, 4).reshape(6, 4) if not isinstance(m, nn.LayerNorm) else None
    x = lincore.randn(3, 2, 4) if x is None else x
    m.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = arr(m(x))
        for clone in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
            assert repr(clone) == repr(m) and clone.training == m.training
            assert np.array_equal(arr(clone(x)), expected)
            for (k1, v1), (k2, v2) in zip(m.state_dict().items(), clone.state_dict().items()):
                assert k1 == k2 and np.array_equal(arr(v1), arr(v2))


def _torch():
    return pytest.importorskip("torch", reason="the parity tests compare against PyTorch")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_forward_and_gradients_match_torch(rng, dtype):
    torch = _torch()
    tmodel = torch.nn.Sequential(
        torch.nn.Linear(6, 10),
        torch.nn.LayerNorm(10),
        torch.nn.Dropout(0.4),
        torch.nn.Linear(10, 4),
        torch.nn.LogSoftmax(dim=1),
    ).to(torch.float32 if dtype is lincore.float32 else torch.float64)
    with torch.no_grad():
        tmodel[1].weight.normal_()
        tmodel[1].bias.normal_()
    tmodel.eval()  # dropout masks come from different generators: compare in eval mode
    model = lincore.from_torch(tmodel)
    assert [type(m).__name__ for m in model] == [
        "Linear",
        "LayerNorm",
        "Dropout",
        "Linear",
        "LogSoftmax",
    ]
    assert not model.training and model[2].p == 0.4
    x_np = rng.standard_normal((8, 6)).astype(as_np(dtype))
    tx = torch.tensor(x_np, requires_grad=True)
    ty = tmodel(tx)
    ty.sum().backward()
    x = lincore.tensor(x_np, requires_grad=True)
    y = model(x)
    y.sum().backward()
    assert type(y.grad_fn).__name__ == type(ty.grad_fn).__name__
    # Two implementations of the same float computation: within a loose bound of the output's
    # scale (both are checked against float64 references above).
    for ours, theirs in [
        (y, ty),
        (x.grad, tx.grad),
        (model[1].weight.grad, tmodel[1].weight.grad),
        (model[1].bias.grad, tmodel[1].bias.grad),
        (model[0].weight.grad, tmodel[0].weight.grad),
    ]:
        t = theirs.detach().double().numpy()
        scale = np.abs(t) + np.abs(t).max()
        assert_within_bound(arr(ours), t, scale, 64)


def test_from_torch_and_to_torch_round_trip(rng):
    torch = _torch()
    ln = torch.nn.LayerNorm((3, 4), eps=1e-4, bias=False, dtype=torch.float64)
    with torch.no_grad():
        ln.weight.normal_()
    ln.weight.requires_grad_(False)
    tmodel = torch.nn.Sequential(
        torch.nn.Softmax(dim=0),
        torch.nn.LogSoftmax(dim=2),
        torch.nn.Dropout(0.1, inplace=True),
        ln,
        torch.nn.LayerNorm(4, elementwise_affine=False),
    )
    model = lincore.from_torch(tmodel)
    assert model[0].dim == 0 and model[1].dim == 2
    assert model[2].p == 0.1 and model[2].inplace
    assert model[3].normalized_shape == (3, 4) and model[3].eps == 1e-4 and model[3].bias is None
    assert model[3].weight.dtype is lincore.float64 and not model[3].weight.requires_grad
    assert np.array_equal(arr(model[3].weight), ln.weight.detach().numpy())
    assert model[4].weight is None
    back = model.to_torch()
    assert repr(back) == repr(tmodel)
    assert torch.equal(back[3].weight, ln.weight) and not back[3].weight.requires_grad
    assert back[3].weight.dtype == torch.float64
    tmodel.eval()
    model.eval()
    x = rng.standard_normal((2, 3, 4))
    expected = tmodel(torch.tensor(x)).numpy()
    got = arr(model(lincore.tensor(x)))
    assert_within_bound(got, expected, np.abs(expected) + 1, 64)
