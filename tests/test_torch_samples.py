# PyTorch's own test samples run through lincore: the OpInfo entries of
# torch.testing._internal.common_methods_invocations.op_db and the ModuleInfo entries of
# common_modules.module_db (what PyTorch tests itself with), for every function and module lincore
# has, in float32 and float64, each sample once with contiguous inputs and once with strided ones
# (every tensor a non-contiguous view). Per sample: the output (values, shape, dtype), its
# requires_grad, the gradients of every input (and parameter) after out.sum().backward() and after
# out.backward(G) for a random G, and, for torch's error inputs, the exception type.
#
# What lincore does not support is listed in UNSUPPORTED with the reason (and in the README):
# such a sample must still differ (a listed sample that passes fails the test, so the list
# cannot go stale), and every other sample must pass. The counts are in the README, checked by
# test_counts_match_the_readme.
#
# Reference and tolerance: torch on the same values in float64 (a float32 sample is upcast, so
# that torch's own float32 rounding is not held against lincore), within assert_close's tolerance
# for the sample's dtype (float32: rtol 1.3e-6, atol 1e-5; float64: 1e-7, 1e-7). The ops that are
# dot products (DOTS: matmul, linear, sum, mean) add docs/testing.md's bound c * gamma(K + 2) * G,
# G the same op on the magnitudes (for a gradient: its gradient for the upstream |g|), K the
# largest input's size.

from __future__ import annotations

import copy
import functools
import re
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

import lincore
import lincore.nn as lnn
import lincore.nn.functional as LF

torch = pytest.importorskip("torch", reason="the samples are PyTorch's (torch.testing._internal)")
pytest.importorskip("expecttest", reason="torch.testing._internal imports expecttest")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from torch.testing._internal.common_methods_invocations import op_db
    from torch.testing._internal.common_modules import module_db
    from torch.func import functional_call
    from torch.testing._internal.opinfo import core as opinfo_core

DTYPES = (torch.float32, torch.float64)
LC_DTYPE = {
    torch.float32: lincore.float32,
    torch.float64: lincore.float64,
    torch.int64: lincore.int64,
    torch.bool: lincore.bool,
}
TORCH_DTYPE = {v: k for k, v in LC_DTYPE.items()}
LAYOUTS = ("contiguous", "strided")


def _view(x, shape):
    return x.view(shape)


# The OpInfo name (variant names included) -> lincore's form of torch's op. The first group is
# what lincore had when issue #25 was measured; the second, the layers added since (counted apart).
OPS = {
    "add": lincore.add,
    "sub": lincore.sub,
    "mul": lincore.mul,
    "div.no_rounding_mode": lincore.div,
    "div.trunc_rounding": lincore.div,
    "div.floor_rounding": lincore.div,
    "matmul": lincore.matmul,
    "nn.functional.linear": LF.linear,
    "nn.functional.relu": LF.relu,
    "nn.functional.leaky_relu": LF.leaky_relu,
    "nn.functional.gelu": LF.gelu,
    "sigmoid": lincore.sigmoid,
    "tanh": lincore.tanh,
    "sum": lincore.sum,
    "mean": lincore.mean,
    "reshape": lincore.reshape,
    "view": _view,  # a method only, in PyTorch too (its OpInfo calls x.view(shape))
    "flatten": lincore.flatten,
    "transpose": lincore.transpose,
    "nn.functional.mse_loss": LF.mse_loss,
    "nn.functional.l1_loss": LF.l1_loss,
    "nn.functional.cross_entropy": LF.cross_entropy,
    "nn.functional.binary_cross_entropy_with_logits": LF.binary_cross_entropy_with_logits,
}
NEW_OPS = {
    "softmax": lincore.softmax,
    "softmax.with_dtype": lincore.softmax,
    "log_softmax": lincore.log_softmax,
    "log_softmax.with_dtype": lincore.log_softmax,
    "nn.functional.layer_norm": LF.layer_norm,
    "nn.functional.dropout": LF.dropout,
}
MODULES = (
    "Linear",
    "ReLU",
    "LeakyReLU",
    "GELU",
    "Sigmoid",
    "Tanh",
    "MSELoss",
    "L1Loss",
    "CrossEntropyLoss",
    "BCEWithLogitsLoss",
)
NEW_MODULES = ("Softmax", "LogSoftmax", "LayerNorm", "Dropout")  # Dropout has no ModuleInfo


