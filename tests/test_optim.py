# lincore.optim against torch.optim: the same parameters and the same sequence of random
# gradients (set on .grad directly in both libraries, so no autograd is involved), compared after
# every step; state_dict round trips (bitwise) and PyTorch's state_dict format; zero_grad,
# parameter groups, closures, reprs; and bad input (PyTorch's messages, nothing modified).

import copy
import zlib

import numpy as np
import pytest

import lincore
import lincore.nn as lnn
from lincore.nn import Parameter
from lincore.optim import SGD, Adam, AdamW, Optimizer

from conftest import num_threads

NUMPY_DTYPE = {"f32": np.float32, "f64": np.float64}
STEPS = 20

# The tolerance against torch, derived: both libraries evaluate the same formula, op for op, in
# the parameter's dtype, with the same float32-cast scalars. Results can differ only where an op
# rounds differently: torch's vectorized add/lerp/addcmul are fused multiply-adds (lincore's
# numpy multiply-then-add rounds twice), and torch's float32 sqrt (MKL) is not always correctly
# rounded. So each of the at
# most OPS_PER_STEP rounded elementwise ops of a step (Adam has 10: sub, fma, mul, fma, sqrt, div,
# add, mul, div, add) may differ by one ulp (eps relative) of its result. Every intermediate that
# reaches the parameter is bounded by SCALE = max|p| + max|grad| over the run (with lr <= 0.1 and
# momentum <= 0.9 below, lr * momentum_buffer <= max|grad|, and Adam's |m| / sqrt(v) stays O(1));
# differences carried from earlier steps are damped (weight decay, beta < 1), not amplified. So
# after step t: |lincore - torch| <= t * OPS_PER_STEP * eps * SCALE.
OPS_PER_STEP = 10


def assert_close_to_torch(actual, expected, step, scale):
    eps = np.finfo(expected.dtype).eps
    np.testing.assert_allclose(actual, expected, rtol=0, atol=step * OPS_PER_STEP * eps * scale)


CONFIGS = {
    "sgd-default": ("SGD", {}),
    "sgd-lr0.1": ("SGD", {"lr": 0.1}),
    "sgd-mom0.9": ("SGD", {"lr": 0.05, "momentum": 0.9}),
    "sgd-mom0.5-damp0.3-wd0.1": (
        "SGD",
        {"lr": 0.1, "momentum": 0.5, "dampening": 0.3, "weight_decay": 0.1},
    ),
    "sgd-nesterov-wd0.01": (
        "SGD",
        {"lr": 0.02, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    ),
    "sgd-maximize-mom0.8": ("SGD", {"lr": 0.03, "momentum": 0.8, "maximize": True}),
    "sgd-wd-nomom": ("SGD", {"lr": 0.1, "weight_decay": 0.5}),
    "adam-default": ("Adam", {}),
    "adam-lr0.1-wd0.1": ("Adam", {"lr": 0.1, "weight_decay": 0.1}),
    "adam-amsgrad": ("Adam", {"lr": 0.01, "amsgrad": True}),
    "adam-betas-eps-maximize": (
        "Adam",
        {"lr": 0.05, "betas": (0.3, 0.9), "eps": 1e-3, "maximize": True},
    ),
    "adam-beta1-0.8-amsgrad-wd": (
        "Adam",
        {"lr": 0.02, "betas": (0.8, 0.99), "amsgrad": True, "weight_decay": 0.05},
    ),
    "adamw-default": ("AdamW", {}),
    "adamw-lr0.1-wd0.5-amsgrad": ("AdamW", {"lr": 0.1, "weight_decay": 0.5, "amsgrad": True}),
    "adamw-maximize-betas": ("AdamW", {"lr": 0.01, "betas": (0.5, 0.95), "maximize": True}),
    "adamw-wd0": ("AdamW", {"lr": 0.003, "weight_decay": 0}),
}
LINCORE_OPTIM = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}
SHAPES = {"scalar": (), "n1": (1,), "5x7": (5, 7), "4x17": (4, 17), "2x3x33": (2, 3, 33)}


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def make_params(values):
    return [Parameter(lincore.tensor(v)) for v in values]


def arrays(params):
    """Copies of the parameters' values (the views are dropped at once)."""
    return [np.array(np.asarray(p)) for p in params]


def state_arrays(opt):
    """Every state tensor of opt, copied, keyed (parameter index, key)."""
    out = {}
    for index, st in opt.state_dict()["state"].items():
        for key, value in st.items():
            out[index, key] = np.array(np.asarray(value))
    return out


def set_grads(params, grads):
    for p, g in zip(params, grads):
        p.grad = None if g is None else lincore.tensor(g)


def set_torch_grads(torch, params, grads):
    for p, g in zip(params, grads):
        p.grad = None if g is None else torch.from_numpy(g.copy())


# --- parity with torch.optim ------------------------------------------------------------------


