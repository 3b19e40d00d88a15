# lincore.optimize, the drop-in for PyTorch code: a swapped model computes what lincore's own
# native run computes (bitwise: it is the same run) and what torch computes (within torch's
# tolerance), forward and backward; keeps its shape for the code around it; follows every change
# to its parameters without repacking unchanged weights; falls back to torch for anything lincore
# does not run; trains with torch's optimizers; pickles. Also torch's own samples (OpInfo for
# F.linear, ModuleInfo for the layers) run through swapped modules.

import copy
import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import lincore

torch = pytest.importorskip("torch", reason="the drop-in needs torch (the test extra pins it)")
tnn = torch.nn


def mlp(dtype=torch.float32, widths=(20, 16, 12, 5), act=tnn.ReLU):
    torch.manual_seed(0)
    layers = []
    for i in range(len(widths) - 1):
        layers.append(tnn.Linear(widths[i], widths[i + 1], dtype=dtype))
        if i < len(widths) - 2:
            layers.append(act())
    return tnn.Sequential(*layers)


def native(model, x):
    """The same model as a native lincore run (weights copied), on x: what the swapped model
    must reproduce bit for bit."""
    lm = lincore.from_torch(model)
    with lincore.no_grad():
        return np.asarray(lm(lincore.tensor(x.detach().numpy())))


def bits(t):
    return np.asarray(t.detach().numpy()).tobytes()