# The ops whose outputs (and gradients) are sums of products: compared with the error bound of
# a dot product (docs/testing.md) on top of the elementwise tolerance.
DOTS = {"matmul", "nn.functional.linear", "sum", "mean", "Linear"}


def _opinfo_name(op):
    return op.name + ("." + op.variant_test_name if op.variant_test_name else "")


OPINFOS = {_opinfo_name(op): op for op in op_db if _opinfo_name(op) in {**OPS, **NEW_OPS}}
MODULEINFOS = {
    m.module_cls.__name__: m for m in module_db if m.module_cls.__name__ in MODULES + NEW_MODULES
}

# What lincore does not support: (OpInfo or module name, predicate on the sample's
# (args, kwargs) after the input, reason). Empty when everything in scope is supported; see the
# README ("Parity with PyTorch's own test samples") for what is out of scope and why.
UNSUPPORTED: list = []


def _unsupported_reason(name, args, kwargs):
    for entry_name, pred, reason in UNSUPPORTED:
        if entry_name == name and pred(args, kwargs):
            return reason
    return None


# --- conversion ------------------------------------------------------------------------------


def _to_lincore(v, strided):
    """torch values -> lincore's: tensors become leaves with the same values, dtype and
    requires_grad (strided: a non-contiguous view of a larger buffer); dtypes map."""
    if isinstance(v, torch.Tensor):
        a = v.detach().numpy()
        if strided:
            base = np.zeros(a.shape + (2,), a.dtype)
            base[..., 1] = a
            t = lincore.tensor(base)[..., 1].detach()
            assert a.size <= 1 or not t.is_contiguous()
        else:
            t = lincore.tensor(a.copy())
        if v.requires_grad:
            t.requires_grad_(True)
        return t
    if isinstance(v, torch.dtype):
        return LC_DTYPE[v]
    if isinstance(v, torch.Size):
        return tuple(v)
    if isinstance(v, (list, tuple)):
        return type(v)(_to_lincore(x, strided) for x in v)
    if isinstance(v, dict):
        return {k: _to_lincore(x, strided) for k, x in v.items()}
    return v


def _fresh(v):
    """A copy of torch's sample values: new leaves, so that runs do not share gradients."""
    if isinstance(v, torch.Tensor):
        return v.detach().clone().requires_grad_(v.requires_grad)
    if isinstance(v, (list, tuple)) and not isinstance(v, torch.Size):
        return type(v)(_fresh(x) for x in v)
    if isinstance(v, dict):
        return {k: _fresh(x) for k, x in v.items()}
    return v


def _tensors(v):
    if isinstance(v, (torch.Tensor, lincore.Tensor)):
        return [v]
    if isinstance(v, (list, tuple)):
        return [t for x in v for t in _tensors(x)]
    if isinstance(v, dict):
        return [t for x in v.values() for t in _tensors(x)]
    return []


class Differs(AssertionError):
    """lincore's result is not torch's."""


TOLERANCE = {torch.float32: (1.3e-6, 1e-5), torch.float64: (1e-7, 1e-7)}  # (rtol, atol)


def _compare(what, lc, ref, dtype, bound=None):
    """lincore's tensor against torch's reference (computed in float64 for float32 samples, so
    that torch's own float32 rounding is not held against lincore), with the tolerance of the
    expected dtype, plus bound (a dot product's error bound) where given."""
    if not isinstance(lc, lincore.Tensor):
        raise Differs(f"{what}: lincore gave {type(lc).__name__}, torch a tensor")
    if tuple(lc.shape) != tuple(ref.shape):
        raise Differs(f"{what}: shape {tuple(lc.shape)}, torch {tuple(ref.shape)}")
    if TORCH_DTYPE[lc.dtype] != dtype:
        raise Differs(f"{what}: dtype {lc.dtype}, torch {dtype}")
    rtol, atol = TOLERANCE.get(dtype, (0, 0))
    actual = torch.from_numpy(np.array(lc.detach().numpy()))
    expected = ref.detach()
    if dtype.is_floating_point:
        actual, expected = actual.double(), expected.double()
    if bound is not None:
        atol = atol + bound.detach().double()
        bad = ~(((actual - expected).abs() <= atol + rtol * expected.abs()) | actual.isnan())
        if bad.any() or not torch.equal(actual.isnan(), expected.isnan()):
            raise Differs(f"{what}: {actual} differs from {expected} beyond the bound {atol}")
        return
    try:
        torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, equal_nan=True)
    except AssertionError as e:
        raise Differs(f"{what}: {e}") from None


