# The bad-input table of docs/testing.md: every bad input gives a clear Python exception
# (PyTorch's type and words where PyTorch has them), never a crash, and leaves every object it
# touched bitwise unchanged; the inputs that look odd but are valid give the correct result.
# The expected messages are hard-coded from what torch 2.13 prints; torch is not imported here.

import re
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest

import lincore
import lincore.nn as nn
from conftest import assert_linear_close


def snapshot(module):
    """Every parameter's name, shape, dtype and bytes: equal snapshots mean bitwise unchanged."""
    return [
        (name, tuple(p.shape), p.dtype, np.array(p.detach()).tobytes())
        for name, p in module.named_parameters()
    ]


def seeded_linear(in_features, out_features, bias=True, dtype=None):
    lincore.manual_seed(7)
    return nn.Linear(in_features, out_features, bias=bias, dtype=dtype)


# --- Linear forward ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, text",
    [
        ((4,), "(1x4 and 3x2)"),
        ((5, 4), "(5x4 and 3x2)"),
        ((2, 5, 4), "(10x4 and 3x2)"),
        ((5, 2), "(5x2 and 3x2)"),
    ],
    ids=["x4", "m5-k4", "b2-m5-k4", "m5-k2"],
)
def test_linear_forward_rejects_mismatched_in_features(shape, text):
    layer = seeded_linear(3, 2)
    before = snapshot(layer)
    x = lincore.ones(*shape)
    message = f"mat1 and mat2 shapes cannot be multiplied {text}"
    with pytest.raises(RuntimeError, match=re.escape(message)):
        layer(x)
    assert snapshot(layer) == before
    assert np.array_equal(np.asarray(x), np.ones(shape, np.float32))
    assert layer(lincore.ones(5, 3)).shape == (5, 2)  # still usable


@pytest.mark.parametrize(
    "x_dtype, layer_dtype, text",
    [
        (lincore.int64, lincore.float32, "Long and Float"),
        (lincore.float64, lincore.float32, "Double and Float"),
        (lincore.float32, lincore.float64, "Float and Double"),
        (lincore.bool, lincore.float32, "Bool and Float"),
    ],
    ids=["int64-into-f32", "f64-into-f32", "f32-into-f64", "bool-into-f32"],
)
def test_linear_forward_rejects_other_dtype(x_dtype, layer_dtype, text):
    layer = seeded_linear(3, 2, dtype=layer_dtype)
    before = snapshot(layer)
    with pytest.raises(
        RuntimeError, match=re.escape(f"mat1 and mat2 must have the same dtype, but got {text}")
    ):
        layer(lincore.ones(1, 3, dtype=x_dtype))
    assert snapshot(layer) == before


@pytest.mark.parametrize("in_features", [1, 3], ids=["k1", "k3"])
def test_linear_forward_rejects_0d_input(in_features):
    layer = seeded_linear(in_features, 2)
    before = snapshot(layer)
    with pytest.raises(
        RuntimeError,
        match=re.escape("both arguments to linear need to be at least 1D, but they are 0D and 2D"),
    ):
        layer(lincore.tensor(1.0))
    assert snapshot(layer) == before


@pytest.mark.parametrize("x_shape", [(3, 0), (0,), (2, 4, 0)], ids=["m3-k0", "x0", "b2-m4-k0"])
def test_linear_zero_in_features_gives_bias(x_shape):
    layer = nn.Linear(0, 4)
    with lincore.no_grad():
        layer.bias.copy_(lincore.tensor([1.5, -2.0, 0.25, 3.0]))
    y = layer(lincore.zeros(*x_shape))
    expected = np.broadcast_to(np.asarray(layer.bias), x_shape[:-1] + (4,))
    assert y.shape == x_shape[:-1] + (4,)
    assert y.dtype is lincore.float32
    assert np.asarray(y).tobytes() == np.ascontiguousarray(expected).tobytes()


