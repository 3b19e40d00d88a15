# The nn.Module API against PyTorch's behaviour: parameter names and order, traversal, counts,
# state_dict sharing and loading, the packed-weight cache seeing every write, user subclasses,
# Sequential as a container, reprs (PyTorch's strings, hard-coded), seeding and initialisation.

import math
from collections import OrderedDict

import numpy as np
import pytest

import lincore
import lincore.nn as nn
from conftest import assert_linear_close


def as_np(t):
    return np.array(t.detach() if isinstance(t, lincore.Tensor) else t)


def check_linear(y, x, layer):
    """y is layer(x) within THE tolerance."""
    b = None if layer.bias is None else as_np(layer.bias)
    assert_linear_close(as_np(y), as_np(x), as_np(layer.weight), b)


def paper_model():
    """The seed notebook's two-layer network."""
    return nn.Sequential(nn.Linear(8, 4), nn.Linear(4, 2))


# --- parameters, children, modules --------------------------------------------------------------


def test_module_named_parameters_names_and_order():
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2), nn.Linear(2, 3, bias=False))
    named = list(model.named_parameters())
    assert [name for name, _ in named] == ["0.weight", "0.bias", "2.weight", "2.bias", "3.weight"]
    assert [tuple(p.shape) for _, p in named] == [(4, 8), (4,), (2, 4), (2,), (3, 2)]
    expected = [model[0].weight, model[0].bias, model[2].weight, model[2].bias, model[3].weight]
    assert all(a is b for a, b in zip(model.parameters(), expected))
    assert len(list(model.parameters())) == 5
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in model.parameters())


def test_module_named_parameters_nested_prefixes():
    model = nn.Sequential(
        OrderedDict(
            encoder=nn.Sequential(nn.Linear(3, 4), nn.Tanh()),
            head=nn.Linear(4, 1),
        )
    )
    assert [n for n, _ in model.named_parameters()] == [
        "encoder.0.weight",
        "encoder.0.bias",
        "head.weight",
        "head.bias",
    ]
    assert [n for n, _ in model.named_modules()] == [
        "",
        "encoder",
        "encoder.0",
        "encoder.1",
        "head",
    ]


def test_module_shared_layer_listed_once():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert sum(p.numel() for p in model.parameters()) == 12
    assert list(model.children()) == [shared, model[1]]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_module_children_and_modules():
    inner = nn.Sequential(nn.Linear(2, 2), nn.Sigmoid())
    layers = [nn.Linear(3, 2), nn.ReLU(), inner, nn.Flatten()]
    model = nn.Sequential(*layers)
    assert [id(m) for m in model.children()] == [id(m) for m in layers]
    assert [id(m) for m in model.modules()] == [
        id(m) for m in [model, layers[0], layers[1], inner, inner[0], inner[1], layers[3]]
    ]
    assert list(nn.Linear(2, 2).children()) == []
    assert list(nn.ReLU().parameters()) == []


def test_module_parameter_count_of_seed_model():
    model = paper_model()
    by_hand = (8 + 1) * 4 + (4 + 1) * 2
    assert by_hand == 46
    total = 0
    for parameter in model.parameters():
        total += parameter.numel()
    assert total == 46
    assert sum(p.numel() for p in model.parameters()) == 46


def test_module_parameter_count_of_notebook_models():
    model = nn.Sequential(nn.Linear(10, 18), nn.Linear(18, 20), nn.Linear(20, 5))
    assert sum(p.numel() for p in model.parameters()) == 11 * 18 + 19 * 20 + 21 * 5


# --- state_dict ----------------------------------------------------------------------------------


