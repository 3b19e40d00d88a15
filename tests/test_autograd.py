# lincore's autograd against PyTorch's: for every recorded op, the gradients (float64, with a
# derived bound), the node name (type(y.grad_fn).__name__) and the repr with its grad_fn suffix;
# the engine's semantics (accumulation, retain_graph, errors, grad modes, detach, in-place
# checks, zero_grad, dtypes, thread-local grad mode); and Linear / activation / Sequential
# backward, checked with THE tolerance rule of docs/testing.md (conftest.assert_linear_close)
# for a single Linear, and with that rule composed through the chain (ChainBound below) for stacks.
#
# Tolerances (u = unit roundoff of the dtype, gamma(n) = n u / (1 - n u)):
# * Elementwise ops and reductions, float64 against torch's float64: each gradient element is a
#   sum of n terms (n = how many output elements broadcasting folded onto it; 1 without
#   broadcasting), each term a product of at most 4 factors computed with at most 8 roundings
#   (libm's pow/log are within 1 ulp, so each counts as 2). In any order and in any correct
#   implementation the error is then at most gamma(n + 8) * M, where M is the same sum of the terms'
#   absolute values; two implementations (lincore, torch) each within that bound of the exact
#   value differ by at most 2 * gamma(n + 8) * M. M is computed with torch on operands expanded to
#   the output's shape (so each term's gradient is separate), summed in absolute value back.
# * Views, copies, indexing without repeats, neg, abs, dtype conversions, sum: no rounding at all
#   (each gradient element is one upstream element, or that element's sign times it): exact.
# * Losses: each input-gradient element is a short formula (at most 16 roundings, exp and log
#   included) of terms whose absolute values sum to M (loss_grad_magnitude): 2 gamma(16) M.
# * matmul: every gradient element is a dot product: assert_linear_close with the operands that
#   form it (see check_matmul_grads).
# * Linear: dX = dY W, dW = dY^T X, db = dY^T 1 are dot products of length out, m and m:
#   assert_linear_close(dX, dY, W^T), (dW, dY^T, X^T), (db, dY^T, 1), the float64 reference
#   computed from the same dY.
# * Stacks (Sequential, or the same layers called one by one): ChainBound propagates the rule
#   through the chain; see its docstring.
# The C++ backward tests (Linear, activations, Sequential) run under every kernel family the CPU
# supports (conftest's isa fixture).

import math
import operator
import threading
import warnings
import zlib

import numpy as np
import pytest

import lincore
import lincore.nn as lnn
import lincore.nn.functional as LF
from conftest import SMALLEST_SUBNORMAL, UNIT_ROUNDOFF, assert_linear_close

U64 = 2.0**-53
NP = {"f32": np.float32, "f64": np.float64}
LC = {"f32": lincore.float32, "f64": lincore.float64}


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def gamma(n, u):
    return n * u / (1 - n * u)


def lc_leaf(arr):
    return lincore.tensor(np.array(arr)).requires_grad_()


def t_leaf(torch, arr):
    return torch.tensor(np.array(arr), requires_grad=True)


def lc_repr(torch_repr):
    return torch_repr.replace("torch.", "lincore.")


def node_name(t):
    return type(t.grad_fn).__name__


def grad_of(t):
    g = t.grad
    assert g is not None
    return np.array(g.detach().numpy() if hasattr(g, "detach") else g)


def assert_within(got, ref, tol, what=""):
    got = np.asarray(got)
    ref = np.asarray(ref, np.float64)
    assert got.shape == ref.shape, (what, got.shape, ref.shape)
    err = np.abs(got.astype(np.float64) - ref)
    bad = ~(err <= tol)
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise AssertionError(
            f"{what}: {bad.sum()} of {bad.size} elements outside tolerance; "
            f"first at {i}: got {got[i]!r}, expected {ref[i]!r} "
            f"+- {np.broadcast_to(tol, ref.shape)[i]!r}"
        )


def assert_exact(got, ref, what=""):
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape, (what, got.shape, ref.shape)
    assert got.dtype == ref.dtype, (what, got.dtype, ref.dtype)
    np.testing.assert_array_equal(got, ref, err_msg=what)


# --- activations in float64, with what ChainBound needs about them -------------------------------

_erf = np.vectorize(math.erf, otypes=[np.float64])
_GELU_C = math.sqrt(2.0 / math.pi)


def _gelu(z):
    return 0.5 * z * (1.0 + _erf(z / math.sqrt(2.0)))


def _dgelu(z):
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return 0.5 * (1.0 + _erf(z / math.sqrt(2.0))) + z * pdf


def _gelu_tanh(z):
    return 0.5 * z * (1.0 + np.tanh(_GELU_C * (z + 0.044715 * z**3)))


def _dgelu_tanh(z):
    t = np.tanh(_GELU_C * (z + 0.044715 * z**3))
    return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * _GELU_C * (1.0 + 3 * 0.044715 * z * z)


def _dgelu_tanh_terms(z):
    """Sum of |terms| of _dgelu_tanh: 1 - t^2 loses all relative accuracy where |t| ~ 1, and is
    then multiplied by up to ~|z|^3."""
    t = np.tanh(_GELU_C * (z + 0.044715 * z**3))
    return 0.5 * (1.0 + np.abs(t)) + 0.5 * np.abs(z) * (1.0 + t * t) * _GELU_C * (
        1.0 + 3 * 0.044715 * z * z
    )


def _sigmoid(z):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


class Act:
    """An activation: the lincore and torch modules, its float64 value and derivative, lip =
    sup |f'|, and jump = the size of the derivative's jump at 0 (ReLU-like) or 0 (smooth, then
    sup |f''| <= 1 for every one here: sigmoid 0.1, tanh 0.77, gelu 0.8, gelu-tanh 0.8).
    dmag(z): the sum of the absolute values of the terms of f'(z) (default max(|f'|, 1)), the
    scale of its rounding error."""

    def __init__(self, lc, th, f, df, lip, jump=0.0, slope=None, dmag=None):
        self.lc, self.th, self.f, self.df = lc, th, f, df
        self.lip, self.jump, self.slope = lip, jump, slope
        self.dmag = dmag or (lambda z: np.maximum(np.abs(df(z)), 1.0))


def leaky(slope):
    return Act(
        lambda: lnn.LeakyReLU(slope),
        lambda tnn: tnn.LeakyReLU(slope),
        lambda z: np.where(z > 0, z, slope * z),
        lambda z: np.where(z > 0, 1.0, slope),
        max(1.0, abs(slope)),
        jump=abs(1.0 - slope),
        slope=slope,
    )


ACTIVATIONS = {
    "relu": Act(
        lambda: lnn.ReLU(),
        lambda tnn: tnn.ReLU(),
        lambda z: np.maximum(z, 0.0),
        lambda z: (z > 0).astype(np.float64),
        1.0,
        jump=1.0,
    ),
    "leaky0.2": leaky(0.2),
    "leaky0.01": leaky(0.01),
    "sigmoid": Act(
        lambda: lnn.Sigmoid(),
        lambda tnn: tnn.Sigmoid(),
        _sigmoid,
        lambda z: _sigmoid(z) * (1 - _sigmoid(z)),
        0.25,
    ),
    "tanh": Act(
        lambda: lnn.Tanh(), lambda tnn: tnn.Tanh(), np.tanh, lambda z: 1 - np.tanh(z) ** 2, 1.0
    ),
    "gelu": Act(lambda: lnn.GELU(), lambda tnn: tnn.GELU(), _gelu, _dgelu, 1.14),
    "gelu_tanh": Act(
        lambda: lnn.GELU("tanh"),
        lambda tnn: tnn.GELU("tanh"),
        _gelu_tanh,
        _dgelu_tanh,
        1.14,
        dmag=lambda z: np.maximum(_dgelu_tanh_terms(z), 1.0),
    ),
}


# --- the tolerance rule composed through a chain of layers ----------------------------------------