def test_linear_zero_in_features_without_bias_gives_zeros():
    y = nn.Linear(0, 3, bias=False)(lincore.ones(2, 0))
    assert np.asarray(y).tobytes() == np.zeros((2, 3), np.float32).tobytes()


def test_sequential_zero_in_features_gives_bias():
    model = nn.Sequential(nn.Linear(0, 3), nn.ReLU())
    with lincore.no_grad():
        model[0].bias.copy_(lincore.tensor([1.0, -1.0, 2.0]))
    y = model(lincore.zeros(2, 0))
    assert np.asarray(y).tobytes() == np.array([[1, 0, 2]] * 2, np.float32).tobytes()


@pytest.mark.parametrize("dtype", [lincore.float32, lincore.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("x_shape", [(0, 3), (2, 0, 3), (0, 5, 3)], ids=["m0", "b2-m0", "b0-m5"])
def test_linear_zero_rows_gives_empty_output(x_shape, dtype):
    layer = seeded_linear(3, 5, dtype=dtype)
    y = layer(lincore.zeros(*x_shape, dtype=dtype))
    assert y.shape == x_shape[:-1] + (5,)
    assert y.dtype is dtype
    assert y.numel() == 0


# --- 0-d tensors (run in a child process: a crash there must not take the whole suite down) ------

ZERO_D_CASES = {
    "zeros": ("lincore.zeros(())", 0.0),
    "ones": ("lincore.ones()", 1.0),
    "full": ("lincore.full((), 2.5)", 2.5),
    "rand": ("lincore.rand(()).numel()", 1),
    "randn": ("lincore.randn(()).numel()", 1),
    "zeros_like": ("lincore.zeros_like(lincore.tensor(1.5))", 0.0),
    "f32-to-f64": ("lincore.tensor(1.5).double()", 1.5),
    "i64-to-f32": ("lincore.tensor(2).float()", 2.0),
    "f32-to-i64": ("lincore.tensor(3.0).to(lincore.int64)", 3),
    "sum-to-f64": ("lincore.tensor([1.0, 2.0]).sum().double()", 3.0),
    "linear-0d": ("lincore.nn.Linear(3, 2)(lincore.tensor(1.0))", "RuntimeError"),
}


@pytest.mark.parametrize("name", list(ZERO_D_CASES))
def test_tensor_0d_creation_and_conversion_do_not_crash(name):
    expr, expected = ZERO_D_CASES[name]
    code = (
        "import lincore, lincore.nn\n"
        "try:\n"
        f"    r = {expr}\n"
        "    print(repr(r.item() if isinstance(r, lincore.Tensor) else r))\n"
        "except Exception as e:\n"
        "    print(type(e).__name__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{expr} killed the interpreter (exit {proc.returncode})"
    assert proc.stdout.strip() == (expected if isinstance(expected, str) else repr(expected))


# --- lincore.tensor() from nested lists -----------------------------------------------------------


@pytest.mark.parametrize(
    "data, text",
    [
        ([[1, 2], [3]], "expected sequence of length 2 at dim 1 (got 1)"),
        ([[1, 2], [3, 4, 5]], "expected sequence of length 2 at dim 1 (got 3)"),
        ([[[1], [2]], [[3]]], "expected sequence of length 2 at dim 1 (got 1)"),
        ([[[1, 2]], [[3]]], "expected sequence of length 2 at dim 2 (got 1)"),
    ],
    ids=["short-row", "long-row", "dim1-3d", "dim2-3d"],
)
def test_tensor_rejects_ragged_list(data, text):
    with pytest.raises(ValueError, match=re.escape(text)):
        lincore.tensor(data)


@pytest.mark.parametrize(
    "data, shown, type_name",
    [
        ([[1, "a"]], "'a'", "str"),
        ([1, None], "None", "NoneType"),
        ([[1.0, 2.0], [3.0, object]], "object", "type"),
    ],
    ids=["str", "none", "class"],
)
def test_tensor_rejects_non_numeric_element(data, shown, type_name):
    with pytest.raises(TypeError) as info:
        lincore.tensor(data)
    message = str(info.value)
    assert shown in message
    assert type_name in message


@pytest.mark.parametrize(
    "data",
    [[[1, 2**63]], [-(2**63) - 1], [[0], [2**100]]],
    ids=["2pow63", "below-int64-min", "2pow100"],
)
def test_tensor_rejects_int_too_big_for_int64(data):
    # PyTorch 2.13 raises ValueError("Overflow when unpacking long long") here.
    with pytest.raises(ValueError, match="Overflow when unpacking long long"):
        lincore.tensor(data)


def test_tensor_accepts_int64_limits():
    t = lincore.tensor([-(2**63), 2**63 - 1])
    assert t.dtype is lincore.int64
    assert t.tolist() == [-(2**63), 2**63 - 1]


@pytest.mark.parametrize("dtype", [lincore.float32, lincore.float64], ids=["f32", "f64"])
def test_tensor_converts_huge_int_to_float_dtype(dtype):
    # PyTorch: torch.tensor([2**70], dtype=torch.float32) -> tensor([1.1806e+21]).
    t = lincore.tensor([2**70, 1], dtype=dtype)
    assert t.dtype is dtype
    assert t.tolist() == [float(2**70), 1.0]


@pytest.mark.parametrize(
    "make",
    [
        lambda a: lincore.tensor(a),
        lambda a: lincore.tensor(a, dtype=lincore.int64),
        lambda a: lincore.as_tensor(a),
        lambda a: lincore.tensor(a[1]),
    ],
    ids=["tensor", "tensor-int64", "as_tensor", "scalar"],
)
@pytest.mark.parametrize("byteorder", ["=", ">"], ids=["native", "big-endian"])
def test_uint64_too_big_for_int64_is_an_error_not_a_wrap(make, byteorder):
    # lincore has no uint64: such data becomes int64, where 2**63 would wrap to -2**63
    # (PyTorch keeps a uint64 tensor). An error that names the value, never a silent wrap.
    a = np.array([1, 2**63, 2**64 - 1], dtype=np.dtype(np.uint64).newbyteorder(byteorder))
    with pytest.raises(
        ValueError,
        match=r"uint64 to lincore.int64: it holds "
        r"(9223372036854775808|18446744073709551615)",
    ):
        make(a)


def test_uint64_that_fits_converts_exactly():
    a = np.array([0, 7, 2**63 - 1], dtype=np.uint64)
    t = lincore.tensor(a)
    assert t.dtype is lincore.int64 and t.tolist() == [0, 7, 2**63 - 1]
    assert lincore.tensor(np.array([2**64 - 1], np.uint64), dtype=lincore.float64).tolist() == [
        float(2**64 - 1)
    ]
    assert lincore.tensor(np.zeros((0, 3), np.uint64)).shape == (0, 3)


# --- Linear constructor ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, name",
    [((-1, 4), "in_features"), ((4, -1), "out_features"), ((-7, -3), "in_features")],
    ids=["in-neg1", "out-neg1", "both-neg"],
)
def test_linear_rejects_negative_features(args, name):
    value = args[0] if name == "in_features" else args[1]
    with pytest.raises(ValueError) as info:
        nn.Linear(*args)
    message = str(info.value)
    assert name in message
    assert str(value) in message


@pytest.mark.parametrize(
    "args, name, type_name",
    [
        ((2.5, 3), "in_features", "float"),
        (("3", 2), "in_features", "str"),
        ((3, 2.0), "out_features", "float"),
        ((None, 2), "in_features", "NoneType"),
    ],
    ids=["in-float", "in-str", "out-float", "in-none"],
)
def test_linear_rejects_non_int_features(args, name, type_name):
    with pytest.raises(TypeError) as info:
        nn.Linear(*args)
    message = str(info.value)
    assert name in message
    assert type_name in message


@pytest.mark.parametrize(
    "dtype", ["float", np.float32, lincore.int64], ids=["str", "numpy", "int64"]
)
def test_linear_rejects_bad_dtype(dtype):
    with pytest.raises(TypeError, match="dtype"):
        nn.Linear(3, 2, dtype=dtype)


# --- sizes and memory -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "factory",
    [lincore.zeros, lincore.ones, lincore.empty, lincore.rand],
    ids=["zeros", "ones", "empty", "rand"],
)
@pytest.mark.parametrize(
    "shape", [(2**40, 2**40), (2**32, 2**32), (3, 2**62)], ids=["2p40x2p40", "2p32x2p32", "3x2p62"]
)
def test_factory_rejects_numel_overflowing_int64(factory, shape):
    with pytest.raises(ValueError) as info:
        factory(*shape)
    message = str(info.value)
    assert "int64" in message
    assert str(shape[1]) in message


@pytest.mark.parametrize(
    "shape, dtype, nbytes",
    [
        ((2**40, 2**10), lincore.float32, 2**52),
        ((2**62,), lincore.float32, 2**64),
        ((2**31, 2**31), lincore.float64, 2**65),
    ],
    ids=["4PiB", "bytes-overflow-f32", "bytes-overflow-f64"],
)
def test_empty_too_large_raises_memory_error(shape, dtype, nbytes):
    with pytest.raises(MemoryError) as info:
        lincore.empty(*shape, dtype=dtype)
    # The message says what was asked for: the byte count or the shape.
    message = str(info.value)
    shape_text = ", ".join(str(s) for s in shape)
    assert str(nbytes) in message or shape_text in message, message
    # ... and lincore goes on working.
    layer = seeded_linear(3, 2)
    x = lincore.ones(4, 3)
    y = layer(x)
    assert_linear_close(y, np.asarray(x), np.asarray(layer.weight), np.asarray(layer.bias))
    assert lincore.zeros(2, 3).sum().item() == 0.0


@pytest.mark.parametrize("size, bad", [((-1,), -1), ((2, -3), -3)], ids=["neg1", "2x-neg3"])
@pytest.mark.parametrize(
    "factory", [lincore.zeros, lincore.ones, lincore.empty], ids=["zeros", "ones", "empty"]
)
def test_factory_rejects_negative_dim(factory, size, bad):
    with pytest.raises(ValueError, match=re.escape(f"negative dimension {bad}")):
        factory(*size)


@pytest.mark.parametrize(
    "dtype, type_name",
    [("float32", "str"), (np.float32, "type"), (1, "int")],
    ids=["str", "numpy-type", "int"],
)
@pytest.mark.parametrize(
    "factory",
    [lincore.zeros, lincore.ones, lincore.empty, lincore.randn],
    ids=["zeros", "ones", "empty", "randn"],
)
def test_factory_rejects_bad_dtype(factory, dtype, type_name):
    with pytest.raises(TypeError, match=f"argument 'dtype' must be lincore.dtype, not {type_name}"):
        factory(2, 3, dtype=dtype)


def test_tensor_rejects_bad_dtype():
    with pytest.raises(TypeError, match="argument 'dtype' must be lincore.dtype, not str"):
        lincore.tensor([1.0], dtype="float")


# --- views, indexing, scalars ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, text",
    [
        ((4, 2), "shape '[4, 2]' is invalid for input of size 6"),
        ((7,), "shape '[7]' is invalid for input of size 6"),
        ((-1, 4), "shape '[-1, 4]' is invalid for input of size 6"),
        ((-1, -1), "only one dimension can be inferred"),
    ],
    ids=["4x2", "7", "infer-4", "two-infer"],
)
def test_reshape_rejects_incompatible_size(shape, text):
    t = lincore.arange(6).reshape(2, 3)
    with pytest.raises(RuntimeError, match=re.escape(text)):
        t.reshape(*shape)
    with pytest.raises(RuntimeError, match=re.escape(text)):
        t.view(*shape)
    assert t.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_view_rejects_non_viewable_strides():
    with pytest.raises(
        RuntimeError,
        match=re.escape("view size is not compatible with input tensor's size and stride"),
    ):
        lincore.ones(2, 3).T.view(6)