def test_module_state_dict_keys_shapes_and_sharing():
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2, bias=False))
    sd = model.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "2.weight"]
    assert [tuple(v.shape) for v in sd.values()] == [(4, 8), (4,), (2, 4)]
    params = dict(model.named_parameters())
    for key, value in sd.items():
        assert isinstance(value, lincore.Tensor)
        assert value.dtype is lincore.float32
        assert np.shares_memory(np.asarray(value), np.asarray(params[key].detach()))
    # A write through the state_dict reaches the parameter.
    sd["0.bias"].copy_(lincore.tensor([1.0, 2.0, 3.0, 4.0]))
    assert as_np(model[0].bias).tolist() == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize("source", ["lincore", "numpy", "numpy-f64", "lincore-clone"])
def test_module_load_state_dict_round_trip(source):
    lincore.manual_seed(1)
    src = nn.Sequential(nn.Linear(5, 7), nn.GELU(), nn.Linear(7, 3))
    lincore.manual_seed(2)
    dst = nn.Sequential(nn.Linear(5, 7), nn.GELU(), nn.Linear(7, 3))
    x = lincore.randn(6, 5)
    y_old = as_np(dst(x))  # packs dst's old weights
    sd = src.state_dict()
    if source == "numpy":
        sd = {k: np.array(v) for k, v in sd.items()}
    elif source == "numpy-f64":
        sd = {k: np.array(v).astype(np.float64) for k, v in sd.items()}
    elif source == "lincore-clone":
        sd = OrderedDict((k, v.clone()) for k, v in sd.items())
    result = dst.load_state_dict(sd)
    assert list(result.missing_keys) == [] and list(result.unexpected_keys) == []
    for (name, p), (_, q) in zip(src.named_parameters(), dst.named_parameters()):
        assert as_np(p).tobytes() == as_np(q).tobytes(), name
        assert not np.shares_memory(np.asarray(q.detach()), np.asarray(p.detach()))
        assert q.dtype is lincore.float32
    y_new = as_np(dst(x))
    assert y_new.tobytes() == as_np(src(x)).tobytes()
    assert y_new.tobytes() != y_old.tobytes()


def test_module_load_state_dict_copies_not_aliases():
    src, dst = nn.Linear(3, 2), nn.Linear(3, 2)
    dst.load_state_dict(src.state_dict())
    with lincore.no_grad():
        src.weight.copy_(lincore.zeros(2, 3))
    assert np.any(as_np(dst.weight) != 0)


def test_module_load_state_dict_updates_linear_output():
    layer = nn.Linear(4, 3)
    x = lincore.randn(5, 4)
    layer(x)
    new = {
        "weight": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
        "bias": np.array([0.5, -1.0, 2.0], np.float32),
    }
    layer.load_state_dict(new)
    y = layer(x)
    assert_linear_close(as_np(y), as_np(x), new["weight"], new["bias"])


# --- writes into the weights are seen by the next forward (no stale packed weights) ---------------


def _write_asarray_temp(layer, new):
    np.asarray(layer.weight)[...] = new


# In-place writes to parameters run under no_grad, as PyTorch requires.
@lincore.no_grad()
def _write_copy_tensor(layer, new):
    layer.weight.copy_(lincore.tensor(new))


@lincore.no_grad()
def _write_copy_numpy(layer, new):
    layer.weight.copy_(new)


@lincore.no_grad()
def _write_setitem(layer, new):
    layer.weight[...] = lincore.tensor(new)


@lincore.no_grad()
def _write_setitem_row(layer, new):
    for i in range(new.shape[0]):
        layer.weight[i] = lincore.tensor(new[i])


def _write_detach_numpy(layer, new):
    layer.weight.detach().numpy()[...] = new


def _write_state_dict(layer, new):
    layer.state_dict()["weight"].copy_(lincore.tensor(new))


def _write_memoryview(layer, new):
    mv = memoryview(layer.weight)
    np.frombuffer(mv, dtype=np.float32).reshape(new.shape)[...] = new
    mv.release()


WEIGHT_WRITERS = {
    "asarray": _write_asarray_temp,
    "copy_-tensor": _write_copy_tensor,
    "copy_-numpy": _write_copy_numpy,
    "setitem": _write_setitem,
    "setitem-rows": _write_setitem_row,
    "detach-numpy": _write_detach_numpy,
    "state_dict": _write_state_dict,
    "memoryview": _write_memoryview,
}


