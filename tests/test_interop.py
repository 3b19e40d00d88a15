# Moving models and tensors between lincore and PyTorch (or numpy): from_torch / to_torch with
# copied weights, round trips, reprs and errors; DLPack zero-copy both ways, proven by writing
# through one side and reading the other; and `import lincore` without importing torch.

import gc
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest

import lincore
import lincore.nn as nn
from conftest import NUMPY_DLPACK_WRITABLE, assert_linear_close


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def _bits(a):
    return np.ascontiguousarray(np.asarray(a)).tobytes()


def test_interop_import_lincore_does_not_import_torch(tmp_path):
    code = (
        "import sys\n"
        "import numpy as np\n"
        "import lincore\n"
        "assert 'torch' not in sys.modules, 'import lincore imported torch'\n"
        "lincore.save({'a': lincore.ones(2)}, sys.argv[1])\n"
        "assert list(lincore.load(sys.argv[1])) == ['a']\n"
        "assert np.from_dlpack(lincore.ones(3)).sum() == 3\n"
        "assert 'torch' not in sys.modules, 'save, load or DLPack imported torch'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "a.safetensors")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


# --- from_torch ----------------------------------------------------------------------------------


def _torch_stack(torch, dtype):
    tnn = torch.nn
    torch.manual_seed(0)
    return tnn.Sequential(
        tnn.Flatten(1, -1),
        tnn.Linear(6, 8, dtype=dtype),
        tnn.ReLU(),
        tnn.Linear(8, 8, bias=False, dtype=dtype),
        tnn.LeakyReLU(0.2),
        tnn.Linear(8, 7, dtype=dtype),
        tnn.Sigmoid(),
        tnn.Linear(7, 5, dtype=dtype),
        tnn.Tanh(),
        tnn.Linear(5, 5, dtype=dtype),
        tnn.GELU(),
        tnn.Linear(5, 4, dtype=dtype),
        tnn.GELU(approximate="tanh"),
        tnn.Identity(),
        tnn.Linear(4, 3, dtype=dtype),
    )


DTYPES = ["float32", "float64"]


def _lincore_dtype(name):
    return getattr(lincore, name)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_interop_from_torch_linear(torch, rng, dtype, bias):
    tl = torch.nn.Linear(7, 5, bias=bias, dtype=getattr(torch, dtype))
    layer = lincore.from_torch(tl)
    assert type(layer) is nn.Linear
    assert (layer.in_features, layer.out_features) == (7, 5)
    assert layer.weight.dtype is _lincore_dtype(dtype)
    assert isinstance(layer.weight, nn.Parameter) and layer.weight.requires_grad
    assert _bits(layer.weight) == _bits(tl.weight.detach().numpy())
    if bias:
        assert _bits(layer.bias) == _bits(tl.bias.detach().numpy())
    else:
        assert layer.bias is None
    assert repr(layer) == repr(tl)
    x = rng.standard_normal((4, 7)).astype(dtype)
    w = tl.weight.detach().numpy()
    b = tl.bias.detach().numpy() if bias else None
    with lincore.no_grad():
        y = layer(lincore.tensor(x))
    assert_linear_close(np.asarray(y), x, w, b)
    with torch.no_grad():
        assert_linear_close(tl(torch.from_numpy(x)).numpy(), x, w, b)


def test_interop_from_torch_copies_weights(torch):
    tl = torch.nn.Linear(3, 2)
    layer = lincore.from_torch(tl)
    with torch.no_grad():
        tl.weight.fill_(7.0)
    assert float(layer.weight.detach().abs().max()) < 7.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_interop_from_torch_sequential_matches_load_state_dict(torch, rng, dtype):
    tmodel = _torch_stack(torch, getattr(torch, dtype))
    model = lincore.from_torch(tmodel)
    assert type(model) is nn.Sequential
    assert repr(model) == str(tmodel).replace("torch", "lincore")
    assert list(model.state_dict()) == list(tmodel.state_dict())
    for (name, p), (_, tp) in zip(model.named_parameters(), tmodel.named_parameters()):
        assert p.dtype is _lincore_dtype(dtype), name
        assert _bits(p) == _bits(tp.detach().numpy()), name
    # The same model built in lincore and given torch's weights computes bitwise the same
    # (that route is checked against PyTorch unit by unit in test_parity_torch.py).
    d = _lincore_dtype(dtype)
    built = nn.Sequential(
        nn.Flatten(1, -1),
        nn.Linear(6, 8, dtype=d),
        nn.ReLU(),
        nn.Linear(8, 8, bias=False, dtype=d),
        nn.LeakyReLU(0.2),
        nn.Linear(8, 7, dtype=d),
        nn.Sigmoid(),
        nn.Linear(7, 5, dtype=d),
        nn.Tanh(),
        nn.Linear(5, 5, dtype=d),
        nn.GELU(),
        nn.Linear(5, 4, dtype=d),
        nn.GELU(approximate="tanh"),
        nn.Identity(),
        nn.Linear(4, 3, dtype=d),
    )
    built.load_state_dict(tmodel.state_dict())
    x = lincore.tensor(rng.standard_normal((5, 2, 3)).astype(dtype))
    with lincore.no_grad():
        assert _bits(model(x)) == _bits(built(x))


def test_interop_from_torch_nested_sequential_and_names(torch):
    tnn = torch.nn
    inner = tnn.Sequential(OrderedDict([("fc", tnn.Linear(4, 4)), ("act", tnn.GELU())]))
    tmodel = tnn.Sequential(
        OrderedDict([("stem", tnn.Linear(3, 4)), ("block", inner), ("head", tnn.Linear(4, 2))])
    )
    model = lincore.from_torch(tmodel)
    assert type(model.block) is nn.Sequential
    assert list(model.state_dict()) == list(tmodel.state_dict())
    assert repr(model) == str(tmodel).replace("torch", "lincore")


def test_interop_from_torch_keeps_flags_and_sharing(torch):
    tnn = torch.nn
    shared = tnn.Linear(4, 4)
    tmodel = tnn.Sequential(shared, tnn.ReLU(inplace=True), shared, tnn.LeakyReLU(0.3))
    shared.bias.requires_grad_(False)
    tmodel.eval()
    model = lincore.from_torch(tmodel)
    assert model[0] is model[2]
    assert not model.training and not model[0].training
    assert model[0].weight.requires_grad and not model[0].bias.requires_grad
    assert model[1].inplace and model[3].negative_slope == 0.3
    assert repr(model) == str(tmodel)


def test_interop_from_torch_draws_no_random_numbers(torch):
    tl = torch.nn.Linear(30, 20)
    lincore.manual_seed(3)
    expected = np.asarray(lincore.randn(8))
    lincore.manual_seed(3)
    lincore.from_torch(tl)
    assert _bits(lincore.randn(8)) == _bits(expected)


def test_interop_from_torch_state_dict(torch):
    state = OrderedDict(
        [
            ("z.weight", torch.randn(3, 2)),
            ("a.weight", torch.randn(2, dtype=torch.float64)),
            ("steps", torch.tensor(5)),
            ("mask", torch.tensor([True, False])),
            ("view", torch.arange(12.0).reshape(3, 4).t()),
        ]
    )
    out = lincore.from_torch(state)
    assert isinstance(out, OrderedDict) and list(out) == list(state)
    for key, t in state.items():
        assert isinstance(out[key], lincore.Tensor)
        assert _bits(out[key]) == _bits(t.numpy())
        assert np.asarray(out[key]).dtype == t.numpy().dtype
    out["z.weight"][0, 0] = 100.0
    assert float(state["z.weight"][0, 0]) != 100.0  # a copy


def test_interop_from_torch_state_dict_loads_into_a_model(torch):
    tmodel = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    model.load_state_dict(lincore.from_torch(tmodel.state_dict()))
    for p, tp in zip(model.parameters(), tmodel.parameters()):
        assert _bits(p) == _bits(tp.detach().numpy())


def test_interop_from_torch_unsupported_layer_names_it_and_its_position(torch):
    tnn = torch.nn
    tmodel = tnn.Sequential(
        tnn.Linear(3, 3),
        tnn.Sequential(tnn.Linear(3, 3), tnn.ReLU(), tnn.Linear(3, 3), tnn.Conv2d(1, 1, 1)),
    )
    with pytest.raises(TypeError, match=r"unsupported layer Conv2d at '1\.3'"):
        lincore.from_torch(tmodel)
    with pytest.raises(TypeError, match="unsupported layer Softmax2d at the top level"):
        lincore.from_torch(tnn.Softmax2d())
    with pytest.raises(TypeError, match=r"unsupported layer AlphaDropout at '0'"):
        lincore.from_torch(tnn.Sequential(tnn.AlphaDropout()))


def test_interop_from_torch_subclass_is_unsupported(torch):
    class MyLinear(torch.nn.Linear):
        def forward(self, x):
            return super().forward(x) * 2

    with pytest.raises(TypeError, match="unsupported layer MyLinear"):
        lincore.from_torch(torch.nn.Sequential(MyLinear(2, 2)))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda torch: torch.ones(2), "lincore.from_dlpack"),
        (lambda torch: [1, 2], "expected a torch.nn.Module or a state dict"),
        (lambda torch: {"a": [1.0]}, "must be a torch.Tensor, got list"),
        (lambda torch: {"a": torch.ones(2, dtype=torch.float16)}, "torch.float16"),
        (lambda torch: {"a": torch.ones(2, dtype=torch.int32)}, "torch.int32"),
        (lambda torch: torch.nn.Linear(2, 2, dtype=torch.float16), "Linear at the top level"),
    ],
    ids=["tensor", "list", "listvalue", "float16", "int32", "halflinear"],
)
def test_interop_from_torch_bad_input(torch, make, match):
    with pytest.raises(TypeError, match=match):
        lincore.from_torch(make(torch))