@pytest.mark.parametrize(
    "key, text",
    [
        (2, "index 2 is out of bounds for dimension 0 with size 2"),
        (-3, "index -3 is out of bounds for dimension 0 with size 2"),
        ((0, 3), "index 3 is out of bounds for dimension 1 with size 3"),
        ((1, -4), "index -4 is out of bounds for dimension 1 with size 3"),
        ((0, 0, 0), "too many indices for tensor of dimension 2"),
        ([0, 5], "index 5 is out of bounds for dimension 0 with size 2"),
    ],
    ids=["row2", "row-neg3", "col3", "col-neg4", "too-many", "list-5"],
)
def test_getitem_rejects_index_out_of_range(key, text):
    t = lincore.ones(2, 3)
    with pytest.raises(IndexError, match=re.escape(text)):
        t[key]


def test_getitem_rejects_index_into_0d_tensor():
    with pytest.raises(IndexError, match=re.escape("invalid index of a 0-dim tensor")):
        lincore.tensor(1.0)[0]


@pytest.mark.parametrize("shape, n", [((2, 3), 6), ((0,), 0), ((2,), 2)], ids=["2x3", "empty", "2"])
def test_item_rejects_not_one_element(shape, n):
    message = f"a Tensor with {n} elements cannot be converted to Scalar"
    with pytest.raises(RuntimeError, match=re.escape(message)):
        lincore.ones(*shape).item()