class ChainBound:
    """Float64 reference values and elementwise error bounds for a stack of Linear layers (each
    optionally followed by an activation; ("scale", c) steps multiply by a power of two, exactly)
    evaluated in a dtype with unit roundoff u, in any summation order.

    Forward, per Linear with K inputs (docs/testing.md's rule, plus the error E_a already in its
    input a, which reaches z through |W|):  E_z = gamma(K+2) ((|a| + E_a) |W|^T + |b|) + E_a |W|^T
    + (K+1) denorm_min.  Through an activation f: E_f = lip E_z + R, where R, f's own rounding,
    is 8 ulps of max(|f|, |z|, 1) for sigmoid/tanh/gelu (libm-quality exp/erf/tanh), 2 ulps of
    |f| for LeakyReLU (its slope rounded to the dtype), 0 for ReLU.
    Backward: dZ = dA * f'(z). The computed f'(z) is off by at most D: for ReLU-like f, the jump
    wherever |z| <= E_z (the computed z may lie across 0), else 2 ulps of |f'| (the slope);
    for smooth f, sup|f''| E_z + 2 E_f (implementations may use f'(z) or f' from f(z): s(1-s),
    1-t^2) + 8 ulps of dmag(z) (Act). Then E_dZ = E_dA (|f'| + D) + |dA| D + 2u |dA f'|, and each
    of dW = dZ^T a (length m = rows), db = dZ^T 1 and dA_prev = dZ W (length N = outputs) is
    bounded like z: gamma(len+2) times the product of the operands' |value| + bound, plus the
    operands' bounds times the other operand's |value| (+ the product of the bounds).
    The bound is for |computed - exact|; against a float64 reference add the bound for u = 2^-53
    (tolerance() does)."""

    def __init__(self, x, layers, dtype):
        self.dt = np.dtype(dtype)
        u = self.u = UNIT_ROUNDOFF[self.dt]
        tiny = self.tiny = SMALLEST_SUBNORMAL[self.dt]
        x = np.asarray(x, np.float64)
        self.in_shape = x.shape
        self.rows = int(np.prod(x.shape[:-1]))
        a = x.reshape(self.rows, x.shape[-1])
        ea = np.zeros_like(a)
        self.steps = []
        for layer in layers:
            if isinstance(layer[0], str):  # ("scale", c)
                c = layer[1]
                self.steps.append(("scale", c))
                a, ea = a * c, ea * abs(c)
                continue
            w, b, act = layer
            w = np.asarray(w, np.float64)
            k = w.shape[1]
            aw = np.abs(w)
            z = a @ w.T + (0.0 if b is None else np.asarray(b, np.float64))
            mag = (np.abs(a) + ea) @ aw.T + (0.0 if b is None else np.abs(np.asarray(b)))
            ez = gamma(k + 2, u) * mag + ea @ aw.T + (k + 1) * tiny
            if act is None:
                f, d = z, np.ones_like(z)
                ef, dd = ez, np.zeros_like(z)
            else:
                spec = ACTIVATIONS[act]
                f, d = spec.f(z), spec.df(z)
                if spec.jump:
                    rnd = 2 * u * np.abs(f) if spec.slope is not None else 0.0
                    ef = spec.lip * ez + rnd
                    dd = np.where(np.abs(z) <= ez, spec.jump, 0.0) + 2 * u * np.abs(d)
                else:
                    ef = spec.lip * ez + 8 * u * np.maximum(np.maximum(np.abs(f), np.abs(z)), 1.0)
                    dd = ez + 2 * ef + 8 * u * spec.dmag(z)
            self.steps.append((w, b, a, ea, d, dd))
            a, ea = f, ef
        self.y = a.reshape(self.in_shape[:-1] + (a.shape[-1],))
        self.ey = ea.reshape(self.y.shape)

    def backward(self, g, eg=0.0):
        """Reference gradients and bounds for upstream gradient g (error eg): returns
        (dx, E_dx, [(dW, E_dW, db, E_db) per Linear, in order])."""
        u, tiny = self.u, self.tiny
        g = np.asarray(g, np.float64)
        g = g.reshape(self.rows, self.y.shape[-1])
        eg = np.broadcast_to(np.asarray(eg, np.float64), self.y.shape).reshape(g.shape)
        params = []
        for step in reversed(self.steps):
            if isinstance(step[0], str):  # ("scale", c)
                g, eg = g * step[1], eg * abs(step[1])
                continue
            w, b, a, ea, d, dd = step
            m, n = g.shape
            dz = g * d
            edz = eg * (np.abs(d) + dd) + np.abs(g) * dd + 2 * u * np.abs(dz)
            adz, aa, aw = np.abs(dz), np.abs(a), np.abs(w)
            dw = dz.T @ a
            edw = (
                gamma(m + 2, u) * (adz + edz).T @ (aa + ea)
                + edz.T @ aa
                + adz.T @ ea
                + edz.T @ ea
                + (m + 1) * tiny
            )
            db = dz.sum(axis=0)
            edb = gamma(m + 2, u) * (adz + edz).sum(axis=0) + edz.sum(axis=0) + (m + 1) * tiny
            da = dz @ w
            eda = gamma(n + 2, u) * (adz + edz) @ aw + edz @ aw + (n + 1) * tiny
            params.append((dw, edw, db if b is not None else None, edb))
            g, eg = da, eda
        params.reverse()
        return g.reshape(self.in_shape), eg.reshape(self.in_shape), params


def chain_layers(model_layers):
    """(W, b, act) / ("scale", c) steps, in float64, from a list of lincore or torch modules
    (Linear, an activation after it, and Times2 for the Python module)."""
    out = []
    for mod in model_layers:
        name = type(mod).__name__
        if name == "Linear":
            w = np.asarray(mod.weight.detach().numpy(), np.float64)
            b = None if mod.bias is None else np.asarray(mod.bias.detach().numpy(), np.float64)
            out.append([w, b, None])
        elif name == "Times2":
            out.append(("scale", 2.0))
        else:
            key = {"ReLU": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh"}.get(name)
            if name == "LeakyReLU":
                key = f"leaky{mod.negative_slope}"
            if name == "GELU":
                key = "gelu" if mod.approximate == "none" else "gelu_tanh"
            assert key is not None and out and not isinstance(out[-1][0], str)
            assert out[-1][2] is None
            out[-1][2] = key
    return [tuple(s) for s in out]


def chain_tolerance(x, layers, dtype, g, eg_fn=None):
    """Reference (float64) y, dx, params from ChainBound, with tolerances for comparing a
    computation in dtype against it: bound(dtype) + bound(float64). eg_fn(chain) may give the
    upstream gradient's own error bound (the loss's)."""
    out = []
    for dt in (dtype, np.float64):
        cb = ChainBound(x, layers, dt)
        eg = eg_fn(cb) if eg_fn is not None else 0.0
        out.append((cb, cb.backward(g, eg)))
    (cb, (dx, edx, params)), (cb64, (_, edx64, params64)) = out
    return {
        "y": (cb.y, cb.ey + cb64.ey),
        "dx": (dx, edx + edx64),
        "params": [
            (dw, edw + edw64, db, edb + edb64)
            for (dw, edw, db, edb), (_, edw64, _, edb64) in zip(params, params64)
        ],
    }


# ================================================================================================
# 1. Every recorded op: gradients, node names, reprs against torch
# ================================================================================================


def run_both(torch, fn, arrays, grad_out=None, requires=None):
    """fn on lincore leaves and on torch leaves made from the same float64 arrays, then backward
    with the same upstream gradient (grad_out, default random normal); returns the leaves, the
    outputs, their reprs and node names (taken before backward) and the upstream gradient."""
    requires = requires or [True] * len(arrays)
    lx = [lincore.tensor(np.array(a)).requires_grad_(r) for a, r in zip(arrays, requires)]
    tx = [torch.tensor(np.array(a), requires_grad=r) for a, r in zip(arrays, requires)]
    ly, ty = fn(*lx), fn(*tx)
    lrepr, trepr = repr(ly), repr(ty)
    lname, tname = node_name(ly), node_name(ty)
    if grad_out is None:
        grad_out = np.random.default_rng(7).standard_normal(tuple(ty.shape))
    ly.backward(lincore.tensor(np.array(grad_out)))
    ty.backward(torch.tensor(np.array(grad_out)))
    return {
        "lx": lx,
        "tx": tx,
        "ly": ly,
        "ty": ty,
        "lrepr": lrepr,
        "trepr": trepr,
        "lname": lname,
        "tname": tname,
        "g": grad_out,
    }


BINARY_OPS = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "truediv": operator.truediv,
    "pow": operator.pow,
}
SHAPE_PAIRS = [
    ((3, 4), (3, 4)),
    ((3, 1), (1, 4)),
    ((2, 3, 4), (4,)),
    ((4,), (2, 1, 4)),
    ((), (3, 4)),
    ((3, 4), ()),
    ((2, 1, 3), (5, 1)),
    ((1,), (2, 3)),
]


def binary_operands(op, sa, sb, rng):
    a = rng.standard_normal(sa)
    b = rng.standard_normal(sb)
    if op == "truediv":  # denominators away from 0
        b = np.where(b < 0, -1, 1) * rng.uniform(0.5, 2.0, sb)
    if op == "pow":  # positive bases (the exponent's gradient takes log(base))
        a = rng.uniform(0.5, 2.0, sa)
        b = rng.uniform(-2.0, 2.0, sb)
    return a, b