# --- to_torch and round trips --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_interop_round_trip_torch_lincore_torch(torch, dtype):
    tmodel = _torch_stack(torch, getattr(torch, dtype))
    back = lincore.from_torch(tmodel).to_torch()
    assert type(back) is torch.nn.Sequential
    assert str(back) == str(tmodel)
    sd, back_sd = tmodel.state_dict(), back.state_dict()
    assert list(back_sd) == list(sd)
    for key in sd:
        assert back_sd[key].dtype == sd[key].dtype
        assert torch.equal(back_sd[key], sd[key]), key
    x = torch.randn(5, 2, 3, dtype=getattr(torch, dtype))
    with torch.no_grad():
        assert torch.equal(back(x), tmodel(x))


@pytest.mark.parametrize("dtype", DTYPES)
def test_interop_round_trip_lincore_torch_lincore(rng, torch, dtype):
    d = _lincore_dtype(dtype)
    model = nn.Sequential(
        nn.Linear(4, 6, dtype=d), nn.GELU("tanh"), nn.Linear(6, 2, dtype=d), nn.Sigmoid()
    )
    torch_model = model.to_torch()
    assert str(torch_model).replace("torch", "lincore") == repr(model)
    again = lincore.from_torch(torch_model)
    for p, q in zip(model.parameters(), again.parameters()):
        assert q.dtype is d
        assert _bits(p) == _bits(q)
    x = lincore.tensor(rng.standard_normal((3, 4)).astype(dtype))
    with lincore.no_grad():
        assert _bits(again(x)) == _bits(model(x))