@pytest.mark.parametrize("dtype", [lincore.int64, lincore.bool], ids=["int64", "bool"])
def test_requires_grad_rejects_non_float(dtype):
    t = lincore.ones(2, dtype=dtype)
    pattern = "(?i)only Tensors of floating point .*can require gradients"
    with pytest.raises(RuntimeError, match=pattern):
        t.requires_grad_()
    with pytest.raises(RuntimeError, match=pattern):
        t.requires_grad = True
    assert t.requires_grad is False
    with pytest.raises(RuntimeError, match=pattern):
        lincore.tensor([1, 2], dtype=dtype, requires_grad=True)
    with pytest.raises(RuntimeError, match=pattern):
        lincore.zeros(2, dtype=dtype, requires_grad=True)


# --- modules --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, type_name",
    [
        ([1.0, 2.0], "list"),
        (np.ones(2, np.float32), "ndarray"),
        (3.0, "float"),
    ],
    ids=["list", "ndarray", "float"],
)
def test_parameter_rejects_non_tensor(data, type_name):
    with pytest.raises(TypeError) as info:
        nn.Parameter(data)
    message = str(info.value)
    assert "Parameter" in message
    assert type_name in message


@pytest.mark.parametrize(
    "value, type_text",
    [
        (lambda: lincore.zeros(2, 3), "Tensor"),
        (lambda: np.zeros((2, 3), np.float32), "numpy.ndarray"),
        (lambda: 0.5, "float"),
        (lambda: nn.ReLU(), "ReLU"),
    ],
    ids=["tensor", "ndarray", "float", "module"],
)
@pytest.mark.parametrize("name", ["weight", "bias"])
def test_linear_rejects_non_parameter_assignment(name, value, type_text):
    layer = seeded_linear(3, 2)
    x = lincore.ones(4, 3)
    y_before = np.array(layer(x))
    before = snapshot(layer)
    original = getattr(layer, name)
    message = f"as parameter '{name}' (lincore.nn.Parameter or None expected)"
    with pytest.raises(TypeError, match=re.escape(message)) as info:
        setattr(layer, name, value())
    assert type_text in str(info.value)
    assert getattr(layer, name) is original
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert list(layer.children()) == []
    assert snapshot(layer) == before
    assert np.asarray(layer(x)).tobytes() == y_before.tobytes()