MODELS = {
    "relu-mlp": lambda d: mlp(d),
    "every-activation": lambda d: tnn.Sequential(
        tnn.Linear(20, 16, dtype=d),
        tnn.LeakyReLU(0.2),
        tnn.Linear(16, 16, dtype=d),
        tnn.GELU(),
        tnn.Linear(16, 16, dtype=d),
        tnn.GELU("tanh"),
        tnn.Linear(16, 8, dtype=d),
        tnn.Sigmoid(),
        tnn.Identity(),
        tnn.Linear(8, 8, bias=False, dtype=d),
        tnn.Tanh(),
    ),
    "layernorm-softmax": lambda d: tnn.Sequential(
        tnn.Linear(20, 16, dtype=d),
        tnn.LayerNorm(16, dtype=d),
        tnn.ReLU(),
        tnn.Dropout(0.3),
        tnn.Linear(16, 6, dtype=d),
        tnn.LogSoftmax(dim=-1),
    ),
    "nested": lambda d: tnn.Sequential(
        tnn.Linear(20, 12, dtype=d),
        tnn.Sequential(tnn.ReLU(), tnn.Linear(12, 12, dtype=d), tnn.Sequential(tnn.Tanh())),
        tnn.Linear(12, 4, dtype=d),
        tnn.Softmax(dim=-1),
    ),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("shape", [(1, 20), (7, 20), (2, 3, 20), (0, 20)], ids=str)
def test_forward_is_lincores_run_and_torchs_result(name, dtype, shape):
    torch.manual_seed(1)
    model = MODELS[name](dtype).eval()
    opt = lincore.optimize(model)
    x = torch.randn(*shape, dtype=dtype)
    with torch.no_grad():
        y, want = opt(x), model(x)
    assert type(y) is torch.Tensor and y.dtype == dtype and y.shape == want.shape
    assert bits(y) == native(model, x).tobytes()
    torch.testing.assert_close(y, want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(MODELS))
def test_gradients_match_torch(name, dtype):
    torch.manual_seed(2)
    model = MODELS[name](dtype).eval()
    opt = lincore.optimize(model)
    x = torch.randn(5, 20, dtype=dtype, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    g = torch.randn(5, model(x).shape[-1], dtype=dtype)
    y = opt(x)
    assert y.requires_grad and type(y.grad_fn).__name__ == "_RunFunctionBackward"
    y.backward(g)
    model(x2).backward(g)
    torch.testing.assert_close(x.grad, x2.grad)
    for (n1, p1), (n2, p2) in zip(opt.named_parameters(), model.named_parameters()):
        assert n1 == n2
        torch.testing.assert_close(p1.grad, p2.grad, msg=n1)


def test_deep_run_gradients_match_torch():
    # 16 parameters: more than the recorded call's arguments on the stack (dropin.cpp)
    torch.manual_seed(6)
    model = tnn.Sequential(*[m for _ in range(8) for m in (tnn.Linear(6, 6), tnn.Tanh())])
    opt = lincore.optimize(copy.deepcopy(model))
    x = torch.randn(4, 6, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    opt(x).square().sum().backward()
    model(x2).square().sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    for p, q in zip(opt.parameters(), model.parameters()):
        torch.testing.assert_close(p.grad, q.grad)


def test_second_derivatives_match_torch():
    # A gradient penalty: backward(create_graph=True) through a swapped run, then backward again.
    torch.manual_seed(7)
    model = MODELS["every-activation"](torch.float64)
    opt = lincore.optimize(copy.deepcopy(model))
    x0 = torch.randn(5, 20, dtype=torch.float64)
    for net in (opt, model):
        x = x0.clone().requires_grad_()
        (g,) = torch.autograd.grad(net(x).square().sum(), x, create_graph=True)
        g.square().sum().backward()
    for p, q in zip(opt.parameters(), model.parameters()):
        torch.testing.assert_close(p.grad, q.grad)
    small = tnn.Sequential(tnn.Linear(3, 4), tnn.Tanh(), tnn.Linear(4, 2)).double()
    swapped = lincore.optimize(small)
    names = [n for n, _ in swapped.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in swapped.parameters())

    def f(x, *ps):  # as in test_gradcheck_float64
        return torch.func.functional_call(swapped, {n: p.clone() for n, p in zip(names, ps)}, (x,))

    xs = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(f, (xs, *params))


def test_input_shapes_and_strides():
    model = mlp().eval()
    opt = lincore.optimize(model)
    base = torch.randn(20, 14)
    for x in (base.t(), base.t()[::2], torch.randn(20).expand(3, 20), torch.randn(20)):
        with torch.no_grad():
            assert bits(opt(x)) == native(model, x.contiguous()).tobytes()
            torch.testing.assert_close(opt(x), model(x))


def test_gradcheck_float64():
    model = MODELS["every-activation"](torch.float64)
    opt = lincore.optimize(model)
    x = torch.randn(3, 20, dtype=torch.float64, requires_grad=True)
    names = [n for n, _ in opt.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in opt.parameters())

    # The parameters as inputs through functional_call (which puts them in the modules' place),
    # cloned: gradcheck perturbs its inputs through .data, which torch does not version, and a
    # swapped model follows a parameter by its identity, address and version (see the README).
    def f(x, *ps):
        return torch.func.functional_call(opt, {n: p.clone() for n, p in zip(names, ps)}, (x,))

    assert torch.autograd.gradcheck(f, (x, *params))


# --- the model keeps its shape ------------------------------------------------------------------


def test_model_keeps_its_shape():
    model = MODELS["nested"](torch.float32)
    opt = lincore.optimize(model)
    assert repr(opt) == repr(model)
    assert isinstance(opt, tnn.Sequential) and type(opt).__name__ == "Sequential"
    assert [n for n, _ in opt.named_parameters()] == [n for n, _ in model.named_parameters()]
    assert [n for n, _ in opt.named_modules()] == [n for n, _ in model.named_modules()]
    assert list(opt.state_dict()) == list(model.state_dict())
    for k, v in opt.state_dict().items():
        assert torch.equal(v, model.state_dict()[k])
    assert type(opt[0].weight) is tnn.Parameter and opt[0].weight is not model[0].weight
    same = lincore.optimize(model, inplace=True)
    assert same is model and isinstance(model[0].weight, tnn.Parameter)
    assert opt.train() is opt and all(m.training for m in opt.modules())
    opt.eval()
    assert not any(m.training for m in opt.modules())


def test_report_and_restore():
    model = tnn.Sequential(tnn.Linear(4, 4), tnn.ReLU(), tnn.BatchNorm1d(4), tnn.Linear(4, 2))
    opt = lincore.optimize(model)
    rep = lincore.optimize_report(opt)
    assert rep.fused == [["0", "1"], ["3"]]
    assert rep.not_fused[0][0] == "2" and "BatchNorm1d" in rep.not_fused[0][1]
    assert "left to torch: 2" in str(rep)
    x = torch.randn(3, 4)
    opt.eval()
    with torch.no_grad():
        y = opt(x)
    plain = lincore.restore(opt)
    assert plain is opt and type(plain) is tnn.Sequential and "_lincore_runner" not in vars(plain)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), y)


def test_softmax_without_dim_stays_torchs():
    # Its dim depends on the input's dimensions (torch warns that this is deprecated): torch's.
    model = tnn.Sequential(tnn.Linear(4, 4), tnn.Softmax(), tnn.Linear(4, 2))
    opt = lincore.optimize(copy.deepcopy(model))
    rep = lincore.optimize_report(opt)
    assert rep.fused == [["0"], ["2"]] and "without dim" in rep.not_fused[0][1]
    x = torch.randn(3, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.testing.assert_close(opt(x), model(x))


def test_optimize_draws_no_random_numbers():
    model = mlp()
    state = torch.get_rng_state()
    lincore.optimize(model)
    assert torch.equal(state, torch.get_rng_state())


def test_dropout_in_training_uses_torchs_generator():
    torch.manual_seed(3)
    model = tnn.Sequential(tnn.Linear(8, 64), tnn.Dropout(0.5), tnn.Linear(64, 3)).train()
    opt = lincore.optimize(model)
    x = torch.randn(4, 8)
    torch.manual_seed(7)
    y = opt(x)
    torch.manual_seed(7)
    want = model(x)
    torch.testing.assert_close(y, want)
    rep = lincore.optimize_report(opt)
    assert "training mode" in rep.not_fused[0][1]
    opt.eval()
    assert lincore.optimize_report(opt).fused == [["0", "1", "2"]]
    with torch.no_grad():
        torch.testing.assert_close(opt(x), model.eval()(x))


# --- parameters change: lincore follows, and repacks only what changed --------------------------


def _packs(opt):
    """packs_built of each Linear of the first run, in order."""
    run = opt._lincore_runner.segments[0]
    return [m._pack.packs_built for m in run.lincore if hasattr(m, "_pack")]


def test_unchanged_weights_are_never_repacked_and_changed_ones_are():
    model = mlp().eval()
    opt = lincore.optimize(model, inplace=True)
    x = torch.randn(2, 20)
    with torch.no_grad():
        for _ in range(5):
            opt(x)
        assert _packs(opt) == [1, 1, 1]
        model[2].weight.add_(0.5)  # an in-place write: torch bumps its version
        y = opt(x)
        assert _packs(opt) == [1, 2, 1]
        assert bits(y) == native(model, x).tobytes()
        model.load_state_dict(mlp(widths=(20, 16, 12, 5)).state_dict())
        y = opt(x)
        assert _packs(opt) == [2, 3, 2]
        assert bits(y) == native(model, x).tobytes()
        model[4].weight.data = torch.zeros(5, 12)  # new memory, same Parameter object
        torch.testing.assert_close(opt(x), model[4].bias.expand(2, 5))
        model[0].weight = tnn.Parameter(torch.ones(16, 20))  # a new Parameter
        assert bits(opt(x)) == native(model, x).tobytes()


def test_foreign_weights_carry_a_change_signal():
    # Issue #20, requirement 4: a lincore layer over torch memory repacks only after a write.
    w = torch.randn(8, 6)
    view = lincore._core._from_dlpack(torch._C._to_dlpack(w))
    view._owner_reports_writes()
    layer = lincore.nn.Linear(6, 8, bias=False)
    layer.weight = lincore.nn.Parameter(view, requires_grad=False)
    x = lincore.randn(3, 6)
    with lincore.no_grad():
        for _ in range(4):
            layer(x)
        assert layer._pack.packs_built == 1
        w.mul_(2)
        view._bump_version()
        y = layer(x)
        assert layer._pack.packs_built == 2
        np.testing.assert_allclose(np.asarray(y), x.numpy() @ w.numpy().T, rtol=1e-5, atol=1e-6)
    # Without the promise, foreign memory is never trusted: repacked on every call (correct).
    plain = lincore.nn.Linear(6, 8, bias=False)
    plain.weight = lincore.nn.Parameter(
        lincore._core._from_dlpack(torch._C._to_dlpack(w)), requires_grad=False
    )
    with lincore.no_grad():
        plain(x)
        plain(x)
    assert plain._pack.packs_built == 2


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9),
        lambda ps: torch.optim.Adam(ps, lr=1e-2),
        lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
    ],
    ids=["sgd", "adam", "adamw"],
)
def test_twenty_optimizer_steps_match_torch(make_opt):
    model = MODELS["layernorm-softmax"](torch.float64).train()
    twin = copy.deepcopy(model)
    opt_model = lincore.optimize(model, inplace=True)
    o1, o2 = make_opt(opt_model.parameters()), make_opt(twin.parameters())
    s1 = torch.optim.lr_scheduler.StepLR(o1, 5, 0.5)
    s2 = torch.optim.lr_scheduler.StepLR(o2, 5, 0.5)
    loss_fn = tnn.NLLLoss()
    gen = torch.Generator().manual_seed(5)
    for step in range(20):
        x = torch.randn(16, 20, dtype=torch.float64, generator=gen)
        t = torch.randint(0, 6, (16,), generator=gen)
        for m, o, s in ((opt_model, o1, s1), (twin, o2, s2)):
            torch.manual_seed(step)  # the same dropout masks
            o.zero_grad()
            loss_fn(m(x), t).backward()
            o.step()
            s.step()
    for (n, p), q in zip(opt_model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, msg=n)