@pytest.mark.parametrize("writer", list(WEIGHT_WRITERS))
def test_linear_forward_sees_weight_writes(writer, rng):
    layer = nn.Linear(6, 5)
    x = lincore.tensor(rng.standard_normal((4, 6)).astype(np.float32))
    b = as_np(layer.bias)
    y_before = as_np(layer(x))
    new = rng.standard_normal((5, 6)).astype(np.float32)
    WEIGHT_WRITERS[writer](layer, new)
    # Forward straight after the write: reading the weight first would export its buffer,
    # which itself marks the packed copy stale and could hide a missed write.
    y = as_np(layer(x))
    assert y.tobytes() != y_before.tobytes()
    assert_linear_close(y, as_np(x), new, b)
    assert as_np(layer.weight).tobytes() == new.tobytes()
    fresh = nn.Linear(6, 5)
    fresh.load_state_dict(layer.state_dict())
    assert y.tobytes() == as_np(fresh(x)).tobytes()


@pytest.mark.parametrize("writer", list(WEIGHT_WRITERS))
def test_sequential_forward_sees_weight_writes(writer, rng):
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2))
    x = lincore.tensor(rng.standard_normal((4, 6)).astype(np.float32))
    y_before = as_np(model(x))
    new = rng.standard_normal((5, 6)).astype(np.float32)
    WEIGHT_WRITERS[writer](model[0], new)
    y = as_np(model(x))
    assert y.tobytes() != y_before.tobytes()
    fresh = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2))
    fresh.load_state_dict(model.state_dict())
    assert y.tobytes() == as_np(fresh(x)).tobytes()


def test_linear_forward_sees_writes_through_a_held_array(rng):
    layer = nn.Linear(3, 2)
    x = lincore.tensor(rng.standard_normal((2, 3)).astype(np.float32))
    held = np.asarray(layer.weight)
    layer(x)
    held[...] = 1.0
    check_linear(layer(x), x, layer)
    held[0, 0] = 50.0
    y = as_np(layer(x))
    check_linear(y, x, layer)
    assert as_np(layer.weight)[0, 0] == 50.0
    del held
    held_y = as_np(layer(x))
    assert held_y.tobytes() == y.tobytes()


@pytest.mark.parametrize("op", ["fill_", "zero_", "normal_", "uniform_", "imul", "iadd", "bias"])
def test_linear_forward_sees_in_place_ops(op, rng):
    layer = nn.Linear(4, 3)
    x = lincore.tensor(rng.standard_normal((2, 4)).astype(np.float32))
    y_before = as_np(layer(x))
    with lincore.no_grad():  # in-place writes to parameters need it, as in PyTorch
        if op == "fill_":
            layer.weight.fill_(0.25)
        elif op == "zero_":
            layer.weight.zero_()
        elif op == "normal_":
            layer.weight.normal_()
        elif op == "uniform_":
            layer.weight.uniform_(2.0, 3.0)
        elif op == "imul":
            w = layer.weight
            w *= 3
        elif op == "iadd":
            w = layer.weight
            w += 1
        else:
            np.asarray(layer.bias)[...] = [10.0, 20.0, 30.0]
    y = as_np(layer(x))
    assert y.tobytes() != y_before.tobytes()
    check_linear(y, x, layer)


def test_linear_forward_sees_writes_to_borrowed_numpy_weight(rng):
    # from_numpy shares memory: "writes to either are seen by both", so a weight built over a
    # numpy array must follow writes made through that array.
    layer = nn.Linear(3, 2, bias=False)
    arr = np.ones((2, 3), np.float32)
    layer.weight = nn.Parameter(lincore.from_numpy(arr))
    x = lincore.tensor(rng.standard_normal((4, 3)).astype(np.float32))
    assert_linear_close(as_np(layer(x)), as_np(x), np.ones((2, 3)))
    arr[...] = 5.0
    assert_linear_close(as_np(layer(x)), as_np(x), np.full((2, 3), 5.0))
    arr[0, 1] = -3.0
    assert_linear_close(as_np(layer(x)), as_np(x), arr.copy())