def test_sequential_rejects_non_module_assignment():
    model = nn.Sequential(nn.ReLU())
    message = "as child module '0' (lincore.nn.Module or None expected)"
    with pytest.raises(TypeError, match=re.escape(message)):
        setattr(model, "0", lincore.zeros(2))
    assert isinstance(model[0], nn.ReLU)


@pytest.mark.parametrize("idx", [3, -4, 100], ids=["3", "neg4", "100"])
def test_sequential_rejects_index_out_of_range(idx):
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    before = snapshot(model)
    with pytest.raises(IndexError, match=re.escape(f"index {idx} is out of range")):
        model[idx]
    with pytest.raises(IndexError, match=re.escape(f"index {idx} is out of range")):
        model[idx] = nn.Tanh()
    with pytest.raises(IndexError, match=re.escape(f"index {idx} is out of range")):
        del model[idx]
    assert len(model) == 3
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear"]
    assert snapshot(model) == before


def test_sequential_rejects_non_integer_index():
    with pytest.raises(TypeError, match="str"):
        nn.Sequential(nn.ReLU())["a"]


@pytest.mark.parametrize("approximate", ["foo", "Tanh", ""], ids=["foo", "Tanh", "empty"])
def test_gelu_rejects_unknown_approximate(approximate):
    # RuntimeError, as PyTorch's F.gelu (whose nn.GELU raises it at the call, lincore's earlier).
    message = "approximate argument must be either none or tanh"
    with pytest.raises(RuntimeError, match=message) as info:
        nn.GELU(approximate)
    assert repr(approximate) in str(info.value)
    with pytest.raises(RuntimeError, match=message):
        nn.functional.gelu(lincore.ones(2), approximate=approximate)