def elementwise_magnitude(torch, fn, arrays, out_shape, g):
    """For each operand: the sum over the output elements it feeds of |that term's gradient|,
    and the number of terms (torch on operands expanded to the output shape)."""
    leaves = [
        torch.tensor(np.broadcast_to(a, out_shape).copy(), requires_grad=True) for a in arrays
    ]
    fn(*leaves).backward(torch.tensor(g))
    mags, counts = [], []
    for a, leaf in zip(arrays, leaves):
        m = np.abs(leaf.grad.numpy())
        extra = m.ndim - np.ndim(a)
        m = m.sum(axis=tuple(range(extra))) if extra else m
        stretched = tuple(i for i, s in enumerate(np.shape(a)) if s == 1 and m.shape[i] != 1)
        if stretched:
            m = m.sum(axis=stretched, keepdims=True)
        mags.append(m.reshape(np.shape(a)))
        counts.append(max(1, int(np.prod(out_shape)) // max(1, int(np.prod(np.shape(a))))))
    return mags, counts


def check_elementwise_grads(torch, res, fn, arrays):
    out_shape = tuple(res["ty"].shape)
    mags, counts = elementwise_magnitude(torch, fn, arrays, out_shape, res["g"])
    for i, (lx, tx) in enumerate(zip(res["lx"], res["tx"])):
        if not tx.requires_grad:
            assert lx.grad is None
            continue
        tol = 2 * gamma(counts[i] + 8, U64) * mags[i] + SMALLEST_SUBNORMAL[np.dtype(np.float64)]
        assert grad_of(lx).dtype == np.float64
        assert_within(grad_of(lx), tx.grad.numpy(), tol, f"grad of operand {i}")


@pytest.mark.parametrize("sa,sb", SHAPE_PAIRS, ids=lambda s: "x".join(map(str, s)) or "0d")
@pytest.mark.parametrize("op", list(BINARY_OPS))
def test_binary_op_grads_names_reprs(torch, op, sa, sb):
    rng = np.random.default_rng(zlib.crc32(repr((op, sa, sb)).encode()))
    a, b = binary_operands(op, sa, sb, rng)
    fn = BINARY_OPS[op]
    res = run_both(torch, fn, [a, b])
    assert res["lname"] == res["tname"]
    assert res["lrepr"] == lc_repr(res["trepr"])
    check_elementwise_grads(torch, res, fn, [a, b])


@pytest.mark.parametrize("op", list(BINARY_OPS))
@pytest.mark.parametrize("which", [0, 1])
def test_binary_op_with_one_operand_not_requiring_grad(torch, op, which):
    rng = np.random.default_rng(5)
    a, b = binary_operands(op, (3, 1), (1, 4), rng)
    requires = [which == 0, which == 1]
    res = run_both(torch, BINARY_OPS[op], [a, b], requires=requires)
    assert res["lname"] == res["tname"]
    assert res["lrepr"] == lc_repr(res["trepr"])
    check_elementwise_grads(torch, res, BINARY_OPS[op], [a, b])


# Tensor-scalar and scalar-tensor forms (torch's reflected nodes: RsubBackward1, MulBackward0 for
# 2 / t, PowBackward2 for 2 ** t), unary ops.
SCALAR_OPS = {
    "t+2": lambda t: t + 2,
    "2+t": lambda t: 2 + t,
    "t+2.5": lambda t: t + 2.5,
    "t-2": lambda t: t - 2,
    "2-t": lambda t: 2 - t,
    "2.5-t": lambda t: 2.5 - t,
    "t*3": lambda t: t * 3,
    "3*t": lambda t: 3 * t,
    "t*-0.5": lambda t: t * -0.5,
    "t/4": lambda t: t / 4,
    "t/3": lambda t: t / 3,
    "2/t": lambda t: 2 / t,
    "t**2": lambda t: t**2,
    "t**3": lambda t: t**3,
    "t**0.5": lambda t: t**0.5,
    "t**-1.5": lambda t: t**-1.5,
    "2**t": lambda t: 2**t,
    "0.5**t": lambda t: 0.5**t,
    "-t": lambda t: -t,
    "t.abs()": lambda t: t.abs(),
}


@pytest.mark.parametrize("shape", [(3, 4), (), (5,)], ids=str)
@pytest.mark.parametrize("name", list(SCALAR_OPS))
def test_scalar_and_unary_op_grads_names_reprs(torch, name, shape):
    rng = np.random.default_rng(11)
    a = np.where(rng.standard_normal(shape) < 0, -1, 1) * rng.uniform(0.5, 2.0, shape)
    if "**" in name and name.startswith("t"):
        a = np.abs(a)  # fractional powers need positive bases
    fn = SCALAR_OPS[name]
    res = run_both(torch, fn, [a])
    assert res["lname"] == res["tname"]
    assert res["lrepr"] == lc_repr(res["trepr"])
    check_elementwise_grads(torch, res, fn, [a])


def test_builtin_abs_records_abs_backward(torch):
    # abs(t) is torch.Tensor.__abs__; lincore.Tensor must support it like t.abs().
    a = np.array([[-1.5, 2.0], [0.5, -3.0]])
    res = run_both(torch, lambda t: abs(t), [a])
    assert res["lname"] == res["tname"] == "AbsBackward0"
    assert_exact(grad_of(res["lx"][0]), res["tx"][0].grad.numpy())


def test_abs_grad_is_sign_times_upstream(torch):
    a = np.array([-2.0, -0.5, 0.25, 3.0])
    res = run_both(torch, lambda t: t.abs(), [a])
    assert_exact(grad_of(res["lx"][0]), res["tx"][0].grad.numpy())


def test_binary_op_grads_keep_each_operands_dtype(torch):
    # float32 op float64 promotes to float64; each operand's gradient keeps its own dtype.
    a32 = np.array([1.0, -2.0, 3.0], np.float32)
    b64 = np.array([[0.5], [-1.25]], np.float64)
    la, lb = lc_leaf(a32), lc_leaf(b64)
    ta, tb = t_leaf(torch, a32), t_leaf(torch, b64)
    for x, y in ((la, lb), (ta, tb)):
        out = x * y + x / 2
        out.sum().backward()
    assert la.dtype is lincore.float32 and lb.dtype is lincore.float64
    assert grad_of(la).dtype == np.float32 and grad_of(lb).dtype == np.float64
    assert_exact(grad_of(la), ta.grad.numpy())
    assert_exact(grad_of(lb), tb.grad.numpy())


def test_op_with_int_tensor_operand(torch):
    a = np.array([[1.5, -2.0, 0.25]])
    k = np.array([[1, 2, 3], [4, 5, 6]], np.int64)
    la, ta = lc_leaf(a), t_leaf(torch, a)
    ly = la * lincore.tensor(k) + lincore.tensor(k)
    ty = ta * torch.tensor(k) + torch.tensor(k)
    assert repr(ly) == lc_repr(repr(ty))
    ly.sum().backward()
    ty.sum().backward()
    assert_exact(grad_of(la), ta.grad.numpy())


# --- matmul ---------------------------------------------------------------------------------------


def check_matmul_grads(a, b, g, da, db):
    """Each element of dA and dB is a dot product over the contracted dim and over the batch
    elements that broadcasting folded onto it: assert_linear_close with exactly those operands."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = np.asarray(g)
    if a.ndim == 1 and b.ndim == 1:
        g2 = g2.reshape(1, 1)  # a dot product: the gradient is one number
    elif a.ndim == 1:
        g2 = np.expand_dims(g2, -2)
    elif b.ndim == 1:
        g2 = np.expand_dims(g2, -1)
    batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    nb = int(np.prod(batch))
    g3 = np.broadcast_to(g2, batch + g2.shape[-2:]).reshape((nb,) + g2.shape[-2:])

    def owners(shape):
        """For each batch element of an operand: the output batch elements it feeds."""
        n = int(np.prod(shape))
        idx = np.broadcast_to(np.arange(n).reshape(shape), batch).reshape(-1)
        return [np.flatnonzero(idx == i) for i in range(n)]

    a3 = np.broadcast_to(a2, batch + a2.shape[-2:]).reshape((nb,) + a2.shape[-2:])
    b3 = np.broadcast_to(b2, batch + b2.shape[-2:]).reshape((nb,) + b2.shape[-2:])
    da3 = np.asarray(da).reshape((int(np.prod(a2.shape[:-2])),) + a2.shape[-2:])
    db3 = np.asarray(db).reshape((int(np.prod(b2.shape[:-2])),) + b2.shape[-2:])
    for i, outs in enumerate(owners(a2.shape[:-2])):
        # dA[r, p] = sum_{o, j} G[o, r, j] B[o, p, j]
        x = np.concatenate([g3[o] for o in outs], axis=1)
        w = np.concatenate([b3[o] for o in outs], axis=1)
        assert_linear_close(da3[i], x, w)
    for i, outs in enumerate(owners(b2.shape[:-2])):
        # dB[p, j] = sum_{o, r} A[o, r, p] G[o, r, j]
        x = np.concatenate([a3[o].T for o in outs], axis=1)
        w = np.concatenate([g3[o].T for o in outs], axis=1)
        assert_linear_close(db3[i], x, w)


MATMUL_SHAPES = [
    ((5,), (5,)),  # DotBackward0
    ((3, 5), (5,)),  # MvBackward0
    ((5,), (5, 4)),  # SqueezeBackward4
    ((3, 5), (5, 4)),  # MmBackward0
    ((17, 33), (33, 12)),  # MmBackward0, kernel-tile sizes
    ((2, 3, 5), (5, 4)),  # UnsafeViewBackward0 (batched)
    ((2, 3, 5), (2, 5, 4)),
    ((5,), (2, 5, 4)),
    ((2, 3, 5), (5,)),
    ((2, 1, 3, 5), (4, 5, 2)),
    ((3, 5), (2, 5, 4)),  # torch: CloneBackward0
    ((0, 5), (5, 4)),
    ((3, 0), (0, 4)),
]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dt", ["f64", "f32"])
def test_matmul_grads_names_reprs(torch, sa, sb, dt):
    rng = np.random.default_rng(3)
    a = rng.standard_normal(sa).astype(NP[dt])
    b = rng.standard_normal(sb).astype(NP[dt])
    la, lb = lc_leaf(a), lc_leaf(b)
    ta, tb = t_leaf(torch, a), t_leaf(torch, b)
    ly, ty = la @ lb, ta @ tb
    assert tuple(ly.shape) == tuple(ty.shape)
    names = node_name(ly), node_name(ty)
    reprs = repr(ly), lc_repr(repr(ty))
    g = rng.standard_normal(tuple(ty.shape)).astype(NP[dt])
    ly.backward(lincore.tensor(g))
    ty.backward(torch.tensor(g))
    assert grad_of(la).dtype == NP[dt] and grad_of(lb).dtype == NP[dt]
    check_matmul_grads(a, b, g, grad_of(la), grad_of(lb))
    check_matmul_grads(a, b, g, ta.grad.numpy(), tb.grad.numpy())  # the bound holds for torch
    assert names[0] == names[1]
    if dt == "f64":
        assert reprs[0] == reprs[1]


def test_dot_backward_with_implicit_gradient(torch):
    a, b = np.array([1.0, 2.0, 3.0]), np.array([4.0, -5.0, 6.0])
    la, lb = lc_leaf(a), lc_leaf(b)
    ly = la @ lb
    assert repr(ly) == "tensor(12., dtype=lincore.float64, grad_fn=<DotBackward0>)"
    ly.backward()
    assert_exact(grad_of(la), b)
    assert_exact(grad_of(lb), a)


def test_matmul_one_operand_requires_grad(torch):
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((3, 5)), rng.standard_normal((5, 4))
    la, lb = lc_leaf(a), lincore.tensor(b)
    ta, tb = t_leaf(torch, a), torch.tensor(b)
    ly, ty = la @ lb, ta @ tb
    assert node_name(ly) == node_name(ty)
    g = rng.standard_normal((3, 4))
    ly.backward(lincore.tensor(g))
    assert lb.grad is None
    assert_linear_close(grad_of(la), g, b)


# --- reductions, views, copies, conversions, indexing -------------------------------------------

REDUCTIONS = {
    "sum()": lambda t: t.sum(),
    "sum(1)": lambda t: t.sum(1),
    "sum(-1)": lambda t: t.sum(-1),
    "sum((0,2))": lambda t: t.sum((0, 2)),
    "sum(1,keepdim)": lambda t: t.sum(1, keepdim=True),
    "sum((0,2),keepdim)": lambda t: t.sum((0, 2), keepdim=True),
    "mean()": lambda t: t.mean(),
    "mean(0)": lambda t: t.mean(0),
    "mean(-1,keepdim)": lambda t: t.mean(-1, keepdim=True),
    "mean((1,2))": lambda t: t.mean((1, 2)),
}


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_reduction_grads_names_reprs(torch, name):
    rng = np.random.default_rng(8)
    a = rng.standard_normal((2, 3, 4))
    res = run_both(torch, REDUCTIONS[name], [a])
    assert res["lname"] == res["tname"]
    assert res["lrepr"] == lc_repr(res["trepr"])
    got, ref = grad_of(res["lx"][0]), res["tx"][0].grad.numpy()
    if name.startswith("sum"):
        assert_exact(got, ref)
    else:  # g / count: one rounding in each library
        assert_within(got, ref, 2 * gamma(2, U64) * np.abs(ref), name)


def test_sum_and_mean_of_scalar_loss(torch):
    a = np.arange(12.0).reshape(3, 4) / 7
    for f in (lambda t: t.sum(), lambda t: t.mean(), lambda t: (t * t).mean()):
        la, ta = lc_leaf(a), t_leaf(torch, a)
        f(la).backward()
        f(ta).backward()
        ref = ta.grad.numpy()
        assert_within(grad_of(la), ref, 2 * gamma(4, U64) * np.abs(ref))


def _lib(t):
    """lincore or torch, whichever t belongs to."""
    if isinstance(t, lincore.Tensor):
        return lincore
    import torch

    return torch


SHAPE_OPS = {
    "view(6,4)": (lambda t: t.view(6, 4), (2, 3, 4)),
    "view(-1)": (lambda t: t.view(-1), (2, 3, 4)),
    "reshape(4,6)": (lambda t: t.reshape(4, 6), (2, 3, 4)),
    "transpose.reshape": (lambda t: t.transpose(0, 2).reshape(-1), (2, 3, 4)),
    "flatten()": (lambda t: t.flatten(), (2, 3, 4)),
    "flatten(1)": (lambda t: t.flatten(1), (2, 3, 4)),
    "transpose.flatten": (lambda t: t.transpose(0, 1).flatten(), (2, 3, 4)),
    "transpose(0,2)": (lambda t: t.transpose(0, 2), (2, 3, 4)),
    "transpose(-1,-2)": (lambda t: t.transpose(-1, -2), (2, 3, 4)),
    "T2d": (lambda t: t.T, (3, 4)),
    "clone": (lambda t: t.clone(), (3, 4)),
    "T.contiguous": (lambda t: t.T.contiguous(), (3, 4)),
    "to(f32)": (lambda t: t.to(_lib(t).float32), (3, 4)),
    "float()": (lambda t: t.float(), (3, 4)),
    "float().double()": (lambda t: t.float().double(), (3, 4)),
    "to(same,copy)": (lambda t: t.to(t.dtype, copy=True), (3, 4)),
    "[1]": (lambda t: t[1], (2, 3, 4)),
    "[:,1]": (lambda t: t[:, 1], (2, 3, 4)),
    "[1:]": (lambda t: t[1:], (2, 3, 4)),
    "[0,1:3]": (lambda t: t[0, 1:3], (2, 3, 4)),
    "[:,::2]": (lambda t: t[:, ::2], (2, 3, 4)),
    "[1,:]": (lambda t: t[1, :], (2, 3, 4)),  # torch skips full slices inside a tuple key
    "[None,:]": (lambda t: t[None, :], (2, 3, 4)),
    "[1,0:3]": (lambda t: t[1, 0:3], (2, 3, 4)),
    "[0:2]": (lambda t: t[0:2], (2, 3, 4)),  # ... but not a lone one
    "[:]": (lambda t: t[:], (2, 3, 4)),
    "[None]": (lambda t: t[None], (2, 3, 4)),
    "[...,1]": (lambda t: t[..., 1], (2, 3, 4)),
    "[...,None]": (lambda t: t[..., None], (2, 3, 4)),
    "[1,None]": (lambda t: t[1, None], (2, 3, 4)),
    "[None,1]": (lambda t: t[None, 1], (2, 3, 4)),
    "[1:,2]": (lambda t: t[1:, 2], (2, 3, 4)),
    "[-1,-2,-3]": (lambda t: t[-1, -2, -3], (2, 3, 4)),
    "[[1,0]]": (lambda t: t[[1, 0]], (2, 3, 4)),
    "[:,[2,0]]": (lambda t: t[:, [2, 0]], (2, 3, 4)),
    "[mask]": (lambda t: t[t > 0], (2, 3, 4)),
    "[tensor]": (lambda t: t[_lib(t).tensor([2, 0, 1])], (3, 4)),
}


@pytest.mark.parametrize("name", list(SHAPE_OPS))
def test_view_copy_index_grads_names_reprs(torch, name):
    fn, shape = SHAPE_OPS[name]
    a = np.random.default_rng(9).standard_normal(shape)
    res = run_both(torch, fn, [a])
    assert res["lname"] == res["tname"]
    assert res["lrepr"] == lc_repr(res["trepr"])
    assert_exact(grad_of(res["lx"][0]), res["tx"][0].grad.numpy(), name)


@pytest.mark.parametrize("key", [[0, 2, 0, 0], (slice(None), [1, 1, 2])], ids=["rows", "cols"])
def test_advanced_index_with_repeats_sums_grads(torch, key):
    a = np.random.default_rng(10).standard_normal((3, 3))
    res = run_both(torch, lambda t: t[key], [a])
    assert res["lname"] == res["tname"] == "IndexBackward0"
    ref = res["tx"][0].grad.numpy()
    # each element gets up to 3 upstream elements added: gamma(3) of their absolute sum
    mag = np.zeros_like(a)
    np.add.at(mag, key, np.abs(res["g"]))
    assert_within(grad_of(res["lx"][0]), ref, 2 * gamma(3, U64) * mag)


def test_to_copy_backward_casts_the_gradient_back(torch):
    a = np.array([[1.0, 2.5], [-3.0, 0.125]], np.float32)
    la, ta = lc_leaf(a), t_leaf(torch, a)
    ly, ty = la.double() * 3, ta.double() * 3
    assert node_name(ly) == node_name(ty) == "MulBackward0"
    assert type(ly.grad_fn.next_functions[0][0]).__name__ == "ToCopyBackward0"
    ly.sum().backward()
    ty.sum().backward()
    assert grad_of(la).dtype == np.float32
    assert_exact(grad_of(la), ta.grad.numpy())


def test_chain_of_views_and_indexing(torch):
    a = np.random.default_rng(12).standard_normal((4, 6))
    fn = lambda t: (t.view(2, 2, 6).transpose(1, 2)[:, 1:4].flatten(1) * 2).sum(0)[::2]  # noqa
    res = run_both(torch, fn, [a])
    assert res["lname"] == res["tname"]
    assert_exact(grad_of(res["lx"][0]), res["tx"][0].grad.numpy())


# --- F.linear, activations, losses: names and reprs -------------------------------------------


@pytest.mark.parametrize("x_shape", [(2, 3), (3,), (2, 2, 3), (0, 3), (1, 1, 1, 3)], ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_functional_linear_names_reprs(torch, x_shape, bias):
    rng = np.random.default_rng(13)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal((4, 3)), rng.standard_normal(4)
    arrays = [x, w] + ([b] if bias else [])
    res = run_both(
        torch,
        lambda *t: (LF if isinstance(t[0], lincore.Tensor) else torch.nn.functional).linear(*t),
        arrays,
    )
    assert res["lname"] == res["tname"]
    assert res["lrepr"] == lc_repr(res["trepr"])
    g = res["g"].reshape(-1, 4)
    x2 = x.reshape(-1, 3)
    assert_linear_close(grad_of(res["lx"][0]).reshape(-1, 3), g, w.T)
    assert_linear_close(grad_of(res["lx"][1]), g.T, x2.T)
    if bias:
        assert_linear_close(grad_of(res["lx"][2]).reshape(4, 1), g.T, np.ones((1, len(g))))


@pytest.mark.parametrize("x_shape", [(2, 3), (3,), (2, 2, 3), (0, 3)], ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_module_output_repr_matches_torch(torch, x_shape, bias):
    """The printed form (values, layout, grad_fn) matches torch's. The values are small
    multiples of 1/8, so both engines compute them exactly, whatever their summation order:
    with random floats a last printed digit may differ by rounding (it did, once in CI)."""
    rng = np.random.default_rng(14)
    tmodel = torch.nn.Linear(3, 4, bias=bias)
    with torch.no_grad():
        tmodel.weight.copy_(torch.tensor(rng.integers(-4, 5, (4, 3)) / 4))
        if bias:
            tmodel.bias.copy_(torch.tensor(rng.integers(-4, 5, 4) / 8))
    lmodel = lnn.Linear(3, 4, bias=bias)
    lmodel.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
    x = (rng.integers(-6, 7, x_shape) / 2).astype(np.float32)
    ly, ty = lmodel(lincore.tensor(x)), tmodel(torch.tensor(x))
    assert node_name(ly) == node_name(ty)
    assert repr(ly) == lc_repr(repr(ty))


ACT_FUNCS = {
    "relu": ("relu", {}),
    "leaky_relu": ("leaky_relu", {}),
    "leaky_relu0.2": ("leaky_relu", {"negative_slope": 0.2}),
    "sigmoid": ("sigmoid", {}),
    "tanh": ("tanh", {}),
    "gelu": ("gelu", {}),
    "gelu_tanh": ("gelu", {"approximate": "tanh"}),
}


@pytest.mark.parametrize("name", list(ACT_FUNCS))
def test_activation_names_reprs(torch, name):
    fname, kw = ACT_FUNCS[name]
    x = np.array([[-1.5, 0.0, 0.5], [2.0, -0.25, 1.0]])
    res = run_both(
        torch,
        lambda t: getattr(LF if isinstance(t, lincore.Tensor) else torch.nn.functional, fname)(
            t, **kw
        ),
        [x],
    )
    assert res["lname"] == res["tname"]
    assert res["lrepr"] == lc_repr(res["trepr"])


LOSSES = {
    "mse_loss": "MSELoss",
    "l1_loss": "L1Loss",
    "cross_entropy": "CrossEntropyLoss",
    "binary_cross_entropy_with_logits": "BCEWithLogitsLoss",
}


def loss_inputs(name, rng, shape=(4, 3)):
    x = rng.standard_normal(shape)
    if name == "cross_entropy":
        t = rng.integers(0, shape[-1], shape[:-1]).astype(np.int64)
    elif name == "binary_cross_entropy_with_logits":
        t = rng.uniform(0, 1, shape)
    else:
        t = x + np.where(rng.standard_normal(shape) < 0, -1, 1) * rng.uniform(0.2, 1.0, shape)
    return x, t


def loss_grad_magnitude(name, x, t, g, reduction, pos_weight=None):
    """The elementwise magnitude M of the input gradient's terms (see the module comment)."""
    n = x.size if name != "cross_entropy" else (x.shape[0] if x.ndim == 2 else 1)
    gl = np.asarray(g, np.float64)
    if reduction == "mean":
        gl = gl / n
    if name == "cross_entropy":
        z = x if x.ndim == 2 else x[None]
        zs = z - z.max(1, keepdims=True)
        logp = zs - np.log(np.exp(zs).sum(1, keepdims=True))
        p = np.exp(logp)
        onehot = np.zeros_like(p)
        onehot[np.arange(len(z)), np.asarray(t).reshape(-1)] = 1
        m = (p * (2 + np.abs(logp)) + onehot) * np.abs(gl).reshape(-1, 1)
        return m.reshape(x.shape)
    if name == "binary_cross_entropy_with_logits":
        pw = 1.0 if pos_weight is None else pos_weight
        return np.abs(gl) * (np.abs(pw) * (1 + np.abs(t)) + 2) * np.broadcast_to(1.0, x.shape)
    return np.abs(gl) * 2 * np.abs(x - t) if name == "mse_loss" else np.abs(gl) * np.ones(x.shape)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_grads_names_reprs(torch, name, reduction):
    rng = np.random.default_rng(15)
    x, t = loss_inputs(name, rng)
    lx, tx = lc_leaf(x), t_leaf(torch, x)
    ly = getattr(LF, name)(lx, lincore.tensor(t), reduction=reduction)
    ty = getattr(torch.nn.functional, name)(tx, torch.tensor(t), reduction=reduction)
    assert node_name(ly) == node_name(ty)
    assert repr(ly) == lc_repr(repr(ty))
    # the module form records the same
    lm = getattr(lnn, LOSSES[name])(reduction=reduction)(lx, lincore.tensor(t))
    assert node_name(lm) == node_name(ty)
    g = rng.standard_normal(tuple(ty.shape))
    ly.backward(lincore.tensor(g))
    ty.backward(torch.tensor(g))
    m = loss_grad_magnitude(name, x, t, g, reduction)
    assert_within(grad_of(lx), tx.grad.numpy(), 2 * gamma(16, U64) * m, name)


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "binary_cross_entropy_with_logits"])
def test_loss_grad_reaches_a_target_that_requires_grad(torch, name):
    rng = np.random.default_rng(16)
    x, t = loss_inputs(name, rng)
    lx, lt, tx, tt = lc_leaf(x), lc_leaf(t), t_leaf(torch, x), t_leaf(torch, t)
    getattr(LF, name)(lx, lt).backward()
    getattr(torch.nn.functional, name)(tx, tt).backward()
    for mine, theirs in ((lx, tx), (lt, tt)):
        ref = theirs.grad.numpy()
        mag = np.abs(ref) + np.abs(x) / x.size + 2.0 / x.size
        assert_within(grad_of(mine), ref, 2 * gamma(16, U64) * mag, name)