def test_linear_forward_sees_replaced_parameter():
    layer = nn.Linear(3, 2)
    model = nn.Sequential(layer, nn.Tanh())
    x = lincore.randn(4, 3)
    model(x)
    layer.weight = nn.Parameter(lincore.full((2, 3), 0.5))
    layer.bias = None
    y = as_np(model(x))
    assert y.shape == (4, 2)
    assert_linear_close(y, as_np(x), np.full((2, 3), 0.5), None, act=np.tanh)
    assert as_np(layer(x)).tobytes() == as_np(nn.functional.linear(x, layer.weight)).tobytes()
    assert [n for n, _ in layer.named_parameters()] == ["weight"]


# --- calling a Linear: the C-level __call__ against forward -------------------------------------
# nn.Linear.__call__ handles one Tensor input itself (csrc/bindings/linear_call.cpp) and hands
# every other call to forward; both must give the same result, graph and errors.


def error_of(call):
    try:
        call()
    except Exception as e:  # noqa: BLE001 - the exception itself is what is compared
        return type(e), str(e)
    raise AssertionError("expected an exception")


@pytest.mark.parametrize("grad", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(3,), (1, 3), (5, 3), (2, 4, 3)])
def test_linear_call_same_as_forward(shape, bias, grad, rng):
    layer = nn.Linear(3, 2, bias=bias)
    x = lincore.tensor(rng.standard_normal(shape).astype(np.float32))
    with lincore.set_grad_enabled(grad):
        y, want = layer(x), layer.forward(x)
    assert as_np(y).tobytes() == as_np(want).tobytes()
    assert y.shape == want.shape == (*shape[:-1], 2)
    assert type(y.grad_fn) is type(want.grad_fn)
    assert (y.grad_fn is None) == (not grad)
    if grad:
        y.sum().backward()
        check_linear(layer(x), x, layer)
        assert layer.weight.grad is not None


@pytest.mark.parametrize("form", ["parameter", "numpy", "list", "keyword"])
def test_linear_call_other_inputs_go_through_forward(form, rng):
    layer = nn.Linear(3, 2)
    arr = rng.standard_normal((4, 3)).astype(np.float32)
    if form == "parameter":
        y = layer(nn.Parameter(lincore.tensor(arr)))
    elif form == "numpy":
        y = layer(arr)
    elif form == "list":
        y = layer(arr.tolist())
    else:
        y = layer(input=lincore.tensor(arr))
    assert as_np(y).tobytes() == as_np(layer.forward(lincore.tensor(arr))).tobytes()


@pytest.mark.parametrize("grad", [True, False])
@pytest.mark.parametrize(
    "case",
    [
        "no args",
        "two args",
        "bad keyword",
        "wrong features",
        "wrong dtype",
        "weight not a tensor",
        "bias not a tensor",
        "weight deleted",
        "bias deleted",
        "not a Linear",
    ],
)
def test_linear_call_errors_same_as_forward(case, grad, rng):
    layer = nn.Linear(3, 2)
    x = lincore.tensor(rng.standard_normal((4, 3)).astype(np.float32))
    args, kwargs = (x,), {}
    if case == "no args":
        args = ()
    elif case == "two args":
        args = (x, x)
    elif case == "bad keyword":
        args, kwargs = (), {"x": x}
    elif case == "wrong features":
        args = (lincore.randn(4, 5),)
    elif case == "wrong dtype":
        args = (lincore.randn(4, 3, dtype=lincore.float64),)
    elif case == "weight not a tensor":
        object.__setattr__(layer, "weight", np.ones((2, 3), np.float32))
    elif case == "bias not a tensor":
        object.__setattr__(layer, "bias", 1.0)
    elif case.endswith("deleted"):
        # The typed fields empty (csrc/bindings/linear_call.cpp): never read as NULL.
        object.__delattr__(layer, case.split()[0])
    target = object() if case == "not a Linear" else layer
    with lincore.set_grad_enabled(grad):
        got = error_of(lambda: nn.Linear.__call__(target, *args, **kwargs))
        if case == "not a Linear":
            # A method of lincore._core.LinearBase, which checks its self as Python does.
            assert got[0] is TypeError and "LinearBase" in got[1]
            return
        want = error_of(lambda: layer.forward(*args, **kwargs))
    assert got == want
    assert got[0] in (TypeError, ValueError, RuntimeError, AttributeError)
    if case.endswith("not a tensor"):
        assert got[0] is TypeError and case.split()[0] in got[1]
    if case.endswith("deleted"):
        assert got == (AttributeError, f"'Linear' object has no attribute '{case.split()[0]}'")