def test_leaky_relu_rejects_non_number_slope():
    # PyTorch: TypeError: leaky_relu(): argument 'negative_slope' (position 2) must be Number,
    # not str (raised by the call; raising in the constructor is as good).
    with pytest.raises(TypeError, match="negative_slope"):
        nn.LeakyReLU("a")(lincore.ones(2))


def test_flatten_rejects_start_after_end():
    # PyTorch raises RuntimeError here (it is no ValueError in torch).
    with pytest.raises(
        RuntimeError,
        match=re.escape("flatten() has invalid args: start_dim cannot come after end_dim"),
    ):
        nn.Flatten(2, 1)(lincore.ones(2, 3, 4))


# --- Sequential widths that do not chain ----------------------------------------------------------


@pytest.mark.parametrize(
    "layers, name",
    [
        (lambda: [nn.Linear(10, 18), nn.Linear(19, 5)], "1"),
        (lambda: [nn.Linear(10, 18), nn.ReLU(), nn.Linear(19, 5)], "2"),
        (lambda: OrderedDict(fc1=nn.Linear(10, 18), act=nn.Tanh(), fc2=nn.Linear(19, 5)), "fc2"),
    ],
    ids=["two-linears", "with-relu", "named"],
)
def test_sequential_rejects_widths_that_do_not_chain(layers, name):
    spec = layers()
    model = nn.Sequential(spec) if isinstance(spec, OrderedDict) else nn.Sequential(*spec)
    before = snapshot(model)
    with pytest.raises(RuntimeError) as info:
        model(lincore.ones(2, 10))
    message = str(info.value)
    assert re.search(rf"\blayer {name}\b", message), message
    assert "18" in message and "19" in message
    assert snapshot(model) == before


# --- load_state_dict ------------------------------------------------------------------------------


def three_layer_model():
    lincore.manual_seed(3)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_load_state_dict_reports_every_problem_at_once():
    model = three_layer_model()
    before = snapshot(model)
    state = {
        "0.weight": lincore.full((4, 3), 9.0),  # valid, but must not be applied
        "0.bias": lincore.zeros(5),
        "extra.weight": lincore.zeros(1),
        "zzz": lincore.zeros(1),
    }
    expected = (
        "Error(s) in loading state_dict for Sequential:\n"
        '\tMissing key(s) in state_dict: "2.weight", "2.bias". \n'
        '\tUnexpected key(s) in state_dict: "extra.weight", "zzz". \n'
        "\tsize mismatch for 0.bias: copying a param with shape lincore.Size([5]) from "
        "checkpoint, the shape in current model is lincore.Size([4])."
    )
    with pytest.raises(RuntimeError) as info:
        model.load_state_dict(state)
    assert str(info.value) == expected
    assert snapshot(model) == before