@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
@pytest.mark.parametrize("dt", ["f32", "f64"])
@pytest.mark.parametrize("config", list(CONFIGS), ids=list(CONFIGS))
def test_optim_matches_torch_every_step(torch, config, dt, shape):
    name, kwargs = CONFIGS[config]
    npd = NUMPY_DTYPE[dt]
    rng = np.random.default_rng(zlib.crc32(f"{config}-{dt}-{shape}".encode()))
    # The parameter under test, a second one of another shape, and a third that never has a
    # gradient: skipped by both (unchanged, no state).
    shapes = [shape, (3,), (2, 2)]
    init = [rng.standard_normal(s).astype(npd) for s in shapes]
    mine = make_params(init)
    theirs = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in init]
    opt = LINCORE_OPTIM[name](mine, **kwargs)
    ref = getattr(torch.optim, name)(theirs, **kwargs)
    scale = max(np.abs(v).max(initial=0.0) for v in init)
    for step in range(1, STEPS + 1):
        grads = [rng.standard_normal(s).astype(npd) for s in shapes[:2]] + [None]
        set_grads(mine, grads)
        set_torch_grads(torch, theirs, grads)
        opt.step()
        ref.step()
        expected = [t.detach().numpy() for t in theirs]
        scale = max([scale] + [np.abs(v).max(initial=0.0) for v in expected])
        grad_scale = max(np.abs(g).max(initial=0.0) for g in grads[:2])
        for got, want in zip(arrays(mine), expected):
            assert got.dtype == want.dtype
            assert_close_to_torch(got, want, step, scale + grad_scale)
    np.testing.assert_array_equal(arrays(mine)[2], init[2])
    mine_sd, ref_sd = opt.state_dict(), ref.state_dict()
    assert mine_sd["param_groups"] == ref_sd["param_groups"]
    assert set(mine_sd["state"]) == set(ref_sd["state"])
    for index, st in ref_sd["state"].items():
        assert set(mine_sd["state"][index]) == set(st)
        for key, value in st.items():
            assert mine_sd["state"][index][key].dtype is getattr(lincore, str(value.dtype)[6:])
            assert tuple(mine_sd["state"][index][key].shape) == tuple(value.shape)
            if key == "step":
                assert float(mine_sd["state"][index][key]) == float(value) == STEPS


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_optim_param_groups_with_their_own_lr_match_torch(torch, name):
    rng = np.random.default_rng(3)
    init = [rng.standard_normal(s) for s in [(3, 4), (4,), (2, 5)]]
    mine = make_params(init)
    theirs = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in init]
    extra = {"momentum": 0.9} if name == "SGD" else {"betas": (0.8, 0.99)}

    def groups(ps):
        return [{"params": ps[:2], "lr": 0.1, **extra}, {"params": ps[2:]}]

    opt = LINCORE_OPTIM[name](groups(mine), lr=0.01)
    ref = getattr(torch.optim, name)(groups(theirs), lr=0.01)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    assert repr(opt) == repr(ref)
    scale = max(np.abs(v).max() for v in init)
    for step in range(1, STEPS + 1):
        grads = [rng.standard_normal(v.shape) for v in init]
        set_grads(mine, grads)
        set_torch_grads(torch, theirs, grads)
        opt.step()
        ref.step()
        expected = [t.detach().numpy() for t in theirs]
        scale = max([scale] + [np.abs(v).max() for v in expected])
        grad_scale = max(np.abs(g).max() for g in grads)
        for got, want in zip(arrays(mine), expected):
            assert_close_to_torch(got, want, step, scale + grad_scale)
    assert opt.state_dict()["param_groups"] == ref.state_dict()["param_groups"]


def test_optim_defaults_are_torch_2_13s():
    p = make_params([np.zeros(2, np.float32)])
    assert SGD(p).defaults["lr"] == 1e-3
    adam = Adam(p).defaults
    assert (adam["lr"], adam["betas"], adam["eps"], adam["weight_decay"]) == (
        1e-3,
        (0.9, 0.999),
        1e-8,
        0,
    )
    assert AdamW(p).defaults["weight_decay"] == 1e-2
    assert AdamW(p).defaults["decoupled_weight_decay"] is True
    assert issubclass(AdamW, Adam) and issubclass(SGD, Optimizer)


# --- reprs ---------------------------------------------------------------------------------------

SGD_REPR = """SGD (
Parameter Group 0
    dampening: 0
    differentiable: False
    foreach: None
    fused: None
    lr: 0.001
    maximize: False
    momentum: 0
    nesterov: False
    weight_decay: 0
)"""

ADAM_REPR = """{name} (
Parameter Group 0
    amsgrad: False
    betas: (0.9, 0.999)
    capturable: False
    decoupled_weight_decay: {decoupled}
    differentiable: False
    eps: 1e-08
    foreach: None
    fused: None
    lr: 0.001
    maximize: False
    weight_decay: {wd}
)"""


