# The same models in PyTorch and lincore: weights copied with load_state_dict(torch.state_dict()),
# outputs checked unit by unit (a Linear with its following activation, or a lone layer) against
# the float64 reference with THE tolerance of conftest.assert_linear_close, for both libraries;
# and reprs, parameter counts, state_dict keys, tensor printing and error types compared.

import math
import warnings
import zlib
from collections import OrderedDict

import numpy as np
import pytest

import lincore
import lincore.nn as lnn
from conftest import assert_linear_close

torch = pytest.importorskip("torch")
tnn = torch.nn

TORCH_DTYPE = {"f32": torch.float32, "f64": torch.float64}
LINCORE_DTYPE = {"f32": lincore.float32, "f64": lincore.float64}
NUMPY_DTYPE = {"f32": np.float32, "f64": np.float64}

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid(v):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-v))


# Float64 references of the activations; each has |derivative| <= ~1, as the tolerance rule needs.
ACTIVATIONS = {
    "relu": (lambda nn: nn.ReLU(), lambda v: np.maximum(v, 0.0)),
    "leaky0.2": (lambda nn: nn.LeakyReLU(0.2), lambda v: np.where(v >= 0, v, 0.2 * v)),
    "sigmoid": (lambda nn: nn.Sigmoid(), _sigmoid),
    "tanh": (lambda nn: nn.Tanh(), np.tanh),
    "gelu": (lambda nn: nn.GELU(), lambda v: 0.5 * v * (1.0 + _erf(v / math.sqrt(2.0)))),
    "gelutanh": (
        lambda nn: nn.GELU("tanh"),
        lambda v: 0.5 * v * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3))),
    ),
}
PASSTHROUGH = ("identity", "flatten")  # layers that only move or relabel values


# --- stack specifications -------------------------------------------------------------------------
# A spec is a tuple of tokens: ("lin", in, out, bias), an activation name, "identity", or
# "flatten" (only first: the input then ends in (2, in/2) and Flatten(-2, -1) merges the two).


def spec_id(spec):
    parts = []
    for tok in spec:
        if isinstance(tok, tuple):
            parts.append(f"lin{tok[1]}x{tok[2]}" + ("" if tok[3] else "nb"))
        else:
            parts.append(tok)
    return "-".join(parts)


def random_spec(rng):
    widths = [0, 1, 2, 3, 5, 7, 8, 9, 16, 17, 31, 33, 64, 67]
    depth = int(rng.integers(1, 5))
    spec = []
    flatten_first = rng.random() < 0.15
    k = int(rng.choice([2, 4, 8, 18, 34])) if flatten_first else int(rng.choice(widths))
    if flatten_first:
        spec.append("flatten")
    for _ in range(depth):
        n = int(rng.choice(widths[1:]))
        spec.append(("lin", k, n, bool(rng.random() < 0.75)))
        r = rng.random()
        if r < 0.6:
            spec.append(str(rng.choice(list(ACTIVATIONS))))
        elif r < 0.7:
            spec.append("identity")
        k = n
    return tuple(spec)


HAND_SPECS = [
    (("lin", 3, 2, True),),
    (("lin", 3, 2, False),),
    (("lin", 0, 4, True),),
    (("lin", 0, 4, False), "relu"),
    (("lin", 1, 1, True), "sigmoid", ("lin", 1, 1, True)),
    (("lin", 5, 0, True), ("lin", 0, 3, True), "tanh"),
    (("lin", 8, 4, True), ("lin", 4, 2, True)),
    (("lin", 10, 18, True), ("lin", 18, 20, True), ("lin", 20, 5, True)),
    (("lin", 17, 9, True), "identity", "relu", "tanh", ("lin", 9, 3, False)),
    (("lin", 7, 7, True), "gelu", "gelutanh", "leaky0.2"),
    ("flatten", ("lin", 6, 5, True), "leaky0.2", ("lin", 5, 2, True)),
    ("flatten", ("lin", 0, 3, True), "gelu"),
    (("lin", 257, 33, True), "gelutanh", ("lin", 33, 1, True), "sigmoid"),
    (("lin", 2, 3, True), "identity"),
]
_spec_rng = np.random.default_rng(20240607)
RANDOM_SPECS = [random_spec(_spec_rng) for _ in range(24)]
SPECS = list(dict.fromkeys(HAND_SPECS + RANDOM_SPECS))
SPEC_IDS = [spec_id(s) for s in SPECS]

BATCHES = [(), (1,), (7,), (2, 3), (0,)]
BATCH_IDS = ["nobatch", "b1", "b7", "b2x3", "b0"]