def test_linear_call_reads_this_threads_grad_mode(rng):
    import threading

    layer = nn.Linear(3, 2)
    x = lincore.randn(2, 3)
    seen = {}

    def other():
        seen["other"] = layer(x).grad_fn is not None  # a new thread starts with grad enabled

    with lincore.no_grad():
        t = threading.Thread(target=other)
        t.start()
        t.join()
        seen["here"] = layer(x).grad_fn is not None
    assert seen == {"other": True, "here": False}


# --- user-defined modules ----------------------------------------------------------------------


class TwoLayer(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(hidden, out_features)
        self.scale = 2.0  # a plain attribute: neither a parameter nor a child

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x))) * self.scale


class DoubledLinear(nn.Linear):
    """A built-in layer whose forward is overridden: containers must call the override."""

    def forward(self, input):
        return super().forward(input) * 2


class NegatedReLU(nn.ReLU):
    def forward(self, input):
        return -super().forward(input)


def test_module_subclass_registers_parameters_and_children():
    m = TwoLayer(6, 5, 3)
    assert [n for n, _ in m.named_parameters()] == [
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
    ]
    assert [n for n, _ in m.named_children()] == ["fc1", "act", "fc2"]
    assert sum(p.numel() for p in m.parameters()) == 7 * 5 + 6 * 3
    assert m.scale == 2.0
    assert repr(m) == (
        "TwoLayer(\n"
        "  (fc1): Linear(in_features=6, out_features=5, bias=True)\n"
        "  (act): Tanh()\n"
        "  (fc2): Linear(in_features=5, out_features=3, bias=True)\n"
        ")"
    )


def test_module_subclass_forward_standalone(rng):
    m = TwoLayer(6, 5, 3)
    x = lincore.tensor(rng.standard_normal((4, 6)).astype(np.float32))
    y = as_np(m(x))
    h1 = as_np(m.fc1(x))
    check_linear(h1, x, m.fc1)
    h2 = as_np(m.act(lincore.tensor(h1)))
    h3 = as_np(m.fc2(lincore.tensor(h2)))
    check_linear(h3, h2, m.fc2)
    assert y.tobytes() == (h3 * np.float32(2)).tobytes()


def test_module_subclass_inside_sequential(rng):
    lincore.manual_seed(5)
    user = TwoLayer(6, 5, 3)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), user, nn.Sigmoid(), nn.Linear(3, 2))
    assert [n for n, _ in model.named_parameters()] == [
        "0.weight",
        "0.bias",
        "2.fc1.weight",
        "2.fc1.bias",
        "2.fc2.weight",
        "2.fc2.bias",
        "4.weight",
        "4.bias",
    ]
    x = lincore.tensor(rng.standard_normal((3, 4)).astype(np.float32))
    y = as_np(model(x))
    h = as_np(model[1](model[0](x)))
    assert_linear_close(
        h, as_np(x), as_np(model[0].weight), as_np(model[0].bias), act=lambda v: np.maximum(v, 0)
    )
    h = as_np(model[3](user(lincore.tensor(h))))
    expected = as_np(model[4](lincore.tensor(h)))
    check_linear(expected, h, model[4])
    assert y.tobytes() == expected.tobytes()