def test_optim_repr_defaults():
    p = make_params([np.zeros(2, np.float32)])
    assert repr(SGD(p)) == SGD_REPR
    assert repr(Adam(p)) == ADAM_REPR.format(name="Adam", decoupled=False, wd=0)
    assert repr(AdamW(p)) == ADAM_REPR.format(name="AdamW", decoupled=True, wd=0.01)


@pytest.mark.parametrize("config", list(CONFIGS), ids=list(CONFIGS))
def test_optim_repr_matches_torch(torch, config):
    name, kwargs = CONFIGS[config]
    mine = LINCORE_OPTIM[name](make_params([np.zeros(2)]), **kwargs)
    ref = getattr(torch.optim, name)([torch.nn.Parameter(torch.zeros(2))], **kwargs)
    assert repr(mine) == repr(ref)


def test_optim_named_parameters_match_torch(torch):
    layer = lnn.Linear(3, 2)
    tlayer = torch.nn.Linear(3, 2)
    opt = SGD(layer.named_parameters(), lr=0.1)
    ref = torch.optim.SGD(tlayer.named_parameters(), lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"]
    assert repr(opt) == repr(ref)
    assert opt.state_dict()["param_groups"] == ref.state_dict()["param_groups"]


# --- state_dict -----------------------------------------------------------------------------------


@pytest.mark.parametrize("config", list(CONFIGS), ids=list(CONFIGS))
def test_optim_state_dict_round_trip_is_bitwise(config):
    name, kwargs = CONFIGS[config]
    rng = np.random.default_rng(11)
    shapes = [(3, 5), (5,)]
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(STEPS)]
    whole = make_params(init)
    opt = LINCORE_OPTIM[name](whole, **kwargs)
    for g in grads[:10]:
        set_grads(whole, g)
        opt.step()
    saved = copy.deepcopy(opt.state_dict())
    resumed = make_params(arrays(whole))
    opt2 = LINCORE_OPTIM[name](resumed, **kwargs)
    opt2.load_state_dict(saved)
    assert opt2.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
    for (key, a), b in zip(state_arrays(opt).items(), state_arrays(opt2).values()):
        np.testing.assert_array_equal(a, b, err_msg=str(key))
    for g in grads[10:]:
        set_grads(whole, g)
        set_grads(resumed, g)
        opt.step()
        opt2.step()
    for a, b in zip(arrays(whole), arrays(resumed)):
        np.testing.assert_array_equal(a, b)
    for (key, a), b in zip(state_arrays(opt).items(), state_arrays(opt2).values()):
        np.testing.assert_array_equal(a, b, err_msg=str(key))


def test_optim_load_state_dict_copies_deeply():
    p = make_params([np.ones(3, np.float32)])
    opt = Adam(p, lr=0.1)
    set_grads(p, [np.ones(3, np.float32)])
    opt.step()
    sd = opt.state_dict()
    opt2 = Adam(make_params([np.ones(3, np.float32)]), lr=0.1)
    opt2.load_state_dict(sd)
    loaded = opt2.state_dict()
    for key in ("step", "exp_avg", "exp_avg_sq"):
        assert loaded["state"][0][key] is not sd["state"][0][key]
    before = np.array(np.asarray(loaded["state"][0]["exp_avg"]))
    np.asarray(sd["state"][0]["exp_avg"])[...] = 123.0
    sd["param_groups"][0]["lr"] = 5.0
    np.testing.assert_array_equal(np.asarray(loaded["state"][0]["exp_avg"]), before)
    assert opt2.param_groups[0]["lr"] == 0.1


def test_optim_load_state_dict_casts_state_to_the_param_dtype_but_not_step():
    p64 = make_params([np.ones(4)])
    opt = AdamW(p64, amsgrad=True)
    set_grads(p64, [np.full(4, 0.5)])
    opt.step()
    p32 = make_params([np.ones(4, np.float32)])
    opt32 = AdamW(p32, amsgrad=True)
    opt32.load_state_dict(opt.state_dict())
    state = opt32.state[p32[0]]
    for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        assert state[key].dtype is lincore.float32
        np.testing.assert_array_equal(
            np.asarray(state[key]), np.asarray(opt.state[p64[0]][key]).astype(np.float32)
        )
    assert state["step"].dtype is lincore.float32 and float(state["step"]) == 1.0
    set_grads(p32, [np.full(4, 0.5, np.float32)])
    opt32.step()
    assert float(state["step"]) == 2.0