def test_cross_entropy_on_one_sample_and_bce_with_pos_weight(torch):
    rng = np.random.default_rng(17)
    z = rng.standard_normal(5)
    lz, tz = lc_leaf(z), t_leaf(torch, z)
    ly = LF.cross_entropy(lz, lincore.tensor(np.array(3)))
    ty = torch.nn.functional.cross_entropy(tz, torch.tensor(3))
    assert node_name(ly) == node_name(ty) and repr(ly) == lc_repr(repr(ty))
    ly.backward()
    ty.backward()
    m = loss_grad_magnitude("cross_entropy", z, np.array([3]), 1.0, "mean")
    assert_within(grad_of(lz), tz.grad.numpy(), 2 * gamma(16, U64) * m)

    x, t = loss_inputs("binary_cross_entropy_with_logits", rng)
    pw = np.array([0.5, 2.0, 3.0])
    lx, tx = lc_leaf(x), t_leaf(torch, x)
    ly = LF.binary_cross_entropy_with_logits(lx, lincore.tensor(t), pos_weight=lincore.tensor(pw))
    ty = torch.nn.functional.binary_cross_entropy_with_logits(
        tx, torch.tensor(t), pos_weight=torch.tensor(pw)
    )
    assert repr(ly) == lc_repr(repr(ty))
    ly.backward()
    ty.backward()
    m = loss_grad_magnitude("binary_cross_entropy_with_logits", x, t, 1.0, "mean", pos_weight=pw)
    assert_within(grad_of(lx), tx.grad.numpy(), 2 * gamma(16, U64) * m)