@pytest.mark.parametrize("cls", [DoubledLinear, NegatedReLU], ids=["linear", "relu"])
def test_module_subclass_override_used_inside_sequential(cls, rng):
    layer = cls(3, 3) if cls is DoubledLinear else cls()
    x = lincore.tensor(rng.standard_normal((2, 3)).astype(np.float32))
    standalone = as_np(layer(x))
    if cls is DoubledLinear:
        plain = as_np(nn.functional.linear(x, layer.weight.detach(), layer.bias.detach()))
        assert standalone.tobytes() == (plain * np.float32(2)).tobytes()
    else:
        assert standalone.tobytes() == (-np.maximum(as_np(x), 0)).tobytes()
    assert as_np(nn.Sequential(layer)(x)).tobytes() == standalone.tobytes()
    in_stack = as_np(nn.Sequential(nn.Identity(), layer, nn.Identity())(x))
    assert in_stack.tobytes() == standalone.tobytes()


# --- Sequential as a container ----------------------------------------------------------------


def test_sequential_from_ordered_dict():
    fc1, act, fc2 = nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1)
    model = nn.Sequential(OrderedDict([("fc1", fc1), ("act", act), ("fc2", fc2)]))
    assert model.fc1 is fc1 and model.act is act and model.fc2 is fc2
    assert model[0] is fc1 and model[-1] is fc2
    assert [n for n, _ in model.named_children()] == ["fc1", "act", "fc2"]
    assert [n for n, _ in model.named_parameters()] == [
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
    ]
    assert model(lincore.ones(2, 4)).shape == (2, 1)


def test_sequential_len_indexing_slicing_iteration():
    layers = [nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2), nn.Sigmoid()]
    model = nn.Sequential(*layers)
    assert len(model) == 4
    assert len(nn.Sequential()) == 0
    for i in range(-4, 4):
        assert model[i] is layers[i]
    assert list(model) == layers
    assert [m for m in model] == layers
    part = model[1:3]
    assert isinstance(part, nn.Sequential)
    assert list(part) == layers[1:3]
    assert [n for n, _ in part.named_children()] == ["1", "2"]
    assert list(model[::-1]) == layers[::-1]
    assert len(model[10:]) == 0
    tail = model[2:]
    x = lincore.randn(5, 3)
    assert as_np(tail(x)).tobytes() == as_np(model[3](model[2](x))).tobytes()


def test_sequential_append_after_a_call():
    model = nn.Sequential(nn.Linear(4, 3))
    x = lincore.randn(2, 4)
    y3 = as_np(model(x))
    relu = nn.ReLU()
    assert model.append(relu) is model
    assert model[1] is relu and len(model) == 2
    assert [n for n, _ in model.named_children()] == ["0", "1"]
    y = as_np(model(x))
    assert y.tobytes() == np.maximum(y3, 0).tobytes()
    model.append(nn.Linear(3, 1))
    assert model(x).shape == (2, 1)


def test_sequential_del_renumbers():
    layers = [nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)]
    model = nn.Sequential(*layers)
    x = lincore.randn(2, 4)
    model(x)
    del model[1]
    assert len(model) == 2
    assert list(model) == [layers[0], layers[2]]
    assert [n for n, _ in model.named_children()] == ["0", "1"]
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    y = as_np(model(x))
    assert y.tobytes() == as_np(layers[2](layers[0](x))).tobytes()
    del model[-1]
    assert list(model) == [layers[0]]


def test_sequential_setitem_replaces_layer_after_a_call():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    x = lincore.randn(2, 4)
    model(x)
    model[1] = nn.Tanh()
    assert isinstance(model[1], nn.Tanh)
    y = as_np(model(x))
    assert_linear_close(y, as_np(x), as_np(model[0].weight), as_np(model[0].bias), act=np.tanh)