def test_interop_to_torch_every_layer(torch):
    model = nn.Sequential(
        nn.Flatten(0, 1),
        nn.Linear(3, 2, bias=False),
        nn.ReLU(inplace=True),
        nn.LeakyReLU(0.5),
        nn.Sigmoid(),
        nn.Tanh(),
        nn.GELU(),
        nn.Identity(),
        nn.Sequential(nn.Linear(2, 2)),
    )
    tmodel = model.to_torch()
    kinds = [type(m).__name__ for m in tmodel]
    assert kinds == [
        "Flatten",
        "Linear",
        "ReLU",
        "LeakyReLU",
        "Sigmoid",
        "Tanh",
        "GELU",
        "Identity",
        "Sequential",
    ]
    assert tmodel[0].start_dim == 0 and tmodel[0].end_dim == 1
    assert tmodel[1].bias is None and tmodel[2].inplace and tmodel[3].negative_slope == 0.5
    assert str(tmodel) == repr(model)


def test_interop_to_torch_copies_weights_and_flags(torch):
    layer = nn.Linear(3, 2)
    layer.bias.requires_grad_(False)
    layer.eval()
    tl = layer.to_torch()
    assert tl.weight.requires_grad and not tl.bias.requires_grad and not tl.training
    assert _bits(tl.weight.detach().numpy()) == _bits(layer.weight)
    layer.weight.detach().fill_(9.0)
    assert float(tl.weight.detach().abs().max()) < 9.0  # a copy