@pytest.mark.parametrize("config", ["sgd-mom0.9", "adam-amsgrad", "adamw-default"])
def test_optim_loads_torch_state_dict_and_continues_like_torch(torch, config):
    name, kwargs = CONFIGS[config]
    rng = np.random.default_rng(5)
    init = [
        rng.standard_normal((4, 6)).astype(np.float32),
        rng.standard_normal(6).astype(np.float32),
    ]
    theirs = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in init]
    ref = getattr(torch.optim, name)(theirs, **kwargs)
    for _ in range(5):
        set_torch_grads(
            torch, theirs, [rng.standard_normal(v.shape).astype(np.float32) for v in init]
        )
        ref.step()
    mine = make_params([t.detach().numpy().copy() for t in theirs])
    opt = LINCORE_OPTIM[name](mine, **kwargs)
    opt.load_state_dict(ref.state_dict())
    for index, st in ref.state_dict()["state"].items():
        for key, value in st.items():
            np.testing.assert_array_equal(np.asarray(opt.state[mine[index]][key]), value.numpy())
    scale = max(np.abs(v).max() for v in arrays(mine))
    for step in range(1, 6):
        grads = [rng.standard_normal(v.shape).astype(np.float32) for v in init]
        set_grads(mine, grads)
        set_torch_grads(torch, theirs, grads)
        opt.step()
        ref.step()
        expected = [t.detach().numpy() for t in theirs]
        scale = max([scale] + [np.abs(v).max() for v in expected])
        grad_scale = max(np.abs(g).max() for g in grads)
        for got, want in zip(arrays(mine), expected):
            assert_close_to_torch(got, want, step, scale + grad_scale)


def test_optim_state_dict_format():
    p = make_params([np.ones((2, 3), np.float32), np.ones(3, np.float32), np.ones(1, np.float32)])
    opt = SGD([{"params": p[:2]}, {"params": p[2:], "lr": 0.5}], lr=0.1, momentum=0.9)
    set_grads(p, [np.ones((2, 3), np.float32), None, np.ones(1, np.float32)])
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert [g["lr"] for g in sd["param_groups"]] == [0.1, 0.5]
    assert set(sd["state"]) == {0, 2}  # the parameter without a gradient has no state
    assert isinstance(sd["state"][0]["momentum_buffer"], lincore.Tensor)
    # As in torch, the state tensors are the optimizer's own.
    assert sd["state"][0]["momentum_buffer"] is opt.state[p[0]]["momentum_buffer"]


# --- zero_grad, closure, add_param_group ---------------------------------------------------------


def test_optim_zero_grad_set_to_none():
    p = make_params([np.ones(3, np.float32), np.ones(2, np.float32)])
    opt = SGD(p, lr=0.1)
    set_grads(p, [np.ones(3, np.float32), None])
    opt.zero_grad()
    assert p[0].grad is None and p[1].grad is None


def test_optim_zero_grad_in_place():
    p = make_params([np.ones(3), np.ones(2)])
    opt = Adam(p)
    set_grads(p, [np.full(3, 2.0), None])
    grad = p[0].grad
    opt.zero_grad(set_to_none=False)
    assert p[0].grad is grad
    np.testing.assert_array_equal(np.asarray(grad), np.zeros(3))
    assert p[1].grad is None


def test_optim_closure_runs_once_under_grad_mode_and_its_loss_is_returned():
    p = make_params([np.ones(3, np.float32)])
    opt = SGD(p, lr=0.5)
    calls = []

    def closure():
        calls.append(lincore.is_grad_enabled())
        set_grads(p, [np.full(3, 2.0, np.float32)])
        return 42.0

    with lincore.no_grad():
        loss = opt.step(closure)
        assert not lincore.is_grad_enabled()
    assert loss == 42.0 and calls == [True]
    assert lincore.is_grad_enabled()
    np.testing.assert_array_equal(np.asarray(p[0]), np.zeros(3, np.float32))
    assert opt.step() is None


def test_optim_closure_error_changes_nothing():
    p = make_params([np.ones(3, np.float32)])
    opt = Adam(p)
    set_grads(p, [np.ones(3, np.float32)])

    def closure():
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        opt.step(closure)
    np.testing.assert_array_equal(np.asarray(p[0]), np.ones(3, np.float32))
    assert len(opt.state) == 0
    assert lincore.is_grad_enabled()


def test_optim_add_param_group_fills_defaults():
    p = make_params([np.ones(2), np.ones(3)])
    opt = SGD(p[:1], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": p[1], "lr": 0.01})
    assert len(opt.param_groups) == 2
    assert opt.param_groups[1]["params"] == [p[1]]
    assert opt.param_groups[1]["lr"] == 0.01 and opt.param_groups[1]["momentum"] == 0.9


def test_optim_step_updates_what_the_layer_computes():
    # The update writes through zero-copy views; releasing them tells the layer that its weight
    # changed, so the next call does not use stale packed weights.
    layer = lnn.Linear(4, 3)
    x = lincore.randn(5, 4)
    layer(x)  # packs the weight
    opt = SGD(layer.parameters(), lr=0.5)
    layer.weight.grad = lincore.ones(3, 4)
    layer.bias.grad = lincore.ones(3)
    opt.step()
    w, b = np.asarray(layer.weight).astype(np.float64), np.asarray(layer.bias).astype(np.float64)
    expected = np.asarray(x).astype(np.float64) @ w.T + b
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-5, atol=1e-5)