def _abs(v):
    """|v| for floating point tensors (the magnitudes a dot product's error bound is made of)."""
    if isinstance(v, torch.Tensor):
        if not v.dtype.is_floating_point:
            return v
        return v.detach().abs().requires_grad_(v.requires_grad)
    if isinstance(v, (list, tuple)) and not isinstance(v, torch.Size):
        return type(v)(_abs(x) for x in v)
    if isinstance(v, dict):
        return {k: _abs(x) for k, x in v.items()}
    return v


def _up(v):
    """float32 tensors -> float64 (the reference run of a float32 sample)."""
    if isinstance(v, torch.Tensor):
        if v.dtype != torch.float32:
            return v
        return v.detach().double().requires_grad_(v.requires_grad)
    if isinstance(v, (list, tuple)) and not isinstance(v, torch.Size):
        return type(v)(_up(x) for x in v)
    if isinstance(v, dict):
        return {k: _up(x) for k, x in v.items()}
    return v


def _check_grads(what, lc_out, lc_leaves, ref, g_ref, reset):
    """Gradients of every tensor that requires grad, for the upstream gradient g_ref (None: the
    gradient of out.sum())."""
    ref_out, ref_leaves, abs_out, abs_leaves, gam = ref
    wanted = [(i, t) for i, t in enumerate(ref_leaves) if t.requires_grad]
    if not wanted:
        return
    target = ref_out.sum() if g_ref is None else ref_out
    ref_g = torch.autograd.grad(
        target, [t for _, t in wanted], grad_outputs=g_ref, allow_unused=True
    )
    bounds = [None] * len(wanted)
    if abs_out is not None:  # the same gradients of the product of magnitudes, for |g|
        target = abs_out.sum() if g_ref is None else abs_out
        g_abs = None if g_ref is None else g_ref.abs()
        bounds = torch.autograd.grad(
            target, [abs_leaves[i] for i, _ in wanted], grad_outputs=g_abs, allow_unused=True
        )
        bounds = [None if b is None else gam * b for b in bounds]
    reset()
    if g_ref is None:
        lc_out.sum().backward()
    else:
        lc_out.backward(_to_lincore(g_ref.to(TORCH_DTYPE[lc_out.dtype]), False))
    for (i, t), tg, bound in zip(wanted, ref_g, bounds):
        lg = lc_leaves[i].grad
        tg = torch.zeros_like(t) if tg is None else tg
        if lg is None:
            raise Differs(f"{what}: no gradient for tensor {i} (torch's: {tg})")
        dtype = TORCH_DTYPE[lc_leaves[i].dtype]
        _compare(f"{what}, gradient of tensor {i}", lg, tg, dtype, bound)