# --- reprs: PyTorch's exact strings ------------------------------------------------------------


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: nn.Linear(3, 2), "Linear(in_features=3, out_features=2, bias=True)"),
        (lambda: nn.Linear(3, 2, bias=False), "Linear(in_features=3, out_features=2, bias=False)"),
        (
            lambda: nn.Linear(0, 1, dtype=lincore.float64),
            "Linear(in_features=0, out_features=1, bias=True)",
        ),
        (lambda: nn.ReLU(), "ReLU()"),
        (lambda: nn.ReLU(inplace=True), "ReLU(inplace=True)"),
        (lambda: nn.LeakyReLU(), "LeakyReLU(negative_slope=0.01)"),
        (lambda: nn.LeakyReLU(0.2), "LeakyReLU(negative_slope=0.2)"),
        (lambda: nn.Sigmoid(), "Sigmoid()"),
        (lambda: nn.Tanh(), "Tanh()"),
        (lambda: nn.GELU(), "GELU(approximate='none')"),
        (lambda: nn.GELU("tanh"), "GELU(approximate='tanh')"),
        (lambda: nn.Identity(), "Identity()"),
        (lambda: nn.Flatten(), "Flatten(start_dim=1, end_dim=-1)"),
        (lambda: nn.Flatten(0, 2), "Flatten(start_dim=0, end_dim=2)"),
        (lambda: nn.Sequential(), "Sequential()"),
        (
            lambda: nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2)),
            "Sequential(\n"
            "  (0): Linear(in_features=8, out_features=4, bias=True)\n"
            "  (1): ReLU()\n"
            "  (2): Linear(in_features=4, out_features=2, bias=True)\n"
            ")",
        ),
        (
            lambda: nn.Sequential(
                OrderedDict(fc=nn.Linear(2, 2), inner=nn.Sequential(nn.GELU("tanh"), nn.Flatten()))
            ),
            "Sequential(\n"
            "  (fc): Linear(in_features=2, out_features=2, bias=True)\n"
            "  (inner): Sequential(\n"
            "    (0): GELU(approximate='tanh')\n"
            "    (1): Flatten(start_dim=1, end_dim=-1)\n"
            "  )\n"
            ")",
        ),
    ],
    ids=[
        "linear",
        "linear-nobias",
        "linear-f64",
        "relu",
        "relu-inplace",
        "leaky",
        "leaky-0.2",
        "sigmoid",
        "tanh",
        "gelu",
        "gelu-tanh",
        "identity",
        "flatten",
        "flatten-0-2",
        "sequential-empty",
        "sequential",
        "sequential-nested",
    ],
)
def test_module_repr_matches_pytorch(make, expected):
    assert repr(make()) == expected
    assert str(make()) == expected


def test_parameter_repr_matches_pytorch():
    p = nn.Parameter(lincore.tensor([[1.5, -2.0], [0.25, 3.0]]))
    assert repr(p) == (
        "Parameter containing:\n"
        "tensor([[ 1.5000, -2.0000],\n"
        "        [ 0.2500,  3.0000]], requires_grad=True)"
    )


# --- activations keep their settings -----------------------------------------------------------


def test_leaky_relu_uses_current_negative_slope():
    act = nn.LeakyReLU(0.5)
    x = lincore.tensor([-2.0, 3.0])
    assert as_np(act(x)).tolist() == [-1.0, 3.0]
    act.negative_slope = 0.25
    assert repr(act) == "LeakyReLU(negative_slope=0.25)"
    assert as_np(act(x)).tolist() == [-0.5, 3.0]
    assert as_np(nn.Sequential(act)(x)).tolist() == [-0.5, 3.0]


# --- seeding and initialisation ---------------------------------------------------------------


def test_manual_seed_reproducible():
    def draw():
        layer = nn.Linear(5, 3)
        return [
            as_np(layer.weight).tobytes(),
            as_np(layer.bias).tobytes(),
            as_np(lincore.rand(4, 4)).tobytes(),
            as_np(lincore.randn(7)).tobytes(),
            as_np(lincore.randn(3, dtype=lincore.float64)).tobytes(),
        ]

    lincore.manual_seed(1234)
    assert lincore.initial_seed() == 1234
    first = draw()
    lincore.manual_seed(1234)
    second = draw()
    lincore.manual_seed(4321)
    other = draw()
    assert first == second
    assert all(a != b for a, b in zip(first, other))
    # Without reseeding, the stream moves on.
    assert draw() != second