def test_interop_to_torch_draws_no_random_numbers(torch):
    layer = nn.Linear(30, 20)
    torch.manual_seed(5)
    expected = torch.randn(8)
    torch.manual_seed(5)
    layer.to_torch()
    assert torch.equal(torch.randn(8), expected)


def test_interop_to_torch_unsupported_module(torch):
    class Custom(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(NotImplementedError, match="to_torch: Custom at the top level"):
        Custom().to_torch()
    with pytest.raises(NotImplementedError, match="to_torch: Custom at '1'"):
        nn.Sequential(nn.ReLU(), Custom()).to_torch()


# --- DLPack --------------------------------------------------------------------------------------

NP_DTYPES = {"f32": np.float32, "f64": np.float64, "i64": np.int64, "bool": np.bool_}


def _sample(np_dtype, shape=(3, 4)):
    n = int(np.prod(shape))
    if np_dtype is np.bool_:
        return (np.arange(n) % 3 == 0).reshape(shape)
    return np.arange(n).astype(np_dtype).reshape(shape)


def _other(np_dtype):
    return np_dtype(True) if np_dtype is np.bool_ else np_dtype(42)


def test_interop_dlpack_device():
    assert lincore.ones(2).__dlpack_device__() == (1, 0)


@pytest.mark.parametrize("dt", NP_DTYPES)
def test_interop_dlpack_lincore_to_numpy_shares_memory(dt):
    np_dtype = NP_DTYPES[dt]
    t = lincore.tensor(_sample(np_dtype))
    a = np.from_dlpack(t)
    assert a.dtype == np_dtype and a.shape == (3, 4)
    assert a.ctypes.data == t.data_ptr()
    t[0, 0] = _other(np_dtype)
    assert a[0, 0] == _other(np_dtype)
    assert a.flags.writeable == NUMPY_DLPACK_WRITABLE
    if NUMPY_DLPACK_WRITABLE:
        a[1, 2] = _other(np_dtype)
        assert t[1, 2].item() == _other(np_dtype)


@pytest.mark.parametrize("dt", NP_DTYPES)
def test_interop_dlpack_lincore_to_torch_shares_memory(torch, dt):
    np_dtype = NP_DTYPES[dt]
    t = lincore.tensor(_sample(np_dtype))
    tt = torch.from_dlpack(t)
    assert tt.numpy().dtype == np_dtype and tuple(tt.shape) == (3, 4)
    assert tt.data_ptr() == t.data_ptr()
    tt[1, 2] = _other(np_dtype).item()
    assert t[1, 2].item() == _other(np_dtype)
    t[0, 0] = _other(np_dtype)
    assert tt[0, 0].item() == _other(np_dtype)


@pytest.mark.parametrize("dt", NP_DTYPES)
def test_interop_dlpack_torch_to_lincore_shares_memory(torch, dt):
    np_dtype = NP_DTYPES[dt]
    tt = torch.from_numpy(_sample(np_dtype).copy())
    t = lincore.from_dlpack(tt)
    assert type(t) is lincore.Tensor and np.asarray(t).dtype == np_dtype
    assert t.data_ptr() == tt.data_ptr()
    tt[1, 2] = _other(np_dtype).item()
    assert t[1, 2].item() == _other(np_dtype)
    t[0, 0] = _other(np_dtype)
    assert tt[0, 0].item() == _other(np_dtype)


@pytest.mark.parametrize("dt", NP_DTYPES)
def test_interop_dlpack_numpy_to_lincore_shares_memory(dt):
    a = _sample(NP_DTYPES[dt]).copy()
    t = lincore.from_dlpack(a)
    assert t.data_ptr() == a.ctypes.data
    t[2, 3] = _other(NP_DTYPES[dt])
    assert a[2, 3] == _other(NP_DTYPES[dt])


@pytest.mark.parametrize(
    "make",
    [
        lambda t: t.T,
        lambda t: t[::2],
        lambda t: t[:, 1],
        lambda t: t[1::2, ::3],
        lambda t: t[2, 3],
        lambda t: t[:0],
    ],
    ids=["transposed", "rows", "column", "strided", "scalar", "empty"],
)
def test_interop_dlpack_non_contiguous_views(torch, make):
    base = lincore.tensor(_sample(np.float32, (6, 8)))
    view = make(base)
    a = np.from_dlpack(view)
    tt = torch.from_dlpack(view)
    assert _bits(a) == _bits(view) == _bits(tt.numpy())
    assert a.strides == np.asarray(view).strides
    if view.numel():
        a[...] = -1.0
        assert np.all(np.asarray(view) == -1.0) and bool((tt == -1.0).all())


@pytest.mark.parametrize(
    "make",
    [
        lambda tt: tt.t(),
        lambda tt: tt[::2],
        lambda tt: tt[:, 1],
        lambda tt: tt[1:, 2:],
        lambda tt: tt[0, 0],
        lambda tt: tt[2].expand(4, 8),
    ],
    ids=["transposed", "rows", "column", "offset", "scalar", "zero_stride"],
)
def test_interop_dlpack_torch_views_to_lincore(torch, make):
    base = torch.arange(48.0).reshape(6, 8)
    view = make(base)
    t = lincore.from_dlpack(view)
    assert tuple(t.shape) == tuple(view.shape)
    assert t.stride() == view.stride()
    assert _bits(t) == _bits(view.numpy())
    base.mul_(-2.0)  # seen through the view in both libraries
    assert _bits(t) == _bits(view.numpy())


def test_interop_dlpack_lifetime_lincore_source():
    t = lincore.tensor(_sample(np.float64))
    expected = _bits(t)
    a = np.from_dlpack(t)
    del t
    gc.collect()
    _ = lincore.zeros(3, 4, dtype=lincore.float64)  # reuse freed memory if it had been freed
    assert _bits(a) == expected


def test_interop_dlpack_lifetime_to_torch(torch):
    t = lincore.tensor(_sample(np.int64))
    expected = _bits(t)
    tt = torch.from_dlpack(t)
    del t
    gc.collect()
    _ = lincore.zeros(3, 4, dtype=lincore.int64)
    assert _bits(tt.numpy()) == expected


def test_interop_dlpack_lifetime_torch_source(torch):
    tt = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    expected = _bits(tt.numpy())
    t = lincore.from_dlpack(tt)
    del tt
    gc.collect()
    _ = torch.zeros(3, 4)
    assert _bits(t) == expected
    view = t.T  # views of the imported tensor keep it alive too
    del t
    gc.collect()
    assert _bits(view) == _bits(np.arange(12, dtype=np.float32).reshape(3, 4).T)


def test_interop_dlpack_requires_grad_is_refused():
    t = lincore.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="require gradient"):
        np.from_dlpack(t)
    assert np.from_dlpack(t.detach()).shape == (2,)


def test_interop_from_dlpack_unsupported_dtype(torch):
    with pytest.raises(TypeError, match="float16"):
        lincore.from_dlpack(torch.ones(2, dtype=torch.float16))
    with pytest.raises(TypeError, match="int32"):
        lincore.from_dlpack(np.ones(2, np.int32))


@pytest.mark.skipif(not NUMPY_DLPACK_WRITABLE, reason="numpy < 2.1: from_dlpack has no copy=")
def test_interop_dlpack_copy_argument():
    t = lincore.arange(4.0)
    copied = np.from_dlpack(t, copy=True)
    copied[0] = 9.0
    assert float(t[0]) == 0.0
    shared = np.from_dlpack(t, copy=False)
    shared[0] = 9.0
    assert float(t[0]) == 9.0