# --- bad input ------------------------------------------------------------------------------------


def _p():
    return make_params([np.ones(2, np.float32)])


BAD_ARGS = {
    "sgd-lr": (lambda: ("SGD", {"lr": -1}), ValueError, "Invalid learning rate: -1"),
    "sgd-momentum": (
        lambda: ("SGD", {"momentum": -0.5}),
        ValueError,
        "Invalid momentum value: -0.5",
    ),
    "sgd-wd": (
        lambda: ("SGD", {"weight_decay": -1e-4}),
        ValueError,
        "Invalid weight_decay value: -0.0001",
    ),
    "sgd-nesterov-nomom": (
        lambda: ("SGD", {"nesterov": True}),
        ValueError,
        "Nesterov momentum requires a momentum and zero dampening",
    ),
    "sgd-nesterov-damp": (
        lambda: ("SGD", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}),
        ValueError,
        "Nesterov momentum requires a momentum and zero dampening",
    ),
    "adam-lr": (lambda: ("Adam", {"lr": -0.1}), ValueError, "Invalid learning rate: -0.1"),
    "adam-eps": (lambda: ("Adam", {"eps": -1e-8}), ValueError, "Invalid epsilon value: -1e-08"),
    "adam-beta0": (
        lambda: ("Adam", {"betas": (1.0, 0.999)}),
        ValueError,
        "Invalid beta parameter at index 0: 1.0",
    ),
    "adam-beta1": (
        lambda: ("Adam", {"betas": (0.9, -0.5)}),
        ValueError,
        "Invalid beta parameter at index 1: -0.5",
    ),
    "adam-wd": (
        lambda: ("Adam", {"weight_decay": -1.0}),
        ValueError,
        "Invalid weight_decay value: -1.0",
    ),
    "adamw-lr": (lambda: ("AdamW", {"lr": -1}), ValueError, "Invalid learning rate: -1"),
    "adamw-beta0": (
        lambda: ("AdamW", {"betas": (-0.1, 0.9)}),
        ValueError,
        "Invalid beta parameter at index 0: -0.1",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ARGS), ids=list(BAD_ARGS))