def test_checkpoints_load_both_ways():
    model = mlp()
    opt = lincore.optimize(model)
    other = mlp(widths=(20, 16, 12, 5))
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(-1)
    opt.load_state_dict(other.state_dict())
    x = torch.randn(3, 20)
    with torch.no_grad():
        torch.testing.assert_close(opt(x), other(x))
    back = mlp()
    back.load_state_dict(opt.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(back(x), opt(x))


def test_pickle_and_deepcopy():
    model = MODELS["layernorm-softmax"](torch.float32).eval()
    opt = lincore.optimize(model)
    x = torch.randn(4, 20)
    with torch.no_grad():
        y = opt(x)
        for copied in (pickle.loads(pickle.dumps(opt)), copy.deepcopy(opt)):
            assert type(copied) is type(opt) and copied is not opt
            assert copied[0].weight is not opt[0].weight
            assert bits(copied(x)) == bits(y)
            assert lincore.optimize_report(copied).fused == lincore.optimize_report(opt).fused


# --- what lincore does not run falls back to torch ------------------------------------------------


def test_calls_lincore_does_not_run_go_to_torch():
    model = mlp().eval()
    opt = lincore.optimize(model)
    with torch.no_grad():
        # another dtype: torch's own error, as without the swap
        with pytest.raises(RuntimeError) as got:
            opt(torch.randn(2, 20, dtype=torch.float64))
        with pytest.raises(RuntimeError) as want:
            model(torch.randn(2, 20, dtype=torch.float64))
        assert str(got.value) == str(want.value)
        # a wrong width: torch's error
        with pytest.raises(RuntimeError, match="mat1 and mat2 shapes cannot be multiplied"):
            opt(torch.randn(2, 19))
        # a half-precision model: torch runs it
        half = lincore.optimize(mlp().to(torch.bfloat16))
        x = torch.randn(2, 20, dtype=torch.bfloat16)
        torch.testing.assert_close(half(x), mlp().to(torch.bfloat16)(x))


def test_hooks_run():
    model = mlp().eval()
    opt = lincore.optimize(model)
    seen = []
    handle = opt[2].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    x = torch.randn(2, 20)
    with torch.no_grad():
        torch.testing.assert_close(opt(x), model(x))
    assert seen == [torch.Size([2, 12])]
    handle.remove()
    outer = []
    opt.register_forward_hook(lambda m, i, o: outer.append(1))
    with torch.no_grad():
        opt(x)
    assert outer == [1]


def test_call_runs_in_c_and_hands_every_other_case_back():
    """A swapped container's call is one C call (dropin.cpp); every case it does not take comes
    back NotImplemented to the Python path, which gives torch's result."""
    from lincore import _core

    model = mlp().eval()
    opt = lincore.optimize(model)
    x = torch.randn(3, 20)
    run = opt._lincore_runner.single
    with torch.no_grad():
        y = _core._dropin_container_forward(opt, x)
        assert type(y) is torch.Tensor and bits(y) == bits(opt(x)) == native(model, x).tobytes()
        assert bits(_core._dropin_forward(run.fast, x)) == bits(y)
        not_taken = {
            "float64 input": torch.randn(3, 20, dtype=torch.float64),
            "a subclass": tnn.Parameter(x.clone(), requires_grad=False),
            "not a tensor": x.numpy(),
            "a sparse tensor": x.to_sparse(),
        }
        for why, arg in not_taken.items():
            assert _core._dropin_container_forward(opt, arg) is NotImplemented, why
            assert _core._dropin_forward(run.fast, arg) is NotImplemented, why
        torch.testing.assert_close(opt(x.to_sparse()), model(x.to_sparse()))
        handle = opt[0].register_forward_pre_hook(lambda m, i: None)
        assert _core._dropin_container_forward(opt, x) is NotImplemented
        handle.remove()
        handle = opt.register_forward_hook(lambda m, i, o: None)
        assert _core._dropin_container_forward(opt, x) is NotImplemented
        handle.remove()
        handle = tnn.modules.module.register_module_forward_hook(lambda m, i, o: None)
        assert _core._dropin_forward(run.fast, x) is NotImplemented
        handle.remove()
        # a parameter replaced: the Python path rebuilds the run, then the C path takes it again
        opt[0].weight = tnn.Parameter(opt[0].weight.detach() * 2)
        assert _core._dropin_forward(run.fast, x) is NotImplemented
        assert bits(opt(x)) == native(opt, x).tobytes()
        y = _core._dropin_container_forward(opt, x)
        assert type(y) is torch.Tensor and bits(y) == native(opt, x).tobytes()
        # written in place: taken, with the new weights
        opt[2].weight.mul_(0.5)
        y = _core._dropin_container_forward(opt, x)
        assert type(y) is torch.Tensor and bits(y) == native(opt, x).tobytes()
    # grad mode: recorded by torch's Function.apply, called from C; the same values
    y = _core._dropin_container_forward(opt, x)
    assert type(y.grad_fn).__name__ == "_RunFunctionBackward"
    assert bits(y.detach()) == native(opt, x).tobytes()
    not_taken = {  # with grad mode on too, and inputs that require grad
        "float64 input": torch.randn(3, 20, dtype=torch.float64, requires_grad=True),
        "a subclass": tnn.Parameter(x.clone()),
        "a sparse tensor": x.to_sparse().requires_grad_(),
    }
    for why, arg in not_taken.items():
        assert _core._dropin_forward(run.fast, arg) is NotImplemented, why
    frozen = lincore.optimize(mlp().eval().requires_grad_(False))
    y = _core._dropin_container_forward(frozen, x)  # nothing requires grad: nothing recorded
    assert type(y) is torch.Tensor and y.grad_fn is None
    with pytest.raises(TypeError, match="fast is a run's tuple"):
        _core._dropin_forward((1, 2), x)
    # a container that is not one run (a BatchNorm in the middle) is never taken
    two = lincore.optimize(tnn.Sequential(tnn.Linear(20, 8), tnn.BatchNorm1d(8), tnn.Linear(8, 2)))
    with torch.no_grad():
        assert _core._dropin_container_forward(two.eval(), x) is NotImplemented


def quantized_native(model, x):
    """model's layers quantized by lincore.quantize_dynamic, on x: what optimize(quantize=)
    must reproduce bit for bit (the same int8 arithmetic)."""
    q = lincore.quantize_dynamic(lincore.from_torch(model))
    with lincore.no_grad():
        return np.asarray(q(lincore.tensor(x.detach().numpy())))


def test_quantize_int8_runs_lincores_int8_layers():
    model = mlp(widths=(20, 32, 16, 5)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = lincore.optimize(model, quantize="int8")
    assert [type(m) for m in opt] == [type(m) for m in model]
    assert lincore.optimize_report(opt).fused == [["0", "1", "2", "3", "4"]]
    for rows in (1, 7):
        x = torch.randn(rows, 20)
        want = quantized_native(model, x).tobytes()
        with torch.no_grad():
            assert bits(opt(x)) == want  # the C path
        y = opt(x)  # grad mode, parameters requiring grad: the Python path, no gradient kept
        assert bits(y) == want and not y.requires_grad
        assert np.abs(y.numpy() - model(x).detach().numpy()).max() < 0.05
    for k, v in opt.state_dict().items():  # the torch weights stay float32, as they were
        assert v.dtype == torch.float32 and torch.equal(v, before[k])
    # a weight written in place: the int8 copy is made again
    with torch.no_grad():
        opt[2].weight.mul_(-1.5)
        x = torch.randn(3, 20)
        assert bits(opt(x)) == quantized_native(opt, x).tobytes()
    x = torch.randn(2, 20, requires_grad=True)
    with pytest.raises(RuntimeError, match="inference-only"):
        opt(x)
    # the same with torch.qint8, and after a pickle round trip
    same = lincore.optimize(model, quantize=torch.qint8)
    again = pickle.loads(pickle.dumps(same))
    x = torch.randn(4, 20)
    with torch.no_grad():
        assert bits(same(x)) == bits(again(x)) == quantized_native(model, x).tobytes()


def test_quantize_option_errors_and_float64_layers():
    model = mlp()
    for bad in ("int4", torch.float16, 8):
        with pytest.raises(ValueError, match="quantize must be None or 'int8'"):
            lincore.optimize(model, quantize=bad, inplace=True)
        assert type(model) is tnn.Sequential
    wide = mlp(dtype=torch.float64)
    opt = lincore.optimize(wide, quantize="int8")
    assert lincore.optimize_report(opt).fused == [["1"], ["3"]]  # the ReLUs alone
    assert "quantize='int8' quantizes float32 layers" in str(lincore.optimize_report(opt))
    x = torch.randn(2, 20, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(opt(x), wide(x))
    # a weight lincore cannot quantize: the error, and the model (inplace) left as it was
    nan = mlp()
    with torch.no_grad():
        nan[2].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        lincore.optimize(nan, quantize="int8", inplace=True)
    assert type(nan) is tnn.Sequential and "_lincore_runner" not in nan.__dict__


def test_functorch_transforms_run_torchs_layers():
    """vmap, grad and jacrev wrap tensors lincore cannot read: the swapped model runs torch's
    own layers under them, with torch's results."""
    model = mlp().eval()
    opt = lincore.optimize(model)
    x = torch.randn(4, 3, 20)
    with torch.no_grad():
        torch.testing.assert_close(torch.func.vmap(opt)(x), torch.func.vmap(model)(x))
    torch.testing.assert_close(torch.func.vmap(opt)(x), torch.func.vmap(model)(x))
    v = torch.randn(20)
    for transform in (torch.func.grad, torch.func.jacrev):
        f = (lambda m: lambda t: m(t).sum()) if transform is torch.func.grad else (lambda m: m)
        torch.testing.assert_close(transform(f(opt))(v), transform(f(model))(v))
    # and the same model outside the transforms is lincore's run again
    y = opt(x[0])
    assert bits(y) == native(model, x[0]).tobytes()


def test_requires_grad_input_with_frozen_parameters():
    model = mlp()
    model.requires_grad_(False)
    opt = lincore.optimize(model)
    x = torch.randn(3, 20, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    opt(x).sum().backward()
    model(x2).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    assert all(p.grad is None for p in opt.parameters())


def test_written_before_backward_raises_as_torch_does():
    model = mlp()
    opt = lincore.optimize(copy.deepcopy(model))
    for net in (model, opt):
        h = torch.randn(3, 20, requires_grad=True) * 1  # not a leaf: it may be written in place
        y = net(h)
        h.add_(1)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()
        y = net(h)
        with torch.no_grad():
            net[2].weight.mul_(2)  # an optimizer step before backward
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()
        net(h).sum().backward()  # recorded again: fine


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_run_without_parameters_records_its_gradient(dtype):
    model = tnn.Sequential(tnn.ReLU(), tnn.Tanh(), tnn.Softmax(dim=-1))
    opt = lincore.optimize(copy.deepcopy(model))
    x = torch.randn(4, 6, dtype=dtype, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    g = torch.randn(4, 6, dtype=dtype)
    y = opt(x)
    assert type(y.grad_fn).__name__ == "_RunFunctionBackward" and y.dtype == dtype
    y.backward(g)
    model(x2).backward(g)
    torch.testing.assert_close(y, model(x2))
    torch.testing.assert_close(x.grad, x2.grad)


def test_bad_arguments_change_nothing():
    model = mlp()
    with pytest.raises(TypeError, match="expected a torch.nn.Module, but got list"):
        lincore.optimize([model])
    with pytest.raises(TypeError, match="inplace must be a bool"):
        lincore.optimize(model, inplace="yes")
    with pytest.raises(TypeError):
        lincore.optimize(model, precision="int8")  # no such option
    with pytest.raises(ValueError, match="quantize must be None or 'int8'"):
        lincore.optimize(model, quantize="int3")
    meta = tnn.Sequential(tnn.Linear(3, 4, device="meta"))
    with pytest.raises(ValueError, match="0.weight is on meta"):
        lincore.optimize(meta, inplace=True)
    assert type(meta) is tnn.Sequential and type(model) is tnn.Sequential
    with pytest.raises(TypeError, match="expected a torch.nn.Module"):
        lincore.restore("model")


def test_threads_follow_torch_unless_set():
    code = textwrap.dedent(
        """
        import torch, lincore
        model = lincore.optimize(torch.nn.Sequential(torch.nn.Linear(4, 4)))
        torch.set_num_threads(1)
        with torch.no_grad():
            model(torch.randn(2, 4))
        print(lincore.get_num_threads())
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("LINCORE_NUM_THREADS",)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1"]
    env["LINCORE_NUM_THREADS"] = "2"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2"]


# --- torch's own samples through swapped modules -------------------------------------------------

common = pytest.importorskip(
    "torch.testing._internal.common_modules",
    reason="torch's ModuleInfo samples need expecttest (in the test extra)",
)
methods = pytest.importorskip("torch.testing._internal.common_methods_invocations")

_LAYERS = (
    tnn.Linear,
    tnn.ReLU,
    tnn.LeakyReLU,
    tnn.GELU,
    tnn.Sigmoid,
    tnn.Tanh,
    tnn.Softmax,
    tnn.LogSoftmax,
    tnn.LayerNorm,
)
MODULE_INFOS = [m for m in common.module_db if m.module_cls in _LAYERS]


def _compare(module, x):
    """module run as torch and swapped into a Sequential: outputs and gradients (of x and every
    parameter) after backward(G) for a random G."""
    twin = copy.deepcopy(module)
    opt = lincore.optimize(tnn.Sequential(module), inplace=True)
    xa = x.detach().clone().requires_grad_(x.requires_grad)
    xb = x.detach().clone().requires_grad_(x.requires_grad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Softmax(dim=None)'s deprecation warning, in both
        ya, yb = opt(xa), twin(xb)
    torch.testing.assert_close(ya, yb)
    if not yb.requires_grad:
        return
    g = torch.randn_like(yb)
    ya.backward(g)
    yb.backward(g)
    if x.requires_grad:
        torch.testing.assert_close(xa.grad, xb.grad)
    for p, q in zip(opt.parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("info", MODULE_INFOS, ids=lambda m: m.module_cls.__name__)
def test_torch_module_info_samples(info, dtype):
    ran = 0
    for training in (False, True):
        for sample in info.module_inputs_func(
            info, device="cpu", dtype=dtype, requires_grad=True, training=training
        ):
            args, kwargs = sample.forward_input.args, sample.forward_input.kwargs
            inputs = list(args) + list(kwargs.values())
            if len(inputs) != 1 or not isinstance(inputs[0], torch.Tensor):
                continue  # a Sequential passes one input on
            torch.manual_seed(0)
            c = sample.constructor_input
            module = info.module_cls(*c.args, **c.kwargs).to(dtype).train(training)
            _compare(module, inputs[0])
            ran += 1
    assert ran > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_torch_opinfo_linear_samples(dtype):
    (info,) = [o for o in methods.op_db if o.name == "nn.functional.linear"]
    ran = 0
    for sample in info.sample_inputs("cpu", dtype, requires_grad=True):
        weight = sample.args[0]
        bias = sample.args[1] if len(sample.args) > 1 else None
        layer = tnn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=dtype)
        with torch.no_grad():
            layer.weight.copy_(weight)
            if bias is not None:
                layer.bias.copy_(bias)
        _compare(layer, sample.input)
        ran += 1
    assert ran == 18


# --- torch.compile -------------------------------------------------------------------------------


@pytest.fixture
def count_runs(monkeypatch):
    """How many times a lincore run executed (FusedRun calls)."""
    from lincore._dropin import run as run_module

    calls = []
    original = run_module.FusedRun.__call__

    def counted(self, x):
        calls.append(len(self.modules))
        return original(self, x)

    monkeypatch.setattr(run_module.FusedRun, "__call__", counted)
    torch._dynamo.reset()
    yield calls
    torch._dynamo.reset()


def test_compile_backend_runs_chains_on_lincore(count_runs):
    assert "lincore" in torch._dynamo.list_backends()
    torch.manual_seed(4)
    model = tnn.Sequential(
        tnn.Linear(20, 16), tnn.GELU(), tnn.Linear(16, 8), tnn.BatchNorm1d(8), tnn.Linear(8, 3)
    ).eval()
    compiled = torch.compile(model, backend="lincore")
    x = torch.randn(5, 20)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))
    assert count_runs == [3, 1]  # Linear-GELU-Linear, then the last Linear; BatchNorm in torch
    model.train()
    twin = copy.deepcopy(model)
    compiled = torch.compile(model, backend="lincore")
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    compiled(xa).square().sum().backward()
    twin(xb).square().sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad)


def test_compile_backend_chain_call_is_one_c_call(count_runs):
    model = mlp().eval()
    compiled = torch.compile(model, backend="lincore")
    x = torch.randn(3, 20)
    with torch.no_grad():
        compiled(x)  # the first call makes the chain's run, through the Python path
        assert count_runs == [5]
        y = compiled(x)  # then dropin.cpp's chain_forward takes it: no Python run call
        assert count_runs == [5] and bits(y) == native(model, x).tobytes()
        # a parameter replaced: the C path hands the call back, the run is made again
        model[0].weight = tnn.Parameter(model[0].weight.detach() * 2)
        torch.testing.assert_close(compiled(x), model(x))
        assert bits(compiled(x)) == native(model, x).tobytes()
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    compiled(xa).square().sum().backward()  # recorded through the C path too
    model(xb).square().sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)


# Inductor's own imports warn (torch.jit); not ours to fix.
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compile_of_an_optimized_model_keeps_one_graph(count_runs):
    torch.manual_seed(5)
    model = MODELS["layernorm-softmax"](torch.float32).eval()
    twin = copy.deepcopy(model)
    compiled = torch.compile(lincore.optimize(model, inplace=True), fullgraph=True)
    x = torch.randn(6, 20)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), twin(x))
    assert count_runs, "the compiled graph did not run lincore"
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    compiled(xa).sum().backward()
    twin(xb).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad)


# --- custom modules, through torch.fx ------------------------------------------------------------


class Net(tnn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = tnn.Linear(8, 16), tnn.Linear(16, 16)
        self.bn, self.fc3 = tnn.BatchNorm1d(16), tnn.Linear(16, 4)
        self.head = tnn.Sequential(tnn.ReLU(), tnn.Linear(4, 4))

    def forward(self, x):
        x = torch.nn.functional.relu(self.fc1(x))
        x = torch.tanh(self.fc2(x))
        x = self.bn(x)
        return self.head(torch.nn.functional.log_softmax(self.fc3(x), dim=-1))


class Branchy(tnn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.seq = tnn.Linear(8, 8), tnn.Sequential(tnn.Linear(8, 8), tnn.ReLU())

    def forward(self, x):
        if x.sum() > 0:  # data-dependent: torch.fx cannot trace it
            return self.seq(self.fc(x))
        return x


def test_custom_module_chains_are_traced_and_fused():
    torch.manual_seed(6)
    model = Net().eval()
    opt = lincore.optimize(model)
    assert type(opt).__name__ == "Net" and isinstance(opt, Net) and repr(opt) == repr(model)
    rep = lincore.optimize_report(opt)
    assert rep.containers[""]["fused"] == [["fc1", "relu", "fc2", "tanh"], ["fc3", "log_softmax"]]
    assert rep.containers["head"]["fused"] == [["0", "1"]]
    assert [q for q, _ in rep.containers[""]["not_fused"]] == ["bn"]
    x = torch.randn(5, 8)
    with torch.no_grad():
        torch.testing.assert_close(opt(x), model(x))
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    opt(xa).sum().backward()
    model(xb).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)
    for (n, p), q in zip(opt.named_parameters(), model.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=n)
    # a replaced child is seen: the forward is traced again
    opt.fc2 = tnn.Linear(16, 16)
    with torch.no_grad():
        torch.testing.assert_close(opt(x), Net.forward(opt, x))
    copied = pickle.loads(pickle.dumps(opt))
    assert type(copied) is type(opt)
    with torch.no_grad():
        assert bits(copied(x)) == bits(opt(x))
    plain = lincore.restore(opt)
    assert type(plain) is Net and "_lincore_traced" not in vars(plain)


def test_untraceable_module_is_left_as_it_is_with_its_sequentials_swapped():
    model = Branchy()
    opt = lincore.optimize(model)
    assert type(opt) is Branchy
    rep = lincore.optimize_report(opt)
    assert "cannot trace" in rep.untraced[""] and rep.containers["seq"]["fused"] == [["0", "1"]]
    assert "left as it is" in str(rep)
    x = torch.ones(2, 8)
    with torch.no_grad():
        torch.testing.assert_close(opt(x), model(x))


def test_jit_trace_of_an_optimized_model_records_torchs_ops():
    model = Net().eval()
    opt = lincore.optimize(tnn.Sequential(model, tnn.Linear(4, 2)))
    x = torch.randn(3, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(opt, x)
    with torch.no_grad():
        torch.testing.assert_close(traced(torch.ones(3, 8)), opt(torch.ones(3, 8)))