def test_load_state_dict_rejects_non_tensor_value():
    model = three_layer_model()
    before = snapshot(model)
    state = dict(model.state_dict())
    state["2.weight"] = "abc"
    with pytest.raises(
        RuntimeError,
        match=re.escape(
            "Error(s) in loading state_dict for Sequential:\n\tWhile copying the parameter named "
            '"2.weight", expected lincore.Tensor'
        ),
    ) as info:
        model.load_state_dict({k: v.clone() if k != "2.weight" else v for k, v in state.items()})
    assert "<class 'str'>" in str(info.value)
    assert snapshot(model) == before


def test_load_state_dict_rejects_non_mapping():
    message = "Expected state_dict to be dict-like, got <class 'list'>."
    with pytest.raises(TypeError, match=re.escape(message)):
        nn.Linear(3, 2).load_state_dict([1, 2])


def test_load_state_dict_non_strict_returns_incompatible_keys():
    model = three_layer_model()
    new_weight = np.arange(12, dtype=np.float32).reshape(4, 3)
    result = model.load_state_dict(
        {"0.weight": new_weight, "junk": lincore.zeros(3), "2.extra": lincore.zeros(1)},
        strict=False,
    )
    missing, unexpected = result
    assert missing == ["0.bias", "2.weight", "2.bias"]
    assert unexpected == ["junk", "2.extra"]
    assert result.missing_keys == missing and result.unexpected_keys == unexpected
    assert np.array_equal(np.asarray(model[0].weight), new_weight)


def test_load_state_dict_non_strict_still_rejects_size_mismatch():
    model = three_layer_model()
    before = snapshot(model)
    with pytest.raises(
        RuntimeError,
        match=re.escape(
            "size mismatch for 2.bias: copying a param with shape lincore.Size([3]) from "
            "checkpoint, the shape in current model is lincore.Size([2])."
        ),
    ):
        model.load_state_dict(
            {"0.weight": lincore.zeros(4, 3), "2.bias": lincore.zeros(3)}, strict=False
        )
    assert snapshot(model) == before


# --- numpy inputs in any layout -------------------------------------------------------------------


def layouts(values):
    """(name, array) pairs holding the same values as `values` in the layouts a caller may use."""
    dt = values.dtype
    yield "transposed", np.ascontiguousarray(values.T).T
    yield "fortran", np.asfortranarray(values)
    spread = np.zeros(tuple(2 * s for s in values.shape), dt)
    spread[(slice(None, None, 2),) * values.ndim] = values
    yield "sliced", spread[(slice(None, None, 2),) * values.ndim]
    yield "negative-strides", np.flip(np.flip(values).copy())
    readonly = np.frombuffer(values.tobytes(), dt).reshape(values.shape)
    assert not readonly.flags.writeable
    yield "read-only", readonly
    raw = np.zeros(values.nbytes + dt.itemsize, np.uint8)
    misaligned = raw[1 : 1 + values.nbytes].view(dt).reshape(values.shape)
    misaligned[...] = values
    assert not misaligned.flags.aligned
    yield "misaligned", misaligned
    yield "big-endian", values.astype(dt.newbyteorder(">"))


LAYOUT_NAMES = [
    "transposed",
    "fortran",
    "sliced",
    "negative-strides",
    "read-only",
    "misaligned",
    "big-endian",
]