def test_optim_bad_hyperparameters_raise_torch_messages(case):
    make, exc, message = BAD_ARGS[case]
    name, kwargs = make()
    with pytest.raises(exc) as info:
        LINCORE_OPTIM[name](_p(), **kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize("case", list(BAD_ARGS), ids=list(BAD_ARGS))
def test_optim_bad_hyperparameters_messages_are_torch_s(torch, case):
    make, exc, message = BAD_ARGS[case]
    name, kwargs = make()
    with pytest.raises(exc) as info:
        getattr(torch.optim, name)([torch.nn.Parameter(torch.ones(2))], **kwargs)
    assert str(info.value) == message


def test_optim_bad_hyperparameter_types():
    with pytest.raises(TypeError, match="lr must be a real number, but got str"):
        SGD(_p(), lr="0.1")
    with pytest.raises(ValueError, match="betas must be a pair of floats"):
        Adam(_p(), betas=(0.9,))
    with pytest.raises(ValueError, match=r"Adam\(fused=True\) is not supported"):
        Adam(_p(), fused=True)
    with pytest.raises(ValueError, match=r"SGD\(differentiable=True\) is not supported"):
        SGD(_p(), differentiable=True)


def test_optim_bad_params():
    with pytest.raises(ValueError, match="^optimizer got an empty parameter list$"):
        SGD([])
    with pytest.raises(
        TypeError, match="^optimizer can only optimize Tensors, but one of the params is int$"
    ):
        SGD([_p()[0], 3])
    with pytest.raises(
        TypeError,
        match="^optimizer can only optimize Tensors, but one of the params is numpy.ndarray$",
    ):
        Adam([np.ones(3)])
    with pytest.raises(
        TypeError,
        match="should be an iterable of Tensors or dicts, but got lincore.nn.parameter.Parameter",
    ):
        SGD(_p()[0])
    with pytest.raises(TypeError, match="ordered collections"):
        SGD([{"params": set(_p())}])
    p = _p()
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        SGD([{"params": p}, {"params": p}])


def test_optim_bad_param_group_changes_nothing():
    p = make_params([np.ones(2), np.ones(3)])
    opt = SGD(p[:1], lr=0.1)
    before = repr(opt)
    group = {"params": [p[1]], "lr": -1.0}
    with pytest.raises(ValueError, match="Invalid learning rate: -1.0"):
        opt.add_param_group(group)
    with pytest.raises(ValueError, match="some parameters appear in more than one"):
        opt.add_param_group({"params": [p[0]]})
    with pytest.raises(TypeError, match="param_group must be a dict"):
        opt.add_param_group([p[1]])
    assert repr(opt) == before and len(opt.param_groups) == 1
    assert group == {"params": [p[1]], "lr": -1.0}


def test_optim_duplicate_parameter_in_a_group_warns_like_torch():
    p = _p()
    with pytest.warns(UserWarning, match="duplicate parameters"):
        SGD([p[0], p[0]])


def _snapshot(opt, params):
    return (
        arrays(params),
        {k: v.copy() for k, v in state_arrays(opt).items()},
        copy.deepcopy(opt.state_dict()["param_groups"]),
    )


def _assert_same(before, after):
    for a, b in zip(before[0], after[0]):
        np.testing.assert_array_equal(a, b)
    assert before[1].keys() == after[1].keys()
    for key in before[1]:
        np.testing.assert_array_equal(before[1][key], after[1][key])
    assert before[2] == after[2]


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_optim_load_state_dict_errors_change_nothing(name):
    p = make_params([np.ones(2), np.ones(3)])
    opt = LINCORE_OPTIM[name](p, lr=0.1)
    set_grads(p, [np.ones(2), np.ones(3)])
    opt.step()
    before = _snapshot(opt, p)
    two_groups = LINCORE_OPTIM[name]([{"params": p[:1]}, {"params": p[1:]}]).state_dict()
    with pytest.raises(ValueError) as info:
        opt.load_state_dict(two_groups)
    assert str(info.value) == "loaded state dict has a different number of parameter groups"
    smaller = LINCORE_OPTIM[name](make_params([np.ones(2)])).state_dict()
    with pytest.raises(ValueError) as info:
        opt.load_state_dict(smaller)
    assert str(info.value) == (
        "loaded state dict contains a parameter group that doesn't match "
        "the size of optimizer's group"
    )
    bad_lr = copy.deepcopy(opt.state_dict())
    bad_lr["param_groups"][0]["lr"] = -3
    with pytest.raises(ValueError, match="Invalid learning rate: -3"):
        opt.load_state_dict(bad_lr)
    with pytest.raises(TypeError, match="Expected state_dict to be dict-like"):
        opt.load_state_dict([1, 2])
    _assert_same(before, _snapshot(opt, p))


def test_optim_step_on_integer_parameter_changes_nothing():
    p = [
        Parameter(lincore.ones(3), requires_grad=True),
        Parameter(lincore.tensor([1, 2, 3]), requires_grad=False),
    ]
    opt = SGD(p, lr=0.1, momentum=0.9)
    p[0].grad = lincore.ones(3)
    p[1].grad = lincore.tensor([1, 1, 1])
    with pytest.raises(
        RuntimeError,
        match="only update floating point parameters, but parameter 1 has dtype lincore.int64",
    ):
        opt.step()
    np.testing.assert_array_equal(np.asarray(p[0]), np.ones(3, np.float32))
    assert opt.state_dict()["state"] == {}


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_optim_step_on_read_only_parameter_changes_nothing(name):
    frozen = np.ones(3, np.float32)
    frozen.flags.writeable = False
    p = [Parameter(lincore.ones(3)), Parameter(lincore.from_numpy(frozen))]
    opt = LINCORE_OPTIM[name](p, lr=0.1)
    set_grads(p, [np.ones(3, np.float32), np.ones(3, np.float32)])
    with pytest.raises(RuntimeError, match="parameter 1 borrows a read-only buffer"):
        opt.step()
    np.testing.assert_array_equal(np.asarray(p[0]), np.ones(3, np.float32))
    assert len(opt.state) == 0


@pytest.mark.parametrize("bad", ["shape", "dtype", "type"])
def test_optim_step_with_a_bad_gradient_changes_nothing(bad):
    p = make_params([np.ones(3, np.float32), np.ones(2, np.float32)])
    opt = SGD(p, lr=0.1, momentum=0.9)
    set_grads(p, [np.ones(3, np.float32), np.ones(2, np.float32)])
    opt.step()
    before = _snapshot(opt, p)
    value = {
        "shape": lincore.ones(3),
        "dtype": lincore.ones(2, dtype=lincore.float64),
        "type": np.ones(2, np.float32),
    }[bad]
    # Tensor.grad may reject the assignment itself (as torch does); if it takes it, step must
    # refuse it before changing anything.
    with pytest.raises(
        (RuntimeError, TypeError), match="shape|size|dtype|type|lincore.Tensor or None"
    ):
        p[1].grad = value
        opt.step()
    _assert_same(before, _snapshot(opt, p))


def test_optim_state_of_the_wrong_shape_is_refused_before_any_update():
    # Loading the state of another model (same parameter count, other shapes) is only caught
    # at the step, as in torch; lincore reports it before updating any parameter.
    src = make_params([np.ones(3), np.ones((2, 2))])
    donor = Adam(src)
    set_grads(src, [np.ones(3), np.ones((2, 2))])
    donor.step()
    p = make_params([np.ones(3), np.ones(5)])
    opt = Adam(p)
    opt.load_state_dict(donor.state_dict())
    set_grads(p, [np.ones(3), np.ones(5)])
    before = _snapshot(opt, p)
    with pytest.raises(RuntimeError, match="'exp_avg' of parameter 1 has shape \\[2, 2\\]"):
        opt.step()
    _assert_same(before, _snapshot(opt, p))


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("config", ["sgd-mom0.9", "sgd-nesterov-wd"])
def test_optim_sgd_large_parameter_independent_of_thread_count(config, threads):
    """A parameter of 200K elements is updated in ranges by several threads (csrc/nn/sgd.cpp):
    elementwise, so bitwise the same result as one thread."""
    kwargs = {
        "sgd-mom0.9": dict(lr=0.1, momentum=0.9),
        "sgd-nesterov-wd": dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
    }[config]
    rng = np.random.default_rng(3)
    start = rng.standard_normal((400, 500)).astype(np.float32)
    grads = [rng.standard_normal((400, 500)).astype(np.float32) for _ in range(3)]

    def run(n):
        with num_threads(n):
            p = Parameter(lincore.tensor(start))
            opt = SGD([p], **kwargs)
            for g in grads:
                p.grad = lincore.tensor(g)
                opt.step()
            return np.asarray(p.detach())

    assert np.array_equal(run(1), run(threads))


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_optim_sgd_gradient_sharing_the_parameters_memory(momentum):
    """p.grad = p.detach() views the parameter's own memory; the update must read the gradient
    as it was before writing (the C++ loop assumes no overlap, so it reads a copy)."""
    rng = np.random.default_rng(5)
    start = rng.standard_normal((70, 90)).astype(np.float32)
    p, q = Parameter(lincore.tensor(start)), Parameter(lincore.tensor(start))
    p.grad = p.detach()  # shares p's storage
    q.grad = lincore.tensor(start.copy())  # the same values, separate memory
    for param in (p, q):
        SGD([param], lr=0.1, momentum=momentum).step()
    assert np.array_equal(np.asarray(p.detach()), np.asarray(q.detach()))


SGD_CONFIGS = {
    "plain": dict(lr=0.1),
    "momentum": dict(lr=0.1, momentum=0.9),
    "nesterov-wd": dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
    "dampening-maximize": dict(lr=0.02, momentum=0.5, dampening=0.3, maximize=True),
}


@pytest.mark.parametrize("config", sorted(SGD_CONFIGS))
def test_optim_sgd_one_group_in_one_call_equals_the_per_parameter_step(config):
    """One param group is stepped in one C++ call (sgd_step_group); two groups take the
    per-parameter path. Same updates, bitwise, including skipped parameters (grad None) and the
    momentum buffers created on the first step."""
    rng = np.random.default_rng(11)
    shapes = [(7, 5), (5,), (1, 33), (0, 4), (3,)]
    start = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]

    def run(split):
        p = make_params(start)
        groups = [{"params": p[:2]}, {"params": p[2:]}] if split else p
        opt = SGD(groups, **SGD_CONFIGS[config])
        for step, gs in enumerate(grads):
            set_grads(p, gs)
            p[3 if step else 1].grad = None  # skipped: no update, and no state on its first
            opt.step()
        return arrays(p), {k: v.copy() for k, v in state_arrays(opt).items()}

    (p1, s1), (p2, s2) = run(False), run(True)
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(a, b)
    assert s1.keys() == s2.keys()
    for key in s1:
        np.testing.assert_array_equal(s1[key], s2[key])