@pytest.mark.parametrize("dtype", [lincore.float32, lincore.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(
    "in_features, out_features",
    [(1, 4), (3, 2), (256, 256), (1000, 3)],
    ids=["k1-n4", "k3-n2", "k256-n256", "k1000-n3"],
)
def test_linear_init_within_bound(in_features, out_features, dtype):
    lincore.manual_seed(99)
    layer = nn.Linear(in_features, out_features, dtype=dtype)
    bound = 1.0 / math.sqrt(in_features)
    w, b = as_np(layer.weight), as_np(layer.bias)
    assert w.dtype == dtype._np and b.dtype == dtype._np
    assert np.all(np.abs(w) <= bound)
    assert np.all(np.abs(b) <= bound)
    assert np.unique(w).size > min(w.size, 10) // 2  # actually random, not constant


def test_linear_init_roughly_uniform():
    lincore.manual_seed(2024)
    w = as_np(nn.Linear(256, 256).weight).astype(np.float64).ravel()
    n = w.size
    bound = 1.0 / 16
    # U(-a, a): mean 0, variance a^2/3, and the variance of X^2 is a^4/5 - a^4/9 = 4 a^4/45.
    var = bound**2 / 3
    assert abs(w.mean()) <= 6 * math.sqrt(var / n)
    assert abs(np.mean(w**2) - var) <= 6 * math.sqrt(4 * bound**4 / 45 / n)
    # Eight equal bins each hold n/8 values up to a binomial 6-sigma spread.
    counts, _ = np.histogram(w, bins=8, range=(-bound, bound))
    expected = n / 8
    assert np.all(np.abs(counts - expected) <= 6 * math.sqrt(n * (1 / 8) * (7 / 8)))


# --- float64 layers -------------------------------------------------------------------------------


def test_linear_float64_forward(rng):
    layer = nn.Linear(33, 17, dtype=lincore.float64)
    assert layer.weight.dtype is lincore.float64 and layer.bias.dtype is lincore.float64
    x = lincore.tensor(rng.standard_normal((5, 33)))
    assert x.dtype is lincore.float64
    y = layer(x)
    assert y.dtype is lincore.float64 and y.shape == (5, 17)
    check_linear(y, x, layer)
    assert [v.dtype for v in layer.state_dict().values()] == [lincore.float64] * 2


def test_sequential_float64_forward(rng):
    model = nn.Sequential(
        nn.Linear(9, 8, dtype=lincore.float64), nn.Sigmoid(), nn.Linear(8, 3, dtype=lincore.float64)
    )
    x = lincore.tensor(rng.standard_normal((2, 4, 9)))
    y = as_np(model(x))
    h = as_np(model[:2](x))
    assert_linear_close(
        h,
        as_np(x),
        as_np(model[0].weight),
        as_np(model[0].bias),
        act=lambda v: 1 / (1 + np.exp(-v)),
    )
    assert y.dtype == np.float64 and y.shape == (2, 4, 3)
    check_linear(y, h, model[2])


def test_module_double_converts_and_forward_follows(rng):
    layer = nn.Linear(4, 3)
    x32 = lincore.tensor(rng.standard_normal((2, 4)).astype(np.float32))
    layer(x32)
    w32 = as_np(layer.weight)
    assert layer.double() is layer
    assert layer.weight.dtype is lincore.float64
    assert np.array_equal(as_np(layer.weight), w32.astype(np.float64))
    x64 = x32.double()
    y = layer(x64)
    assert y.dtype is lincore.float64
    check_linear(y, x64, layer)
    with pytest.raises(RuntimeError, match="Float and Double"):
        layer(x32)