# ================================================================================================
# 2. Engine semantics
# ================================================================================================


def test_gradients_accumulate_across_backward_calls():
    x = lc_leaf(np.array([1.0, -2.0, 3.0]))
    y = (x * x).sum()
    y.backward(retain_graph=True)
    assert_exact(grad_of(x), np.array([2.0, -4.0, 6.0]))
    y.backward()
    assert_exact(grad_of(x), np.array([4.0, -8.0, 12.0]))
    (x * 3).sum().backward()  # a new graph adds too
    assert_exact(grad_of(x), np.array([7.0, -5.0, 15.0]))


def test_retain_graph_allows_any_number_of_backwards():
    x = lc_leaf(np.array([0.5, 1.5]))
    y = (x * x * x).sum()
    for _ in range(3):
        y.backward(retain_graph=True)
    assert_exact(grad_of(x), 3 * 3 * np.array([0.25, 2.25]))


def test_second_backward_without_retain_graph_raises(torch):
    x = lc_leaf(np.array([1.0, 2.0]))
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()
    # torch says the same
    tx = t_leaf(torch, np.array([1.0, 2.0]))
    ty = (tx * tx).sum()
    ty.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        ty.backward()


@pytest.mark.parametrize(
    "make",
    [
        lambda: lnn.Linear(3, 2),
        lambda: lnn.Sequential(lnn.Linear(3, 4), lnn.ReLU(), lnn.Linear(4, 2)),
    ],
    ids=["Linear", "Sequential"],
)
@pytest.mark.parametrize("through_sum", [True, False])
def test_second_backward_through_a_layer_raises(make, through_sum):
    """The layer's own node frees what it saved (through_sum=False starts backward at it)."""
    model = make()
    y = model(lincore.randn(4, 3))
    root, grad = (y.sum(), None) if through_sum else (y, lincore.ones(4, 2))
    root.backward(grad, retain_graph=True)  # kept: a second pass works and accumulates
    first = next(model.parameters()).grad.clone()
    root.backward(grad)
    assert np.allclose(
        np.asarray(memoryview(next(model.parameters()).grad)), 2 * np.asarray(memoryview(first))
    )
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        root.backward(grad)
    if not through_sum:
        assert y.grad_fn._saved is None