def test_optim_sgd_parameters_sharing_memory_are_updated_one_after_the_other():
    """Two parameters over one storage: the one-call step refuses the group (it would read
    stale values) and the per-parameter path runs, as with two groups."""

    def run(split):
        a = Parameter(lincore.ones(4))
        b = Parameter(a.detach())
        a.grad, b.grad = lincore.full((4,), 0.5), lincore.full((4,), 2.0)
        SGD([{"params": [a]}, {"params": [b]}] if split else [a, b], lr=0.1, momentum=0.9).step()
        return np.asarray(a.detach()).copy()

    np.testing.assert_array_equal(run(False), run(True))
    np.testing.assert_allclose(run(False), 1 - 0.1 * 0.5 - 0.1 * 2.0, rtol=1e-6)


def test_optim_sgd_non_contiguous_momentum_state_raises_like_the_per_parameter_step():
    p = make_params([np.ones((3, 4), np.float32)])
    opt = SGD(p, lr=0.1, momentum=0.9)
    set_grads(p, [np.ones((3, 4), np.float32)])
    opt.step()
    opt.state[p[0]]["momentum_buffer"] = lincore.ones(4, 3).transpose(0, 1)
    with pytest.raises((RuntimeError, ValueError), match="contiguous"):
        opt.step()