def build(spec, nn, dtype):
    layers = []
    for tok in spec:
        if isinstance(tok, tuple):
            _, k, n, bias = tok
            layers.append(nn.Linear(k, n, bias=bias, dtype=dtype))
        elif tok == "identity":
            layers.append(nn.Identity())
        elif tok == "flatten":
            layers.append(nn.Flatten(-2, -1))
        else:
            layers.append(ACTIVATIONS[tok][0](nn))
    return nn.Sequential(*layers)


def input_shape(spec, batch):
    if spec[0] == "flatten":
        k = spec[1][1]
        return batch + (2, k // 2)
    return batch + (spec[0][1],)


def make_pair(spec, dt, seed=0):
    """(torch model, lincore model with torch's weights)."""
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        # torch warns that initialising a layer with a zero width is a no-op.
        warnings.filterwarnings("ignore", "Initializing zero-element tensors is a no-op")
        tmodel = build(spec, tnn, TORCH_DTYPE[dt])
    lmodel = build(spec, lnn, LINCORE_DTYPE[dt])
    lmodel.load_state_dict(tmodel.state_dict())
    return tmodel, lmodel


def units(spec):
    """(start, end, kind): a Linear with its following activation, or one lone layer."""
    i = 0
    while i < len(spec):
        tok = spec[i]
        if isinstance(tok, tuple):
            if i + 1 < len(spec) and spec[i + 1] in ACTIVATIONS:
                yield i, i + 2, "linear+act"
                i += 2
            else:
                yield i, i + 1, "linear"
                i += 1
        else:
            yield i, i + 1, "passthrough" if tok in PASSTHROUGH else "act"
            i += 1


def check_unit(kind, spec, start, end, y, x_in, lmodel):
    """y, the output of layers start..end given x_in, within THE tolerance of the reference."""
    if kind in ("linear", "linear+act"):
        layer = lmodel[start]
        w = np.asarray(layer.weight.detach())
        b = None if layer.bias is None else np.asarray(layer.bias.detach())
        act = ACTIVATIONS[spec[start + 1]][1] if kind == "linear+act" else None
        assert_linear_close(y, x_in, w, b, act=act)
    elif kind == "act":
        # An activation alone: the identity Linear turns the reference into act(x_in).
        n = x_in.shape[-1]
        assert_linear_close(y, x_in, np.eye(n), None, act=ACTIVATIONS[spec[start]][1])
    else:
        expected_shape = (
            x_in.shape[:-2] + (x_in.shape[-2] * x_in.shape[-1],)
            if spec[start] == "flatten"
            else x_in.shape
        )
        assert y.shape == expected_shape
        assert y.tobytes() == np.ascontiguousarray(x_in).reshape(expected_shape).tobytes()


# --- numerical parity -----------------------------------------------------------------------------


@pytest.mark.parametrize("batch", BATCHES, ids=BATCH_IDS)
@pytest.mark.parametrize("dt", ["f32", "f64"])
@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_parity_sequential_outputs_layer_by_layer(spec, dt, batch):
    tmodel, lmodel = make_pair(spec, dt)
    rng = np.random.default_rng(zlib.crc32(f"{spec_id(spec)}-{dt}-{batch}".encode()))
    x = rng.standard_normal(input_shape(spec, batch)).astype(NUMPY_DTYPE[dt])
    x_in = x
    for start, end, kind in units(spec):
        y = np.array(lmodel[:end](lincore.tensor(x)))
        assert y.dtype == NUMPY_DTYPE[dt]
        check_unit(kind, spec, start, end, y, x_in, lmodel)
        # torch, fed the same input, meets the same bound: the references mean what torch means.
        with torch.no_grad():
            ty = tmodel[start:end](torch.from_numpy(np.array(x_in))).numpy()
        assert ty.shape == y.shape
        check_unit(kind, spec, start, end, ty, x_in, lmodel)
        x_in = y
    y_full = np.array(lmodel(lincore.tensor(x)))
    assert y_full.tobytes() == x_in.tobytes()  # the whole stack = its last prefix, bitwise
    with torch.no_grad():
        t_full = tmodel(torch.from_numpy(x)).numpy()
    assert t_full.shape == y_full.shape


@pytest.mark.parametrize("dt", ["f32", "f64"])
@pytest.mark.parametrize(
    "m, n, k",
    [(1, 1, 1), (5, 17, 33), (7, 1, 67), (3, 31, 256), (2, 4, 1000)],
    ids=["m1-n1-k1", "m5-n17-k33", "m7-n1-k67", "m3-n31-k256", "m2-n4-k1000"],
)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_parity_linear_final_output(m, n, k, bias, dt):
    torch.manual_seed(m * 1000 + n * 10 + k)
    tlayer = tnn.Linear(k, n, bias=bias, dtype=TORCH_DTYPE[dt])
    llayer = lnn.Linear(k, n, bias=bias, dtype=LINCORE_DTYPE[dt])
    llayer.load_state_dict(tlayer.state_dict())
    rng = np.random.default_rng(k)
    x = rng.standard_normal((m, k)).astype(NUMPY_DTYPE[dt])
    w = tlayer.weight.detach().numpy()
    b = tlayer.bias.detach().numpy() if bias else None
    assert np.asarray(llayer.weight.detach()).tobytes() == w.tobytes()
    y = np.array(llayer(lincore.tensor(x)))
    with torch.no_grad():
        ty = tlayer(torch.from_numpy(x)).numpy()
    assert_linear_close(y, x, w, b)
    assert_linear_close(ty, x, w, b)


def test_parity_load_state_dict_accepts_torch_tensors():
    torch.manual_seed(0)
    tmodel = tnn.Sequential(tnn.Linear(4, 3), tnn.ReLU(), tnn.Linear(3, 2))
    lmodel = lnn.Sequential(lnn.Linear(4, 3), lnn.ReLU(), lnn.Linear(3, 2))
    result = lmodel.load_state_dict(tmodel.state_dict())
    assert list(result.missing_keys) == [] and list(result.unexpected_keys) == []
    for (tn, tp), (ln, lp) in zip(tmodel.named_parameters(), lmodel.named_parameters()):
        assert tn == ln
        assert np.asarray(lp.detach()).tobytes() == tp.detach().numpy().tobytes()
    # Parameters that require grad are accepted as they are (no .detach() needed by the caller).
    lmodel.load_state_dict(OrderedDict(tmodel.named_parameters()))


@pytest.mark.parametrize("slope", [0.2, 0.01, 1 / 3], ids=["0.2", "0.01", "third"])
@pytest.mark.parametrize("dt", ["f32", "f64"])
def test_parity_leaky_relu_slope_in_layer_dtype(slope, dt):
    # One multiplication, correctly rounded in the tensor's dtype: bitwise equal to torch.
    x = np.array([-1.0, -3.5, 2.0, -1e-3, 0.0], NUMPY_DTYPE[dt])
    expected = tnn.LeakyReLU(slope)(torch.from_numpy(x)).numpy()
    assert np.array(lnn.LeakyReLU(slope)(lincore.tensor(x))).tobytes() == expected.tobytes()
    assert (
        np.array(lnn.functional.leaky_relu(lincore.tensor(x), slope)).tobytes()
        == expected.tobytes()
    )


def count(model):
    return sum(p.numel() for p in model.parameters())


# --- structure parity ---------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_parity_repr_count_and_state_dict_keys(spec):
    tmodel, lmodel = make_pair(spec, "f32")
    assert str(tmodel).replace("torch", "lincore") == str(lmodel)
    assert repr(tmodel).replace("torch", "lincore") == repr(lmodel)
    assert count(lmodel) == count(tmodel)
    tsd, lsd = tmodel.state_dict(), lmodel.state_dict()
    assert list(lsd) == list(tsd)
    assert [tuple(v.shape) for v in lsd.values()] == [tuple(v.shape) for v in tsd.values()]
    assert [n for n, _ in lmodel.named_parameters()] == [n for n, _ in tmodel.named_parameters()]
    assert [type(m).__name__ for m in lmodel.modules()] == [
        type(m).__name__ for m in tmodel.modules()
    ]


@pytest.mark.parametrize(
    "make",
    [
        lambda nn: nn.Sequential(nn.Linear(8, 4), nn.Linear(4, 2)),
        lambda nn: nn.Sequential(
            OrderedDict(
                fc1=nn.Linear(3, 5),
                act=nn.LeakyReLU(),
                body=nn.Sequential(nn.Linear(5, 5), nn.GELU("tanh")),
                flat=nn.Flatten(),
                out=nn.Linear(5, 1, bias=False),
            )
        ),
        lambda nn: nn.Sequential(nn.Identity(), nn.ReLU(inplace=True), nn.Flatten(0, -1)),
        lambda nn: nn.Linear(3, 2, bias=False),
    ],
    ids=["seed-model", "nested", "no-params", "linear"],
)
def test_parity_repr_count_and_state_dict_of_named_models(make):
    tmodel, lmodel = make(tnn), make(lnn)
    assert str(tmodel).replace("torch", "lincore") == str(lmodel)
    assert count(lmodel) == count(tmodel)
    assert [(k, tuple(v.shape)) for k, v in lmodel.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in tmodel.state_dict().items()
    ]


# --- tensor printing ------------------------------------------------------------------------------


def _print_cases():
    rng = np.random.default_rng(99)
    cases = OrderedDict()
    cases["f32-2x3"] = rng.standard_normal((2, 3)).astype(np.float32)
    cases["f32-large"] = (rng.standard_normal((3, 4)) * 1e6).astype(np.float32)
    cases["f32-tiny"] = (rng.standard_normal(5) * 1e-6).astype(np.float32)
    cases["f32-ints"] = np.array([1.0, -2.0, 300.0], np.float32)
    cases["f32-nonfinite"] = np.array([np.nan, np.inf, -np.inf, 1.5], np.float32)
    cases["f32-0d"] = np.array(3.25, np.float32)
    cases["f32-empty"] = np.zeros((0, 3), np.float32)
    cases["f32-summarized"] = rng.standard_normal((40, 40)).astype(np.float32)
    cases["f32-3d"] = rng.standard_normal((2, 2, 3)).astype(np.float32)
    cases["f64-2x3"] = rng.standard_normal((2, 3))
    cases["f64-mixed"] = np.array([1e-10, 1.0, 1e10])
    cases["f64-0d"] = np.array(-0.5)
    cases["i64-small"] = rng.integers(-50, 50, (3, 4))
    cases["i64-big"] = np.array([2**62, -(2**63), 0])
    cases["i64-0d"] = np.array(7)
    cases["i64-summarized"] = np.arange(2000)
    cases["bool-1d"] = rng.random(6) < 0.5
    cases["bool-2d"] = rng.random((2, 3)) < 0.5
    cases["bool-empty"] = np.zeros(0, bool)
    return cases


PRINT_CASES = _print_cases()


@pytest.mark.parametrize("name", list(PRINT_CASES))
def test_parity_tensor_repr(name):
    values = PRINT_CASES[name]
    expected = repr(torch.tensor(values)).replace("torch.", "lincore.")
    assert repr(lincore.tensor(values)) == expected
    assert repr(lincore.from_numpy(values)) == expected


# --- errors ---------------------------------------------------------------------------------------


def _raised(fn):
    with pytest.raises(Exception) as info:
        fn()
    return info.value


@pytest.mark.parametrize(
    "x_shape", [(4,), (5, 4), (2, 5, 4), (5, 2), ()], ids=["x4", "m5-k4", "b2-m5-k4", "m5-k2", "0d"]
)
def test_parity_linear_mismatched_input_error(x_shape):
    tlayer, llayer = tnn.Linear(3, 2), lnn.Linear(3, 2)
    te = _raised(lambda: tlayer(torch.ones(x_shape)))
    # lincore.tensor(numpy) rather than lincore.ones(): see test_errors' 0-d crash cases.
    le = _raised(lambda: llayer(lincore.tensor(np.ones(x_shape, np.float32))))
    assert type(le) is type(te)
    assert str(le) == str(te)


@pytest.mark.parametrize("dt", ["long", "double", "bool"])
def test_parity_linear_dtype_error(dt):
    tlayer, llayer = tnn.Linear(3, 2), lnn.Linear(3, 2)
    te = _raised(lambda: tlayer(torch.ones(1, 3, dtype=getattr(torch, dt))))
    le = _raised(lambda: llayer(lincore.ones(1, 3, dtype=getattr(lincore, dt))))
    assert type(le) is type(te)
    assert str(le) == str(te)


def test_parity_sequential_mismatched_widths_error():
    tmodel = tnn.Sequential(tnn.Linear(10, 18), tnn.Linear(19, 5))
    lmodel = lnn.Sequential(lnn.Linear(10, 18), lnn.Linear(19, 5))
    te = _raised(lambda: tmodel(torch.ones(2, 10)))
    le = _raised(lambda: lmodel(lincore.ones(2, 10)))
    assert type(le) is type(te)
    assert str(le).startswith(str(te))  # lincore adds which layer failed


@pytest.mark.parametrize("data", [[[1, 2], [3]], [[[1], [2]], [[3]]]], ids=["2d", "3d"])
def test_parity_ragged_list_error(data):
    te = _raised(lambda: torch.tensor(data))
    le = _raised(lambda: lincore.tensor(data))
    assert type(le) is type(te)
    assert str(le) == str(te)


def test_parity_load_state_dict_error():
    tmodel = tnn.Sequential(tnn.Linear(3, 4), tnn.ReLU(), tnn.Linear(4, 2))
    lmodel = lnn.Sequential(lnn.Linear(3, 4), lnn.ReLU(), lnn.Linear(4, 2))
    tsd = {"0.weight": torch.zeros(4, 3), "0.bias": torch.zeros(5), "x.y": torch.zeros(1)}
    lsd = {"0.weight": lincore.zeros(4, 3), "0.bias": lincore.zeros(5), "x.y": lincore.zeros(1)}
    te = _raised(lambda: tmodel.load_state_dict(tsd))
    le = _raised(lambda: lmodel.load_state_dict(lsd))
    assert type(le) is type(te)
    assert str(le) == str(te).replace("torch.", "lincore.")