def _run_pair(what, th_call, lc_call, th_values, lc_values, dropout=False, params=None, dot=False):
    """Runs torch's call and lincore's on the same values; raises Differs on any difference.
    params: (reference parameters, lincore's, reset, torch's float64 call) for a module: the
    parameters' gradients are compared too; reset clears lincore's between the two backward
    passes. Exceptions, warnings, requires_grad, shapes and dtypes are torch's in the sample's
    dtype; values and gradients come from the float64 reference run."""
    ref_params, lc_params, reset, ref_call, abs_call = params or (
        (),
        (),
        lambda: None,
        th_call,
        None,
    )
    th_vals = _fresh(th_values)
    with warnings.catch_warnings(record=True) as th_warns:
        warnings.simplefilter("always")
        try:
            th_out = th_call(th_vals)
            th_exc = None
        except Exception as e:  # torch refusing the sample: lincore must raise the same type
            th_exc = e
    with warnings.catch_warnings(record=True) as lc_warns:
        warnings.simplefilter("always")
        try:
            lc_out = lc_call(lc_values)
        except Exception as e:
            if th_exc is not None and isinstance(e, type(th_exc)):
                return
            raise Differs(f"{what}: lincore raised {type(e).__name__}: {e}") from e
    if th_exc is not None:
        raise Differs(f"{what}: torch raised {type(th_exc).__name__}, lincore did not")
    if bool(th_warns) != bool(lc_warns):
        raise Differs(
            f"{what}: warnings {[str(w.message) for w in lc_warns]}, "
            f"torch {[str(w.message) for w in th_warns]}"
        )
    if lc_out.requires_grad != th_out.requires_grad:
        raise Differs(f"{what}: requires_grad {lc_out.requires_grad}, torch {th_out.requires_grad}")
    lc_leaves = _tensors(lc_values) + list(lc_params)
    if dropout:
        _check_dropout(what, lc_out, lc_leaves, th_out)
        return
    dtype = th_out.dtype
    # A dot product's error bound (docs/testing.md): c * gamma(K + 2) * G, G the same product
    # of the magnitudes (and its gradients those of |g|), K at most the largest input's size.
    k = max([t.numel() for t in _tensors(th_values)] + [p.numel() for p in ref_params] + [1])
    u = 2.0**-24 if dtype == torch.float32 else 2.0**-53
    gam = 2 * (k + 2) * u / (1 - (k + 2) * u)

    def reference():
        vals = _fresh(_up(th_values))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out, leaves = ref_call(vals), _tensors(vals) + list(ref_params)
            if not dot:
                return out, leaves, None, None, gam
            abs_vals = _fresh(_up(_abs(th_values)))
            abs_params = [p.detach().abs().requires_grad_(True) for p in ref_params]
            abs_out = ref_call(abs_vals) if not abs_params else abs_call(abs_vals, abs_params)
            return out, leaves, abs_out, _tensors(abs_vals) + abs_params, gam

    ref = reference()
    _compare(what, lc_out, ref[0], dtype, None if ref[2] is None else gam * ref[2])
    if not th_out.requires_grad:
        return
    _check_grads(what + " (sum)", lc_out, lc_leaves, ref, None, reset)
    # backward(G): a fresh forward on fresh leaves, with a random upstream gradient
    ref = reference()
    ref_out = ref[0]
    lc_values = _relead(lc_values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lc_out = lc_call(lc_values)
    lc_leaves = _tensors(lc_values) + list(lc_params)
    g = np.random.default_rng(len(what)).standard_normal(tuple(ref_out.shape))
    g = torch.from_numpy(g).to(dtype).to(ref_out.dtype)
    _check_grads(what + " (G)", lc_out, lc_leaves, ref, g, reset)


def _relead(v):
    """The same lincore values as new leaves (grads cleared), keeping their layout."""
    if isinstance(v, lincore.Tensor):
        t = v.detach()
        return t.requires_grad_(True) if v.requires_grad else t
    if isinstance(v, (list, tuple)):
        return type(v)(_relead(x) for x in v)
    if isinstance(v, dict):
        return {k: _relead(x) for k, x in v.items()}
    return v


def _check_dropout(what, lc_out, lc_leaves, th_out):
    """Dropout draws from each library's own generator: each output element is 0 or x / (1 - p)
    (the same p for all, found from the output), and the input's gradient is the same mask."""
    x = np.asarray(lc_leaves[0].detach().numpy(), np.float64)
    y = np.asarray(lc_out.detach().numpy(), np.float64)
    if y.shape != tuple(th_out.shape) or TORCH_DTYPE[lc_out.dtype] != th_out.dtype:
        raise Differs(f"{what}: shape/dtype {y.shape} {lc_out.dtype}, torch {th_out.shape}")
    kept = y != 0
    scale = np.divide(y, x, out=np.ones_like(y), where=kept & (x != 0))
    s = scale[kept & (x != 0)]
    if s.size and not np.allclose(s, s[0], rtol=1e-6):
        raise Differs(f"{what}: kept elements are not x times one scale: {s}")
    if lc_out.requires_grad:
        lc_out.sum().backward()
        gx = np.asarray(lc_leaves[0].grad.numpy(), np.float64)
        expect = np.where(kept | (x == 0) & (gx != 0), s[0] if s.size else 1.0, 0.0)
        if not np.allclose(gx, expect, rtol=1e-6):
            raise Differs(f"{what}: gradient {gx} is not the output's mask {expect}")


# --- the runs --------------------------------------------------------------------------------


def _outcome(name, args, kwargs, run):
    """'pass', ('unsupported', reason) or ('differs', message); a listed sample that passes is
    'stale'."""
    reason = _unsupported_reason(name, args, kwargs)
    try:
        run()
    except Differs as e:
        return ("unsupported", reason) if reason else ("differs", str(e))
    return ("stale", reason) if reason else "pass"


def _op_samples(name):
    """Every sample of one OpInfo: (description, outcome)."""
    op, fn = OPINFOS[name], {**OPS, **NEW_OPS}[name]
    results = []
    for dtype in DTYPES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            samples = list(op.sample_inputs("cpu", dtype, requires_grad=op.supports_autograd))
        for i, s in enumerate(samples):
            th_values = [s.input, list(s.args), dict(s.kwargs)]
            for layout in LAYOUTS:
                what = f"{name} {dtype} #{i} {layout}: {s.summary()}"
                lc_values = _to_lincore(th_values, layout == "strided")
                results.append(
                    (
                        what,
                        _outcome(
                            name,
                            s.args,
                            s.kwargs,
                            functools.partial(
                                _run_pair,
                                what,
                                lambda v: op(v[0], *v[1], **v[2]),
                                lambda v: fn(v[0], *v[1], **v[2]),
                                th_values,
                                lc_values,
                                name == "nn.functional.dropout",
                                None,
                                name in DOTS,
                            ),
                        ),
                    )
                )
    for i, e in enumerate(_error_inputs(op)):
        s = e.sample_input
        what = f"{name} error input #{i}: {e.error_type.__name__} {e.error_regex!r}"
        results.append(
            (what, _outcome(name, s.args, s.kwargs, functools.partial(_run_error, what, fn, e)))
        )
    return results


def _error_inputs(op):
    if op.error_inputs_func is None:  # this OpInfo has no error inputs
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(op.error_inputs("cpu"))


def _run_error(what, fn, e):
    s = e.sample_input
    v = _to_lincore([s.input, list(s.args), dict(s.kwargs)], False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn(v[0], *v[1], **v[2])
    except e.error_type:
        return
    except Exception as got:
        raise Differs(f"{what}: lincore raised {type(got).__name__}: {got}") from got
    raise Differs(f"{what}: lincore raised nothing")


def _module_pair(cls_name, dtype, mi, strided, what):
    th_cls = getattr(torch.nn, cls_name)
    lc_cls = getattr(lnn, cls_name)
    c_args, c_kwargs = mi.constructor_input.args, mi.constructor_input.kwargs
    th_m = th_cls(*c_args, **c_kwargs).to(dtype)
    lc_m = lc_cls(*_to_lincore(list(c_args), False), **_to_lincore(dict(c_kwargs), False))
    lc_m = lc_m.to(LC_DTYPE[dtype])
    params = {k: lincore.tensor(v.detach().numpy().copy()) for k, v in th_m.named_parameters()}
    if params:
        lc_m.load_state_dict(params)
    f_args, f_kwargs = list(mi.forward_input.args), dict(mi.forward_input.kwargs)
    ref_m = copy.deepcopy(th_m).double()  # the float64 reference

    def th_call(v):
        return th_m(*v[0], **v[1])

    def lc_call(v):
        return lc_m(*v[0], **v[1])

    # The parameters join the compared tensors: their gradients are checked as the inputs' are.
    th_values = [f_args, f_kwargs]
    lc_values = _to_lincore(th_values, strided)

    lc_named = dict(lc_m.named_parameters())
    lc_params = [lc_named[k] for k, _ in th_m.named_parameters()]
    ref_params = [p for _, p in ref_m.named_parameters()]

    def ref_call(v):
        return ref_m(*v[0], **v[1])

    def abs_call(v, abs_params):
        names = [k for k, _ in ref_m.named_parameters()]
        return functional_call(ref_m, dict(zip(names, abs_params)), tuple(v[0]), v[1])

    params = (ref_params, lc_params, lambda: lc_m.zero_grad(), ref_call, abs_call)
    return functools.partial(
        _run_pair, what, th_call, lc_call, th_values, lc_values, False, params, cls_name in DOTS
    )


def _module_samples(cls_name):
    m = MODULEINFOS[cls_name]
    results = []
    for dtype in DTYPES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inputs = m.module_inputs_func(
                m, device="cpu", dtype=dtype, requires_grad=True, training=True
            )
        for i, mi in enumerate(inputs):
            for layout in LAYOUTS:
                what = f"nn.{cls_name} {dtype} #{i} {layout}: {mi.desc or ''}"
                run = _module_pair(cls_name, dtype, mi, layout == "strided", what)
                key = (mi.constructor_input.args, mi.forward_input.args)
                results.append((what, _outcome(cls_name, key, mi.constructor_input.kwargs, run)))
    if m.module_error_inputs_func is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            errors = m.module_error_inputs_func(
                m, device="cpu", dtype=torch.float32, requires_grad=True, training=True
            )
        for i, e in enumerate(errors):
            what = f"nn.{cls_name} error input #{i}: {e.error_type.__name__} {e.error_regex!r}"
            mi = e.module_error_input
            run = functools.partial(_run_module_error, cls_name, mi, e, what)
            key = (mi.constructor_input.args, mi.forward_input.args)
            results.append((what, _outcome(cls_name, key, mi.constructor_input.kwargs, run)))
    return results


def _run_module_error(cls_name, mi, e, what):
    """torch raises e.error_type at construction or in forward: lincore must raise the same
    type at either."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ci, fi = mi.constructor_input, mi.forward_input
            lc_m = getattr(lnn, cls_name)(
                *_to_lincore(list(ci.args), False), **_to_lincore(dict(ci.kwargs), False)
            )
            lc_m(*_to_lincore(list(fi.args), False), **_to_lincore(dict(fi.kwargs), False))
    except e.error_type:
        return
    except Exception as got:
        raise Differs(f"{what}: lincore raised {type(got).__name__}: {got}") from got
    raise Differs(f"{what}: lincore raised nothing")


@functools.lru_cache(maxsize=None)
def results_of(name):
    # One torch thread: these samples are tiny, and on a busy 2-core machine torch's thread pool
    # costs more than it gives. extract_test_fn crawls the stack with inspect.stack() (reading
    # every frame's source file) for the unittest.TestCase of PyTorch's own runs, which this
    # module has none of: it would find nothing, slowly.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with mock.patch.object(opinfo_core, "extract_test_fn", lambda: None):
            return tuple(_module_samples(name) if name in MODULEINFOS else _op_samples(name))
    finally:
        torch.set_num_threads(threads)


def _check(name):
    bad = [f"{w}: {o}" for w, o in results_of(name) if o != "pass" and o[0] != "unsupported"]
    assert not bad, "\n".join(bad[:20]) + f"\n({len(bad)} in all)"


@pytest.mark.parametrize("name", sorted(n for n in OPINFOS if n in OPS))
def test_opinfo_samples(name):
    _check(name)


@pytest.mark.parametrize("name", sorted(n for n in MODULEINFOS if n in MODULES))
def test_moduleinfo_samples(name):
    _check(name)


@pytest.mark.parametrize("name", sorted(n for n in OPINFOS if n in NEW_OPS))
def test_new_layer_opinfo_samples(name):
    _check(name)


@pytest.mark.parametrize("name", sorted(n for n in MODULEINFOS if n in NEW_MODULES))
def test_new_layer_moduleinfo_samples(name):
    _check(name)


def test_every_op_and_module_has_samples():
    # An entry renamed in a later torch must not drop out of the run unnoticed.
    assert set(OPINFOS) == set(OPS) | set(NEW_OPS)
    assert set(MODULEINFOS) == set(MODULES) | set(NEW_MODULES) - {"Dropout"}


def counts(names):
    """(run, pass, not supported, differ) over the samples of names."""
    outcomes = [o for n in names for _, o in results_of(n)]
    passed = sum(o == "pass" for o in outcomes)
    unsupported = sum(o != "pass" and o[0] == "unsupported" for o in outcomes)
    return len(outcomes), passed, unsupported, len(outcomes) - passed - unsupported


README_LINE = re.compile(
    r"(?P<what>PyTorch's own test samples|The layers added since)[^:]*: "
    r"(?P<run>\d+) run, (?P<pass>\d+) pass, (?P<unsupported>\d+)\s+not\s+supported"
)


def test_counts_match_the_readme():
    readme = Path(__file__).resolve().parents[1] / "README.md"
    if not readme.exists():
        pytest.skip("README.md is not beside the tests (a wheel's test run)")
    found = {m["what"]: m for m in README_LINE.finditer(readme.read_text())}
    groups = {
        "PyTorch's own test samples": [n for n in OPINFOS if n in OPS] + list(MODULES),
        "The layers added since": [n for n in OPINFOS if n in NEW_OPS]
        + [n for n in NEW_MODULES if n in MODULEINFOS],
    }
    for what, names in groups.items():
        run, passed, unsupported, differ = counts(names)
        assert differ == 0
        assert passed >= 0.95 * run, (what, run, passed)
        m = found.get(what)
        assert m is not None, f"the README states no count for {what!r}"
        got = (int(m["run"]), int(m["pass"]), int(m["unsupported"]))
        measured = (run, passed, unsupported)
        assert got == measured, f"README {got}, measured {measured}"