# --- an SGD step rebuilds the pack of a Linear it updates (csrc/nn/sgd.cpp, step_and_pack) ------
# A Linear's weight whose pack is current is stepped strip by strip, each strip packed right
# after its update. The parameters must be bitwise those of the plain step, the pack must be
# the one a fresh Linear builds from them, and the forward after the step must not repack.


def linear_pair(dt, n, k, bias, rng):
    """Two Linears with the same weights; only the first has been called (its pack is current,
    so the step takes the fused path), the second takes the plain one."""
    layers = [lnn.Linear(k, n, bias=bias, dtype=dt) for _ in range(2)]
    state = {"weight": rng.standard_normal((n, k))}
    if bias:
        state["bias"] = rng.standard_normal(n)
    for layer in layers:
        layer.load_state_dict(
            {
                key: v.astype(np.float32 if dt == lincore.float32 else np.float64)
                for key, v in state.items()
            }
        )
    return layers


@pytest.mark.parametrize("config", sorted(SGD_CONFIGS))
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dt", [lincore.float32, lincore.float64])
@pytest.mark.parametrize(
    "n, k",
    [
        (1, 1),
        (1, 17),
        (15, 3),
        (16, 16),
        (17, 9),
        (31, 33),
        (32, 321),
        (33, 641),
        (65, 7),
        (97, 129),
    ],
)
def test_optim_sgd_step_keeps_the_linear_pack_current(isa, rng, config, bias, dt, n, k):
    fused, plain = linear_pair(dt, n, k, bias, rng)
    npdt = np.float32 if dt == lincore.float32 else np.float64
    x = lincore.tensor(rng.standard_normal((5, k)).astype(npdt))
    with lincore.no_grad():
        fused(x)
    opts = [SGD(layer.parameters(), **SGD_CONFIGS[config]) for layer in (fused, plain)]
    for _ in range(3):
        grads = [rng.standard_normal(tuple(p.shape)) for p in fused.parameters()]
        for layer, opt in zip((fused, plain), opts):
            # (np.asarray of a parameter would export it: its pack is then never trusted)
            set_grads(list(layer.parameters()), [g.astype(npdt) for g in grads])
            opt.step()
        built = fused._pack.packs_built
        with lincore.no_grad():
            y_fused, y_plain = np.asarray(fused(x)), np.asarray(plain(x))
        assert fused._pack.packs_built == built, "the forward after the step repacked"
        np.testing.assert_array_equal(y_fused, y_plain)
        # (after the forward: reading a parameter as an array exports it, which makes its pack
        # stale; the next step then takes the plain path, and the next forward repacks)
        for a, b in zip(arrays(fused.parameters()), arrays(plain.parameters())):
            np.testing.assert_array_equal(a, b)
        with lincore.no_grad():
            fused(x)  # a current pack again, for the next step
    s_fused, s_plain = state_arrays(opts[0]), state_arrays(opts[1])
    assert s_fused.keys() == s_plain.keys()
    for key in s_fused:
        np.testing.assert_array_equal(s_fused[key], s_plain[key])


@pytest.mark.parametrize(
    "case",
    [
        "bias frozen",
        "bias in another group",
        "shared weight",
        "written after the pack",
        "family changed",
    ],
)
def test_optim_sgd_step_leaves_other_packs_to_the_forward(case, rng):
    """Where the step cannot rebuild the pack (its bias is not stepped with the weight, or the
    pack was stale already), the next forward repacks, and every result is still right."""
    fused, plain = linear_pair(lincore.float32, 33, 20, True, rng)
    x = lincore.randn(4, 20)
    with lincore.no_grad():
        fused(x)
    other = None
    if case == "shared weight":
        other = lnn.Linear(20, 33)
        other.weight = fused.weight
        with lincore.no_grad():
            other(x)  # the storage's packer is now other's cache; fused's pack stays
    previous = lincore.cpu_capability()
    try:
        if case == "written after the pack":
            with lincore.no_grad():
                fused.weight.copy_(plain.weight)  # same values, a new version
        if case == "family changed":
            lincore._core._set_cpu_capability("sse2")
        for layer in (fused, plain):
            if case == "bias frozen":
                params = [layer.weight]
            elif case == "bias in another group":
                params = [{"params": [layer.weight]}, {"params": [layer.bias]}]
            else:
                params = list(layer.parameters())
            opt = SGD(params, lr=0.1, momentum=0.9)
            layer.weight.grad = lincore.full((33, 20), 0.25)
            layer.bias.grad = lincore.full((33,), -0.5)
            opt.step()
        for a, b in zip(arrays(fused.parameters()), arrays(plain.parameters())):
            np.testing.assert_array_equal(a, b)
        with lincore.no_grad():
            y = np.asarray(fused(x))
            np.testing.assert_array_equal(y, np.asarray(plain(x)))
            if other is not None:
                want = np.asarray(lnn.functional.linear(x, other.weight, other.bias))
                np.testing.assert_array_equal(np.asarray(other(x)), want)
    finally:
        lincore._core._set_cpu_capability(previous)