@pytest.mark.parametrize("how", ["tensor", "as_tensor", "ndarray"])
@pytest.mark.parametrize("layout", LAYOUT_NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(
    "m, n, k",
    [(5, 3, 7), (1, 17, 33), (9, 1, 1), (3, 2, 257)],
    ids=["m5-n3-k7", "m1-n17-k33", "m9-n1-k1", "m3-n2-k257"],
)
def test_linear_accepts_any_numpy_layout(m, n, k, dtype, layout, how, rng):
    values = rng.standard_normal((m, k)).astype(dtype)
    arr = dict(layouts(values))[layout]
    assert np.array_equal(arr, values)
    arr_before = arr.tobytes(order="A")
    layer = seeded_linear(k, n, dtype=lincore.float32 if dtype == np.float32 else lincore.float64)
    w, b = np.asarray(layer.weight), np.asarray(layer.bias)
    x = {"tensor": lincore.tensor, "as_tensor": lincore.as_tensor, "ndarray": lambda a: a}[how](arr)
    y = np.array(layer(x))
    y_copy = np.array(layer(lincore.tensor(np.array(values, order="C"))))
    assert y.dtype == np.dtype(dtype)
    assert_linear_close(y, values, w, b)
    assert y.tobytes() == y_copy.tobytes()
    assert arr.tobytes(order="A") == arr_before


@pytest.mark.parametrize("layout", LAYOUT_NAMES)
def test_sequential_accepts_any_numpy_layout(layout, rng):
    values = rng.standard_normal((2, 3, 6)).astype(np.float32)
    arr = dict(layouts(values))[layout]
    lincore.manual_seed(11)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4))
    y = np.array(model(lincore.tensor(arr)))
    y_copy = np.array(model(lincore.tensor(np.array(values, order="C"))))
    assert y.shape == (2, 3, 4)
    assert y.tobytes() == y_copy.tobytes()


def test_linear_accepts_zero_stride_numpy_input(rng):
    row = rng.standard_normal(7).astype(np.float32)
    arr = np.broadcast_to(row, (5, 7))
    layer = seeded_linear(7, 3)
    y = np.array(layer(lincore.tensor(arr)))
    y_copy = np.array(layer(lincore.tensor(np.array(arr))))
    assert_linear_close(y, arr, np.asarray(layer.weight), np.asarray(layer.bias))
    assert y.tobytes() == y_copy.tobytes()
    y_direct = np.array(layer(lincore.as_tensor(arr)))
    assert y_direct.tobytes() == y_copy.tobytes()


# --- from_numpy -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "np_dtype",
    [np.int32, np.int16, np.uint8, np.float16, np.complex64],
    ids=["int32", "int16", "uint8", "float16", "complex64"],
)
def test_from_numpy_rejects_unsupported_dtype(np_dtype):
    arr = np.ones(3, np_dtype)
    with pytest.raises(
        TypeError,
        match=re.escape(
            f"can't convert np.ndarray of type numpy.{np.dtype(np_dtype).name}. The only "
            "supported types are: float64, float32, int64, and bool."
        ),
    ):
        lincore.from_numpy(arr)


def test_from_numpy_rejects_non_array():
    with pytest.raises(TypeError, match=re.escape("expected np.ndarray (got list)")):
        lincore.from_numpy([1.0, 2.0])


def test_tensor_rejects_self_referencing_list():
    # Found by tools/fuzz_harness.py: the nesting walk never ended.
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="nested more than 64 levels"):
        lincore.tensor(cyclic)
    grid: list = [[None, None], [None, None]]
    for row in grid:
        row[0] = row[1] = grid
    with pytest.raises(ValueError, match="nested more than 64 levels"):
        lincore.tensor(grid)


def test_tensor_rejects_nested_array_larger_than_memory():
    # Found by tools/fuzz_harness.py: the element-by-element walk of a huge broadcast view hung.
    huge = np.broadcast_to(np.float32(1), (2**33, 2**20))
    with pytest.raises(MemoryError, match="more than fit"):
        lincore.tensor([huge])


def test_as_tensor_rejects_a_non_lincore_dtype():
    with pytest.raises(TypeError, match="dtype"):
        lincore.as_tensor(np.zeros(2), dtype="float32")