def test_backward_on_non_scalar_without_gradient_raises():
    x = lc_leaf(np.ones((2, 2)))
    with pytest.raises(
        RuntimeError, match="grad can be implicitly created only for scalar outputs"
    ):
        (x * 2).backward()


def test_backward_with_gradient_of_wrong_shape_raises():
    x = lc_leaf(np.ones(3))
    y = x * 2
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        y.backward(lincore.tensor(np.ones(2)))
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        y.sum().backward(lincore.tensor(np.ones(2)))
    assert x.grad is None
    y.backward(lincore.tensor(np.array([1.0, 2.0, 3.0])))  # the graph is still usable
    assert_exact(grad_of(x), np.array([2.0, 4.0, 6.0]))


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        lincore.tensor([1.0, 2.0]).sum().backward()


def abs_gradient(torch, f_abs, a, g):
    """The gradient of f_abs (f with every subtraction made an addition) at |a| for upstream
    |g|: the sum of the absolute values of the terms of f's gradient, M in gamma(n) M."""
    t = torch.tensor(np.abs(a), requires_grad=True)
    f_abs(t).backward(torch.tensor(np.abs(g)))
    return t.grad.numpy()


def test_tensor_used_twice_gets_summed_gradients(torch):
    a = np.array([0.5, -1.0, 2.0])
    for f, f_abs in (
        (lambda t: t * t + t, None),
        (lambda t: t * t * t - t / 2, lambda t: t * t * t + t / 2),
        (lambda t: t.sum() * t, None),
    ):
        res = run_both(torch, f, [a])
        ref = res["tx"][0].grad.numpy()
        mag = abs_gradient(torch, f_abs or f, a, res["g"])
        assert_within(grad_of(res["lx"][0]), ref, 2 * gamma(8, U64) * mag)


def test_diamond_graph(torch):
    a = np.array([[0.5, -1.0], [2.0, 0.25]])

    def f(t):
        s = t * 2
        left, right = s + 1, s * 3
        return (left * right).sum() + s.mean()

    res = run_both(torch, f, [a], grad_out=np.array(1.0))
    ref = res["tx"][0].grad.numpy()
    mag = abs_gradient(torch, f, a, res["g"])  # f has no subtraction
    assert_within(grad_of(res["lx"][0]), ref, 2 * gamma(8, U64) * mag)


def test_non_requiring_branch_gets_no_grad():
    x = lc_leaf(np.array([1.0, 2.0]))
    c = lincore.tensor(np.array([3.0, 4.0]))
    (x * c + c).sum().backward()
    assert c.grad is None and not c.requires_grad
    assert_exact(grad_of(x), np.array([3.0, 4.0]))


def _ops_under_mode(x, lin, seq):
    return [
        x * 2,
        x + x,
        -x,
        x.sum(),
        x.mean(0),
        x.view(-1),
        x.T,
        x[0],
        x[[0, 1]],
        x @ x.T,
        x.to(lincore.float32),
        x.clone(),
        lin(x),
        seq(x),
        LF.relu(x),
        LF.mse_loss(x, lincore.zeros(2, 3, dtype=lincore.float64)),
    ]


@pytest.mark.parametrize(
    "mode",
    [
        "no_grad",
        "inference_mode",
        "set_grad_enabled(False)",
        "no_grad decorator",
        "set_grad_enabled call",
    ],
)
def test_disabled_grad_modes_record_nothing(mode):
    x = lc_leaf(np.arange(6.0).reshape(2, 3) / 5)
    lin = lnn.Linear(3, 3, dtype=lincore.float64)
    seq = lnn.Sequential(lnn.Linear(3, 3, dtype=lincore.float64), lnn.ReLU())
    if mode == "no_grad decorator":
        outs = lincore.no_grad()(_ops_under_mode)(x, lin, seq)
    elif mode == "set_grad_enabled call":
        lincore.set_grad_enabled(False)
        try:
            assert not lincore.is_grad_enabled()
            outs = _ops_under_mode(x, lin, seq)
        finally:
            lincore.set_grad_enabled(True)
    else:
        ctx = {
            "no_grad": lincore.no_grad,
            "inference_mode": lincore.inference_mode,
            "set_grad_enabled(False)": lambda: lincore.set_grad_enabled(False),
        }[mode]()
        with ctx:
            assert not lincore.is_grad_enabled()
            outs = _ops_under_mode(x, lin, seq)
    assert lincore.is_grad_enabled()
    for out in outs:
        assert out.grad_fn is None and not out.requires_grad and out.is_leaf
        assert "grad_fn" not in repr(out) and "requires_grad" not in repr(out)


def test_enable_grad_inside_no_grad_records():
    x = lc_leaf(np.array([1.0, 2.0]))
    with lincore.no_grad():
        with lincore.enable_grad():
            assert lincore.is_grad_enabled()
            y = x * 3
        assert not lincore.is_grad_enabled()
        z = x * 3
    assert node_name(y) == "MulBackward0" and z.grad_fn is None
    y.sum().backward()  # runs fine after leaving no_grad
    assert_exact(grad_of(x), np.array([3.0, 3.0]))


def test_inference_mode_false_records_and_is_grad_enabled_toggles():
    assert lincore.is_grad_enabled()
    x = lc_leaf(np.array([1.0]))
    with lincore.inference_mode(False):
        assert lincore.is_grad_enabled()
        assert node_name(x * 2) == "MulBackward0"
    with lincore.set_grad_enabled(False):
        assert not lincore.is_grad_enabled()
        with lincore.set_grad_enabled(True):
            assert lincore.is_grad_enabled()
        assert not lincore.is_grad_enabled()
    assert lincore.is_grad_enabled()


def test_grad_mode_is_restored_after_an_exception():
    with pytest.raises(ValueError):
        with lincore.no_grad():
            raise ValueError
    assert lincore.is_grad_enabled()


def test_detach_cuts_the_graph():
    x = lc_leaf(np.array([1.0, 2.0]))
    y = x * 3
    d = y.detach()
    assert d.grad_fn is None and not d.requires_grad and d.is_leaf
    assert "grad_fn" not in repr(d)
    assert_exact(d.numpy(), np.array([3.0, 6.0]))
    z = (d * x).sum()  # d is a constant here
    z.backward()
    assert_exact(grad_of(x), np.array([3.0, 6.0]))
    # detach shares memory
    with lincore.no_grad():
        d[0] = 10.0
    assert y.detach().numpy()[0] == 10.0


def test_requires_grad_on_non_leaf(torch):
    x = lc_leaf(np.array([1.0, 2.0]))
    y = x * 2
    assert not y.is_leaf and x.is_leaf
    with pytest.raises(RuntimeError, match="only change requires_grad flags of leaf variables"):
        y.requires_grad_(False)
    with pytest.raises(RuntimeError, match="only change requires_grad flags of leaf variables"):
        y.requires_grad = False
    # torch: setting True on a non-leaf that already requires grad is allowed (a no-op)
    ty = t_leaf(torch, np.array([1.0])) * 2
    assert ty.requires_grad_(True) is ty
    assert y.requires_grad_(True) is y
    assert y.requires_grad and node_name(y) == "MulBackward0"


@pytest.mark.parametrize("op", ["+=", "*=", "fill_", "zero_", "setitem", "copy_", "uniform_"])
def test_in_place_on_leaf_requiring_grad(op):
    x = lc_leaf(np.array([1.0, 2.0, 3.0]))

    def apply():
        nonlocal x
        if op == "+=":
            x += 1
        elif op == "*=":
            x *= 2
        elif op == "fill_":
            x.fill_(5.0)
        elif op == "zero_":
            x.zero_()
        elif op == "setitem":
            x[0] = 7.0
        elif op == "copy_":
            x.copy_(lincore.tensor(np.array([4.0, 4.0, 4.0])))
        else:
            x.uniform_(0.0, 1.0)

    before = x
    with pytest.raises(
        RuntimeError,
        match="a leaf Variable that requires grad is being used in an "
        r"in-place operation\.",
    ):
        apply()
    assert_exact(before.detach().numpy(), np.array([1.0, 2.0, 3.0]))
    with lincore.no_grad():
        apply()
    assert x is before and x.requires_grad and x.is_leaf
    assert not np.array_equal(x.detach().numpy(), np.array([1.0, 2.0, 3.0]))


def test_in_place_on_leaf_torch_says_the_same(torch):
    tx = t_leaf(torch, np.array([1.0]))
    with pytest.raises(
        RuntimeError,
        match="a leaf Variable that requires grad is being used in an "
        r"in-place operation\.",
    ):
        tx += 1


@pytest.mark.parametrize("set_to_none", [True, False])
def test_module_zero_grad(set_to_none):
    model = lnn.Sequential(lnn.Linear(3, 4), lnn.ReLU(), lnn.Linear(4, 2, bias=False))
    model(lincore.randn(5, 3)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad(set_to_none=set_to_none)
    for p in model.parameters():
        if set_to_none:
            assert p.grad is None
        else:
            assert grad_of(p).dtype == np.float32 and not grad_of(p).any()
            assert tuple(p.grad.shape) == tuple(p.shape)
    model(lincore.randn(5, 3)).sum().backward()  # fresh gradients after zero_grad
    assert all(p.grad is not None and grad_of(p).any() for p in model.parameters())


def test_default_zero_grad_sets_to_none():
    lin = lnn.Linear(2, 2)
    lin(lincore.randn(1, 2)).sum().backward()
    lin.zero_grad()
    assert lin.weight.grad is None and lin.bias.grad is None


@pytest.mark.parametrize("data", [[1, 2], [True, False]])
def test_int_and_bool_tensors_cannot_require_grad(data):
    t = lincore.tensor(data)
    with pytest.raises(RuntimeError, match="only Tensors of floating point"):
        t.requires_grad_()
    with pytest.raises(RuntimeError, match="only Tensors of floating point"):
        t.requires_grad = True
    assert not t.requires_grad
    t.requires_grad_(False)  # turning it off is fine


@pytest.mark.parametrize("dt", ["f32", "f64"])
def test_grads_keep_the_parameter_dtype(dt):
    model = lnn.Sequential(
        lnn.Linear(3, 4, dtype=LC[dt]), lnn.Tanh(), lnn.Linear(4, 1, dtype=LC[dt])
    )
    x = lincore.tensor(np.ones((2, 3), NP[dt])).requires_grad_()
    LF.mse_loss(model(x), lincore.tensor(np.zeros((2, 1), NP[dt]))).backward()
    for p in list(model.parameters()) + [x]:
        assert p.grad.dtype is LC[dt] and grad_of(p).dtype == NP[dt]
    lin = lnn.Linear(3, 2, dtype=LC[dt])
    (lin(lincore.tensor(np.ones(3, NP[dt]))) * 2).sum().backward()
    assert lin.weight.grad.dtype is LC[dt] and lin.bias.grad.dtype is LC[dt]


def test_grad_mode_is_thread_local():
    inside, release, seen = threading.Event(), threading.Event(), {}

    def worker():
        with lincore.no_grad():
            seen["worker"] = lincore.is_grad_enabled()
            inside.set()
            release.wait(10)
            seen["worker_after"] = lincore.is_grad_enabled()

    t = threading.Thread(target=worker)
    t.start()
    try:
        assert inside.wait(10)
        assert lincore.is_grad_enabled()  # this thread is unaffected
        x = lc_leaf(np.array([1.0]))
        assert node_name(x * 2) == "MulBackward0"
        with lincore.no_grad():  # and this thread's no_grad does not leak into the worker
            assert not lincore.is_grad_enabled()
    finally:
        release.set()
        t.join(10)
    assert seen == {"worker": False, "worker_after": False}
    assert lincore.is_grad_enabled()


def test_new_thread_starts_with_grad_enabled():
    seen = {}
    with lincore.no_grad():
        t = threading.Thread(target=lambda: seen.setdefault("v", lincore.is_grad_enabled()))
        t.start()
        t.join(10)
    assert seen["v"] is True


def test_leaf_flags_and_grad_fn_of_results():
    x = lc_leaf(np.array([1.0]))
    c = lincore.tensor(np.array([1.0]))
    assert x.is_leaf and c.is_leaf and x.grad_fn is None
    y = x + c
    assert not y.is_leaf and y.requires_grad
    z = c + c
    assert z.is_leaf and not z.requires_grad and z.grad_fn is None
    nxt = y.grad_fn.next_functions
    assert type(nxt[0][0]).__name__ == "AccumulateGrad" and nxt[1][0] is None


# ================================================================================================
# 3. Linear, activations and Sequential backward
# ================================================================================================

LINEAR_BATCHES = [(), (0,), (1,), (7,), (12,), (16,), (33,), (2, 3)]
LINEAR_FEATURES = [(1, 1), (0, 5), (5, 0), (3, 17), (12, 16), (16, 12), (32, 33), (65, 7)]


@pytest.mark.parametrize("dt", ["f32", "f64"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("features", LINEAR_FEATURES, ids=lambda f: f"{f[0]}to{f[1]}")
@pytest.mark.parametrize("batch", LINEAR_BATCHES, ids=lambda b: "x".join(map(str, b)) or "1d")
def test_linear_backward_against_torch(torch, isa, batch, features, bias, dt):
    n_in, n_out = features
    rng = np.random.default_rng(zlib.crc32(repr((batch, features, bias, dt)).encode()))
    tdt = {"f32": torch.float32, "f64": torch.float64}[dt]
    with warnings.catch_warnings():  # torch warns about initializing zero-element tensors
        warnings.simplefilter("ignore")
        tlin = torch.nn.Linear(n_in, n_out, bias=bias, dtype=tdt)
    llin = lnn.Linear(n_in, n_out, bias=bias, dtype=LC[dt])
    llin.load_state_dict({k: v.detach().numpy() for k, v in tlin.state_dict().items()})
    x = rng.standard_normal(batch + (n_in,)).astype(NP[dt])
    g = rng.standard_normal(batch + (n_out,)).astype(NP[dt])
    lx, tx = lc_leaf(x), t_leaf(torch, x)
    ly, ty = llin(lx), tlin(tx)
    assert node_name(ly) == node_name(ty)
    ly.backward(lincore.tensor(g))
    ty.backward(torch.tensor(g))
    w = tlin.weight.detach().numpy()
    m = int(np.prod(batch))
    g2, x2 = g.reshape(m, n_out), x.reshape(m, n_in)
    for name, gx, gw, gb in (
        ("lincore", grad_of(lx), grad_of(llin.weight), None if not bias else grad_of(llin.bias)),
        (
            "torch",
            tx.grad.numpy(),
            tlin.weight.grad.numpy(),
            None if not bias else tlin.bias.grad.numpy(),
        ),
    ):
        assert gx.dtype == gw.dtype == NP[dt], name
        assert gx.shape == x.shape and gw.shape == w.shape, name
        assert_linear_close(gx.reshape(m, n_in), g2, w.T)
        assert_linear_close(gw, g2.T, x2.T)
        if bias:
            assert_linear_close(gb.reshape(n_out, 1), g2.T, np.ones((1, len(g2)), NP[dt]))


def test_linear_backward_only_weight_requires_grad():
    rng = np.random.default_rng(20)
    lin = lnn.Linear(5, 3)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    g = rng.standard_normal((4, 3)).astype(np.float32)
    lin.bias.requires_grad_(False)
    lin(lincore.tensor(x)).backward(lincore.tensor(g))
    assert lin.bias.grad is None
    assert_linear_close(grad_of(lin.weight), g.T, x.T)


ACT_SAMPLE = np.concatenate([np.linspace(-6, 6, 49), [0.0, -1e-8, 1e-8, -30.0, 30.0]])


@pytest.mark.parametrize("dt", ["f32", "f64"])
@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_activation_backward_against_torch(torch, isa, act, dt):
    """Each implementation evaluates f'(z) at the same z: within R_d (see ChainBound) plus the
    product's rounding, of the float64 formula; the same bound checks torch."""
    spec = ACTIVATIONS[act]
    u = UNIT_ROUNDOFF[np.dtype(NP[dt])]
    z = ACT_SAMPLE.astype(NP[dt]).reshape(6, 9)
    g = np.random.default_rng(21).standard_normal(z.shape).astype(NP[dt])
    lz, tz = lc_leaf(z), t_leaf(torch, z)
    lmod, tmod = spec.lc(), spec.th(torch.nn)
    ly, ty = lmod(lz), tmod(tz)
    assert node_name(ly) == node_name(ty)
    ly.backward(lincore.tensor(g))
    ty.backward(torch.tensor(g))
    z64 = z.astype(np.float64)
    d = spec.df(z64)
    if spec.jump:
        rd = 2 * u * np.abs(d)
    else:
        rd = 8 * u * spec.dmag(z64)
    ref = g * d
    tol = np.abs(g) * rd + 2 * u * np.abs(ref) + SMALLEST_SUBNORMAL[np.dtype(NP[dt])]
    assert_within(grad_of(lz), ref, tol, f"lincore {act}")
    assert_within(tz.grad.numpy(), ref, tol, f"torch {act}")
    # forward values too, with the activation's own rounding R (ChainBound)
    fz = spec.f(z64)
    ftol = (
        2 * u * np.abs(fz)
        if spec.jump
        else 8 * u * np.maximum(np.maximum(np.abs(fz), np.abs(z64)), 1.0)
    )
    assert_within(ly.detach().numpy(), fz, ftol, f"lincore {act} forward")


class Times2(lnn.Module):
    """A user's Python module: splits a Sequential into compiled segments."""

    def forward(self, x):
        return x * 2


class TTimes2:
    """The torch twin of Times2 (made lazily, so that torch is only needed where used)."""

    @staticmethod
    def make(torch):
        class Times2(torch.nn.Module):
            def forward(self, x):
                return x * 2

        return Times2()


STACKS = {
    "lin": [(13, 5, True)],
    "lin-relu-lin": [(13, 16, True), "relu", (16, 3, True)],
    "lin-tanh-lin-sigmoid": [(12, 17, True), "tanh", (17, 32, False), "sigmoid"],
    "deep-gelu": [
        (16, 12, True),
        "gelu",
        (12, 12, True),
        "gelu_tanh",
        (12, 33, True),
        "leaky0.2",
        (33, 4, True),
    ],
    "nobias-relu": [(7, 9, False), "relu", (9, 1, False)],
    "mixed-python": [(13, 16, True), "relu", "times2", (16, 12, True), "tanh", (12, 3, True)],
    "python-first": ["times2", (5, 8, True), "sigmoid", (8, 2, False)],
    "zero-in": [(0, 5, True), "relu", (5, 3, True)],
}


def graph_nodes(t):
    """The recorded nodes (not AccumulateGrad) reachable from t.grad_fn."""
    seen, stack, out = set(), [t.grad_fn], []
    while stack:
        n = stack.pop()
        if n is None or id(n) in seen:
            continue
        seen.add(id(n))
        if type(n).__name__ != "AccumulateGrad":
            out.append(n)
        stack.extend(m for m, _ in n.next_functions)
    return out


def build(spec, lib, dt, torch=None):
    with warnings.catch_warnings():  # torch warns about initializing zero-element tensors
        warnings.simplefilter("ignore")
        return _build(spec, lib, dt, torch)


def _build(spec, lib, dt, torch):
    mods = []
    for item in spec:
        if isinstance(item, tuple):
            i, o, b = item
            mods.append(
                lnn.Linear(i, o, bias=b, dtype=LC[dt])
                if lib == "lincore"
                else torch.nn.Linear(
                    i, o, bias=b, dtype={"f32": torch.float32, "f64": torch.float64}[dt]
                )
            )
        elif item == "times2":
            mods.append(Times2() if lib == "lincore" else TTimes2.make(torch))
        else:
            mods.append(
                ACTIVATIONS[item].lc() if lib == "lincore" else ACTIVATIONS[item].th(torch.nn)
            )
    return mods


def in_features(spec):
    return next(item for item in spec if isinstance(item, tuple))[0]


@pytest.mark.parametrize("dt", ["f32", "f64"])
@pytest.mark.parametrize(
    "batch", [(1,), (9,), (2, 3), (0,), ()], ids=lambda b: "x".join(map(str, b)) or "1d"
)
@pytest.mark.parametrize("stack", list(STACKS))
def test_sequential_backward_one_node_vs_layer_by_layer_vs_torch(torch, isa, stack, batch, dt):
    spec = STACKS[stack]
    rng = np.random.default_rng(zlib.crc32(repr((stack, batch, dt)).encode()))
    tmods = build(spec, "torch", dt, torch)
    tseq = torch.nn.Sequential(*tmods)
    lseq = lnn.Sequential(*build(spec, "lincore", dt))
    lseq.load_state_dict({k: v.detach().numpy() for k, v in tseq.state_dict().items()})
    x = rng.standard_normal(batch + (in_features(spec),)).astype(NP[dt])
    layers = chain_layers(list(lseq))
    n_out = [item for item in spec if isinstance(item, tuple)][-1][1]
    g = rng.standard_normal(batch + (n_out,)).astype(NP[dt])
    ref = chain_tolerance(x, layers, NP[dt], g)
    params = list(lseq.parameters())

    # the Sequential
    lx = lc_leaf(x)
    ly = lseq(lx)
    ty = tseq(t_leaf(torch, x))
    assert node_name(ly) == node_name(ty)
    # one node per run of built-in layers, one per op of the Python module
    n_python = spec.count("times2")
    n_runs = sum(
        1 for i, item in enumerate(spec) if item != "times2" and (i == 0 or spec[i - 1] == "times2")
    )
    assert len(graph_nodes(ly)) == n_runs + n_python
    if n_python == 0:  # the single node's edges: the input first, then every parameter
        edges = [n for n, _ in ly.grad_fn.next_functions if n is not None]
        assert all(type(n).__name__ == "AccumulateGrad" for n in edges)
        variables = [n.variable for n in edges]
        assert variables[0] is lx
        assert len(variables) == 1 + len(params)
        assert all(any(v is p for v in variables) for p in params)
    ly.backward(lincore.tensor(g))
    seq_grads = [grad_of(lx)] + [grad_of(p) for p in params]
    lseq.zero_grad()

    # the same layers called one by one: a node per op
    lx2 = lc_leaf(x)
    h = lx2
    for mod in lseq:
        h = mod(h)
    assert node_name(h) == node_name(ly)
    h.backward(lincore.tensor(g))
    one_by_one = [grad_of(lx2)] + [grad_of(p) for p in params]

    # torch
    tx = t_leaf(torch, x)
    tseq(tx).backward(torch.tensor(g))
    torch_grads = [tx.grad.numpy()] + [p.grad.numpy() for p in tseq.parameters()]

    expected = [ref["dx"]]
    for dw, edw, db, edb in ref["params"]:
        expected.append((dw, edw))
        if db is not None:
            expected.append((db, edb))
    assert len(expected) == len(seq_grads)
    assert_within(ly.detach().numpy(), *ref["y"], "sequential forward")
    for who, grads in (
        ("sequential", seq_grads),
        ("one by one", one_by_one),
        ("torch", torch_grads),
    ):
        for i, (got, (want, tol)) in enumerate(zip(grads, expected)):
            assert got.dtype == NP[dt]
            assert_within(got, want, tol, f"{who} gradient {i}")


def test_sequential_of_only_activations_records_their_node(torch):
    x = np.array([[-1.0, 0.5], [2.0, -0.25]], np.float32)
    lseq = lnn.Sequential(lnn.Tanh(), lnn.ReLU())
    tseq = torch.nn.Sequential(torch.nn.Tanh(), torch.nn.ReLU())
    lx, tx = lc_leaf(x), t_leaf(torch, x)
    ly, ty = lseq(lx), tseq(tx)
    assert node_name(ly) == node_name(ty) == "ReluBackward0"
    assert repr(ly) == lc_repr(repr(ty))
    ly.sum().backward()
    ty.sum().backward()
    d = np.where(np.tanh(x.astype(np.float64)) > 0, 1 - np.tanh(x.astype(np.float64)) ** 2, 0)
    assert_within(grad_of(lx), d, 8 * UNIT_ROUNDOFF[np.dtype(np.float32)] * 2)


def test_sequential_input_without_grad_still_trains_parameters():
    model = lnn.Sequential(lnn.Linear(4, 3), lnn.ReLU(), lnn.Linear(3, 1))
    x = lincore.randn(5, 4)
    y = model(x)
    assert y.grad_fn.next_functions[0][0] is None  # no edge for the input
    y.sum().backward()
    assert x.grad is None and all(p.grad is not None for p in model.parameters())


def test_sequential_with_frozen_parameter():
    model = lnn.Sequential(lnn.Linear(4, 3), lnn.Tanh(), lnn.Linear(3, 2))
    model[0].weight.requires_grad_(False)
    model(lincore.randn(5, 4)).sum().backward()
    assert model[0].weight.grad is None
    assert model[0].bias.grad is not None and model[2].weight.grad is not None


# Linear and a native Sequential run decide in C++ whether to record (reading each tensor's
# requires_grad), so every combination is checked here: nothing recorded when nothing requires
# grad, and a graph that reaches exactly the tensors that do.
FROZEN_MODELS = {
    "Linear": lambda: lnn.Linear(4, 3),
    "Linear no bias": lambda: lnn.Linear(4, 3, bias=False),
    "F.linear": lambda: _FunctionalLinear(),
    "Sequential": lambda: lnn.Sequential(lnn.Linear(4, 3), lnn.ReLU(), lnn.Linear(3, 2)),
    "Sequential in two runs": lambda: lnn.Sequential(
        lnn.Linear(4, 3), _PyModule(), lnn.Linear(3, 2), lnn.Tanh()
    ),
}


class _FunctionalLinear(lnn.Module):
    def __init__(self):
        super().__init__()
        self.inner = lnn.Linear(4, 3)

    def forward(self, x):
        return LF.linear(x, self.inner.weight, self.inner.bias)


class _PyModule(lnn.Module):
    def forward(self, x):
        return x * 1.0


@pytest.mark.parametrize("shape", [(4,), (5, 4), (2, 5, 4)])
@pytest.mark.parametrize("input_grad", [False, True])
@pytest.mark.parametrize("name", list(FROZEN_MODELS))
def test_frozen_layers_record_only_what_requires_grad(name, input_grad, shape):
    model = FROZEN_MODELS[name]()
    model.requires_grad_(False)
    x = lincore.randn(*shape).requires_grad_(input_grad)
    y = model(x)
    assert y.requires_grad == input_grad and (y.grad_fn is not None) == input_grad
    assert ("grad_fn" in repr(y)) == input_grad
    if input_grad:
        y.sum().backward()
        assert x.grad is not None and x.grad.shape == x.shape
    assert all(p.grad is None for p in model.parameters())
    # Unfreezing one weight later records again, from the next call on.
    first = next(model.parameters())
    first.requires_grad_(True)
    y = model(x)
    assert y.requires_grad and y.grad_fn is not None
    y.sum().backward()
    assert first.grad is not None and first.grad.shape == first.shape


def test_recording_bindings_reject_non_tensors():
    lin = lnn.Linear(3, 2)
    with pytest.raises(TypeError, match="argument 'input' must be a lincore Tensor, but got list"):
        lincore._core.linear_forward([1.0, 2.0, 3.0], lin.weight, lin.bias)
    with pytest.raises(TypeError, match="argument 'bias' must be a lincore Tensor, but got int"):
        lincore._core.linear_forward(lincore.randn(3), lin.weight, 7)
    with pytest.raises(TypeError, match="argument 'input' must be a lincore Tensor, but got str"):
        lin._forward("x")
    seq = lnn.Sequential(lnn.Linear(3, 2))
    seq(lincore.randn(3))
    plan = seq.__dict__["_plan"].only
    with pytest.raises(TypeError, match="argument 'input' must be a lincore Tensor, but got str"):
        plan("x")
