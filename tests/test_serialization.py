# lincore.save / lincore.load (safetensors files, both ways with PyTorch), hostile and corrupt
# files crafted byte by byte (8-byte little-endian header length + JSON header + data), and
# pickling / deepcopy of tensors, parameters and modules.

import copy
import io
import json
import pickle
import struct
from collections import OrderedDict

import numpy as np
import pytest
import safetensors.numpy

import lincore
import lincore.nn as nn
from lincore import _pickle

DTYPES = {
    "f32": (lincore.float32, np.float32, "F32"),
    "f64": (lincore.float64, np.float64, "F64"),
    "i64": (lincore.int64, np.int64, "I64"),
    "bool": (lincore.bool, np.bool_, "BOOL"),
}
PROTOCOLS = list(range(2, pickle.HIGHEST_PROTOCOL + 1))


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def _values(np_dtype, shape, rng):
    """Distinct values of np_dtype (for floats, with a NaN, an Inf and a negative zero)."""
    n = int(np.prod(shape))
    if np_dtype is np.bool_:
        return (rng.integers(0, 2, n) == 1).reshape(shape)
    if np_dtype is np.int64:
        return rng.integers(-(2**62), 2**62, n, dtype=np.int64).reshape(shape)
    v = rng.standard_normal(n).astype(np_dtype)
    v[: min(n, 3)] = [np.nan, np.inf, -0.0][: min(n, 3)]
    return v.reshape(shape)


def _bits(a):
    """The bytes of an array in C order: compares floats bitwise, NaN and -0.0 included."""
    return np.ascontiguousarray(np.asarray(a)).tobytes()


def _assert_same(t, expected):
    assert isinstance(t, lincore.Tensor)
    arr = np.asarray(t)
    assert arr.dtype == np.asarray(expected).dtype
    assert arr.shape == np.shape(expected)
    assert _bits(arr) == _bits(expected)


def _model():
    lincore.manual_seed(7)
    return nn.Sequential(
        nn.Linear(5, 8),
        nn.ReLU(),
        nn.Linear(8, 8, bias=False),
        nn.GELU(),
        nn.Linear(8, 3),
        nn.Tanh(),
    )


# --- save / load ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape",
    [(), (0,), (1,), (7,), (3, 4), (0, 5), (2, 3, 4)],
    ids=lambda s: "shape" + "x".join(map(str, s)),
)
@pytest.mark.parametrize("dt", DTYPES)
def test_serialization_round_trip_every_dtype_and_shape(tmp_path, rng, dt, shape):
    lincore_dtype, np_dtype, _ = DTYPES[dt]
    value = _values(np_dtype, shape, rng)
    path = tmp_path / "t.safetensors"
    lincore.save({"x": lincore.tensor(value)}, path)
    loaded = lincore.load(path)
    assert list(loaded) == ["x"]
    assert loaded["x"].dtype is lincore_dtype
    _assert_same(loaded["x"], value)


def test_serialization_load_returns_new_aligned_tensors(tmp_path, rng):
    source = lincore.tensor(_values(np.float32, (4, 5), rng))
    lincore.save({"w": source}, tmp_path / "w.safetensors")
    loaded = lincore.load(tmp_path / "w.safetensors")
    assert isinstance(loaded, OrderedDict)
    w = loaded["w"]
    assert not w._shares_storage(source)
    assert w.data_ptr() % 64 == 0
    assert w.is_contiguous() and w._writable and not w.requires_grad
    w[0, 0] = 123.0  # writable and independent
    assert float(source[0, 0]) != 123.0


def test_serialization_load_keeps_the_saved_key_order(tmp_path):
    keys = ["zeta", "alpha", "mid.weight", "0.bias", "beta"]
    lincore.save(OrderedDict((k, lincore.ones(1)) for k in keys), tmp_path / "o.safetensors")
    assert list(lincore.load(tmp_path / "o.safetensors")) == keys


def test_serialization_foreign_file_loads_sorted_by_name(tmp_path):
    # A file without lincore's order metadata (written here by safetensors itself).
    arrays = {k: np.zeros(2, np.float32) for k in ["b", "c", "a"]}
    safetensors.numpy.save_file(arrays, tmp_path / "f.safetensors")
    assert list(lincore.load(tmp_path / "f.safetensors")) == ["a", "b", "c"]


@pytest.mark.parametrize(
    "order",
    ['["a"]', '["a", "a"]', '["a", "x"]', "not json", '{"a": 1}', "[1, 2]"],
    ids=["short", "duplicate", "unknown", "notjson", "object", "ints"],
)
def test_serialization_damaged_order_metadata_falls_back_to_sorted(tmp_path, order):
    arrays = {"b": np.zeros(1, np.float32), "a": np.ones(1, np.float32)}
    safetensors.numpy.save_file(
        arrays, tmp_path / "d.safetensors", metadata={"lincore.order": order}
    )
    loaded = lincore.load(tmp_path / "d.safetensors")
    assert list(loaded) == ["a", "b"]
    assert float(loaded["a"][0]) == 1.0


def test_serialization_saves_non_contiguous_tensors_by_value(tmp_path, rng):
    base = lincore.tensor(_values(np.float64, (6, 8), rng))
    views = OrderedDict(
        [
            ("transposed", base.T),
            ("every_other_row", base[::2]),
            ("column", base[:, 3]),
            ("strided_both", base[1::2, ::3]),
            ("scalar", base[2, 5]),
        ]
    )
    assert not views["transposed"].is_contiguous()
    lincore.save(views, tmp_path / "v.safetensors")
    loaded = lincore.load(tmp_path / "v.safetensors")
    for key, view in views.items():
        _assert_same(loaded[key], np.asarray(view))
        assert loaded[key].is_contiguous()


def test_serialization_saves_numpy_arrays_of_any_layout_and_byte_order(tmp_path, rng):
    a = _values(np.float32, (5, 6), rng)
    arrays = {
        "fortran": np.asfortranarray(a),
        "sliced": a[::2, 1::2],
        "big_endian": a.astype(">f4"),
        "big_endian_i64": np.arange(4, dtype=">i8"),
        "broadcast": np.broadcast_to(np.float64(2.5), (3, 2)),
    }
    lincore.save(arrays, tmp_path / "n.safetensors")
    loaded = lincore.load(tmp_path / "n.safetensors")
    for key, arr in arrays.items():
        _assert_same(loaded[key], arr.astype(arr.dtype.newbyteorder("=")))


def test_serialization_save_module_and_load_state_dict(tmp_path, rng):
    model = _model()
    lincore.save(model, tmp_path / "m.safetensors")
    loaded = lincore.load(tmp_path / "m.safetensors")
    assert list(loaded) == list(model.state_dict())
    fresh = _model()
    for p in fresh.parameters():
        p.detach().zero_()
    fresh.load_state_dict(loaded)
    x = lincore.tensor(rng.standard_normal((4, 5)).astype(np.float32))
    assert _bits(fresh(x)) == _bits(model(x))


def test_serialization_saves_parameters_that_require_grad(tmp_path):
    p = nn.Parameter(lincore.ones(3))
    assert p.requires_grad
    lincore.save({"p": p}, tmp_path / "p.safetensors")
    loaded = lincore.load(tmp_path / "p.safetensors")["p"]
    assert type(loaded) is lincore.Tensor and not loaded.requires_grad  # values only
    _assert_same(loaded, np.ones(3, np.float32))


def test_serialization_file_objects(rng):
    value = _values(np.float64, (3, 2), rng)
    buffer = io.BytesIO()
    lincore.save({"x": lincore.tensor(value)}, buffer)
    buffer.seek(0)
    _assert_same(lincore.load(buffer)["x"], value)


def test_serialization_empty_state_dict(tmp_path):
    lincore.save({}, tmp_path / "e.safetensors")
    assert lincore.load(tmp_path / "e.safetensors") == OrderedDict()


def test_serialization_bool_bytes_are_normalised(tmp_path):
    data = _craft({"m": {"dtype": "BOOL", "shape": [3], "data_offsets": [0, 3]}}, b"\x00\x01\x07")
    (tmp_path / "b.safetensors").write_bytes(data)
    loaded = lincore.load(tmp_path / "b.safetensors")["m"]
    assert np.asarray(loaded).view(np.uint8).tolist() == [0, 1, 1]


@pytest.mark.parametrize(
    "obj, error, match",
    [
        ([lincore.ones(1)], TypeError, "expected a state dict"),
        (lincore.ones(1), TypeError, "expected a state dict"),
        ({1: lincore.ones(1)}, TypeError, "keys must be str"),
        ({"a": [1.0, 2.0]}, TypeError, "must be a lincore.Tensor or a numpy array, got list"),
        ({"a": np.zeros(2, np.float16)}, TypeError, "has dtype float16"),
        ({"a": np.zeros(2, np.int32)}, TypeError, "has dtype int32"),
        ({"__metadata__": lincore.ones(1)}, ValueError, "reserved"),
    ],
    ids=["list", "tensor", "intkey", "listvalue", "float16", "int32", "metadatakey"],
)
def test_serialization_save_bad_input(tmp_path, obj, error, match):
    path = tmp_path / "bad.safetensors"
    with pytest.raises(error, match=match):
        lincore.save(obj, path)
    assert not path.exists()


# --- with PyTorch --------------------------------------------------------------------------------

TORCH_NAMES = {"f32": "float32", "f64": "float64", "i64": "int64", "bool": "bool"}


def test_serialization_lincore_file_loads_in_torch(tmp_path, rng, torch):
    from safetensors.torch import load_file

    values = {dt: _values(DTYPES[dt][1], (3, 4), rng) for dt in DTYPES}
    state = OrderedDict((dt, lincore.tensor(v)) for dt, v in values.items())
    state["view"] = state["f32"].T
    lincore.save(state, tmp_path / "to_torch.safetensors")
    loaded = load_file(tmp_path / "to_torch.safetensors")
    assert set(loaded) == set(state)
    for dt, v in values.items():
        assert loaded[dt].dtype == getattr(torch, TORCH_NAMES[dt])
        assert _bits(loaded[dt].numpy()) == _bits(v)
    assert _bits(loaded["view"].numpy()) == _bits(values["f32"].T)


def test_serialization_torch_file_loads_in_lincore(tmp_path, torch):
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    state = {
        "f32": torch.randn(3, 4, generator=g),
        "f64": torch.randn(2, 5, dtype=torch.float64, generator=g),
        "i64": torch.randint(-100, 100, (6,), generator=g),
        "bool": torch.rand(2, 2, generator=g) > 0.5,
        "scalar": torch.tensor(1.5),
    }
    save_file(state, tmp_path / "from_torch.safetensors")
    loaded = lincore.load(tmp_path / "from_torch.safetensors")
    assert list(loaded) == sorted(state)  # no lincore order metadata: sorted by name
    for key, t in state.items():
        _assert_same(loaded[key], t.numpy())


def test_serialization_torch_model_weights_load_into_lincore(tmp_path, rng, torch):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    tmodel = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    save_file(tmodel.state_dict(), tmp_path / "model.safetensors")
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    model.load_state_dict(lincore.load(tmp_path / "model.safetensors"))
    for (name, p), (tname, tp) in zip(model.named_parameters(), tmodel.named_parameters()):
        assert name == tname
        assert _bits(np.asarray(p)) == _bits(tp.detach().numpy())


def test_serialization_unsupported_torch_dtype_is_a_value_error(tmp_path, torch):
    from safetensors.torch import save_file

    save_file({"h": torch.zeros(2, dtype=torch.float16)}, tmp_path / "h.safetensors")
    with pytest.raises(ValueError, match=r"tensor 'h' .* has dtype F16; lincore loads F32"):
        lincore.load(tmp_path / "h.safetensors")


# --- hostile and corrupt files -------------------------------------------------------------------


def _craft(header, data=b"", length=None):
    """A file by hand: 8-byte little-endian header length, the header (a dict as JSON, or raw
    bytes), then the data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


F32x4 = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}
SIXTEEN = bytes(16)

HOSTILE = {
    "empty": (b"", "is empty"),
    "shorter_than_length": (b"\x10\x00\x00", "truncated: 3 bytes"),
    "length_only": (struct.pack("<Q", 0), "not a valid safetensors file"),
    "length_beyond_file": (_craft({"a": F32x4}, SIXTEEN, length=4096), "header length field"),
    "length_huge": (_craft({"a": F32x4}, SIXTEEN, length=2**64 - 1), "header length field"),
    "length_200MB": (_craft({"a": F32x4}, SIXTEEN, length=200_000_000), "header length field"),
    "data_truncated": (_craft({"a": F32x4}, bytes(8)), "not a valid safetensors file"),
    "trailing_bytes": (_craft({"a": F32x4}, bytes(32)), "not a valid safetensors file"),
    "invalid_json": (_craft(b'{"a": {"dtype": "F32",'), "not a valid safetensors file"),
    "not_utf8": (_craft(b'{"\xff\xfe": 1}'), "not a valid safetensors file"),
    "json_list": (_craft(b"[1, 2, 3]"), "not a valid safetensors file"),
    "json_number": (_craft(b"42"), "not a valid safetensors file"),
    "header_nul_bytes": (_craft(bytes(16)), "not a valid safetensors file"),
    "offsets_outside_file": (
        _craft({"a": {"dtype": "F32", "shape": [4], "data_offsets": [1000, 1016]}}, SIXTEEN),
        "not a valid safetensors file",
    ),
    "offsets_reversed": (
        _craft({"a": {"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}}, SIXTEEN),
        "not a valid safetensors file",
    ),
    "offsets_overlapping": (
        _craft(
            {
                "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
            },
            bytes(24),
        ),
        "not a valid safetensors file",
    ),
    "offsets_identical": (
        _craft({"a": F32x4, "b": F32x4}, SIXTEEN),
        "not a valid safetensors file",
    ),
    "offsets_with_gap": (
        _craft(
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]},
            },
            bytes(24),
        ),
        "not a valid safetensors file",
    ),
    "offsets_negative": (
        _craft({"a": {"dtype": "F32", "shape": [4], "data_offsets": [-16, 0]}}, SIXTEEN),
        "not a valid safetensors file",
    ),
    "offsets_missing": (
        _craft({"a": {"dtype": "F32", "shape": [4]}}, SIXTEEN),
        "not a valid safetensors file",
    ),
    "shape_too_small_for_span": (
        _craft({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}, SIXTEEN),
        "not a valid safetensors file",
    ),
    "shape_too_big_for_span": (
        _craft({"a": {"dtype": "F64", "shape": [4], "data_offsets": [0, 16]}}, SIXTEEN),
        "not a valid safetensors file",
    ),
    "shape_overflows": (
        _craft(
            {"a": {"dtype": "F32", "shape": [2**62, 2**62, 16], "data_offsets": [0, 16]}}, SIXTEEN
        ),
        "not a valid safetensors file",
    ),
    "shape_negative": (
        _craft({"a": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, SIXTEEN),
        "not a valid safetensors file",
    ),
    "shape_not_a_list": (
        _craft({"a": {"dtype": "F32", "shape": 4, "data_offsets": [0, 16]}}, SIXTEEN),
        "not a valid safetensors file",
    ),
    "dtype_unknown": (
        _craft({"a": {"dtype": "X99", "shape": [4], "data_offsets": [0, 16]}}, SIXTEEN),
        "not a valid safetensors file",
    ),
    "dtype_not_a_string": (
        _craft({"a": {"dtype": 4, "shape": [4], "data_offsets": [0, 16]}}, SIXTEEN),
        "not a valid safetensors file",
    ),
    "metadata_not_strings": (
        _craft({"__metadata__": {"k": 1}, "a": F32x4}, SIXTEEN),
        "not a valid safetensors file",
    ),
    "metadata_not_an_object": (
        _craft({"__metadata__": [1], "a": F32x4}, SIXTEEN),
        "not a valid safetensors file",
    ),
    "tensor_entry_not_an_object": (_craft({"a": [0, 16]}, SIXTEEN), "not a valid safetensors file"),
    "deeply_nested_json": (
        _craft(b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        "not a valid safetensors file",
    ),
    # BF16 (2 bytes an element): spans that do not match the shape
    "bf16_shape_too_big_for_span": (
        _craft({"a": {"dtype": "BF16", "shape": [9], "data_offsets": [0, 16]}}, SIXTEEN),
        "not a valid safetensors file",
    ),
    "bf16_odd_byte_count": (
        _craft({"a": {"dtype": "BF16", "shape": [8], "data_offsets": [0, 15]}}, bytes(15)),
        "not a valid safetensors file",
    ),
    "bf16_data_truncated": (
        _craft({"a": {"dtype": "BF16", "shape": [8], "data_offsets": [0, 16]}}, bytes(8)),
        "not a valid safetensors file",
    ),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_serialization_hostile_file_is_a_clear_value_error(tmp_path, name):
    data, match = HOSTILE[name]
    path = tmp_path / f"{name}.safetensors"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=match) as info:
        lincore.load(path)
    assert f"{name}.safetensors" in str(info.value)  # names the file


@pytest.mark.parametrize("name", HOSTILE)
def test_serialization_hostile_bytes_in_a_pickle_are_a_value_error(name):
    data, match = HOSTILE[name]
    with pytest.raises(ValueError, match=match):
        _pickle._rebuild_tensor(data)


def test_serialization_hostile_header_padding_is_accepted(tmp_path):
    # The format allows the header to be padded with spaces (for alignment of the data).
    raw = json.dumps({"a": F32x4}).encode() + b" " * 13
    path = tmp_path / "padded.safetensors"
    path.write_bytes(_craft(raw, np.arange(4, dtype="<f4").tobytes()))
    _assert_same(lincore.load(path)["a"], np.arange(4, dtype=np.float32))


def test_serialization_hostile_header_over_the_size_limit(tmp_path):
    # A header length the file really has room for, above safetensors' 100 MB header limit (the
    # file is sparse: it takes no disk space).
    path = tmp_path / "huge_header.safetensors"
    n = 100_000_001
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", n) + b"{")
        f.seek(8 + n)
        f.write(b"}")
    with pytest.raises(ValueError, match="huge_header.safetensors.*header too large"):
        lincore.load(path)


def test_serialization_load_directory_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        lincore.load(tmp_path)


def test_serialization_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        lincore.load(tmp_path / "missing.safetensors")


def test_serialization_every_truncation_of_a_valid_file_is_a_value_error(tmp_path, rng):
    lincore.save(
        OrderedDict(
            [
                ("a", lincore.tensor(_values(np.float32, (3,), rng))),
                ("b", lincore.tensor(_values(np.int64, (2,), rng))),
            ]
        ),
        tmp_path / "ok.safetensors",
    )
    data = (tmp_path / "ok.safetensors").read_bytes()
    for cut in range(len(data)):
        with pytest.raises(ValueError):
            _pickle._rebuild_tensor(data[:cut])


def test_serialization_every_single_byte_flip_gives_a_value_or_a_valid_load(rng):
    # Corrupting any one byte (header or data) either still parses or raises ValueError.
    data = bytearray(
        lincore.serialization.to_bytes(
            {"a": np.arange(3, dtype=np.float32), "b": np.ones(2, np.int64)}
        )
    )
    for i in range(len(data)):
        for value in (0x00, 0xFF, ord("9")):
            corrupt = bytearray(data)
            corrupt[i] = value
            try:
                lincore.serialization.from_bytes(bytes(corrupt))
            except ValueError:
                pass


# --- pickle and deepcopy -------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: f"protocol{p}")
@pytest.mark.parametrize("dt", DTYPES)
def test_serialization_pickle_tensor(rng, dt, protocol):
    value = _values(DTYPES[dt][1], (3, 4), rng)
    t = lincore.tensor(value)
    copied = pickle.loads(pickle.dumps(t, protocol=protocol))
    assert type(copied) is lincore.Tensor and copied.dtype is t.dtype
    _assert_same(copied, value)
    assert not copied._shares_storage(t)


def test_serialization_pickle_tensor_uses_safetensors_bytes():
    t = lincore.arange(6.0).reshape(2, 3)
    rebuild, args = t.__reduce_ex__(4)
    assert rebuild is _pickle._rebuild_tensor
    assert len(args) == 1 and isinstance(args[0], bytes)
    arrays = safetensors.numpy.load(args[0])
    assert list(arrays) == ["data"]
    assert _bits(arrays["data"]) == _bits(np.asarray(t))


@pytest.mark.parametrize(
    "make",
    [
        lambda t: t.T,
        lambda t: t[::2],
        lambda t: t[:, 1],
        lambda t: t[1, 2],
        lambda t: t[:0],
        lambda t: t[1::2, ::3],
    ],
    ids=["transposed", "rows", "column", "scalar", "empty", "strided"],
)
def test_serialization_pickle_non_contiguous_tensor(rng, make):
    base = lincore.tensor(_values(np.float32, (6, 7), rng))
    view = make(base)
    copied = pickle.loads(pickle.dumps(view))
    assert copied.shape == view.shape
    _assert_same(copied, np.asarray(view))


def test_serialization_pickle_keeps_requires_grad():
    t = lincore.ones(2, 2, requires_grad=True)
    assert pickle.loads(pickle.dumps(t)).requires_grad
    assert copy.deepcopy(t).requires_grad
    assert not pickle.loads(pickle.dumps(lincore.ones(2))).requires_grad


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: f"protocol{p}")
def test_serialization_pickle_parameter(protocol):
    p = nn.Parameter(lincore.arange(4.0))
    q = nn.Parameter(lincore.arange(4.0), requires_grad=False)
    p2, q2 = pickle.loads(pickle.dumps((p, q), protocol=protocol))
    assert type(p2) is nn.Parameter and p2.requires_grad
    assert type(q2) is nn.Parameter and not q2.requires_grad
    _assert_same(p2, np.arange(4, dtype=np.float32))
    assert not p2._shares_storage(p)


def test_serialization_copy_and_deepcopy_tensor_are_independent():
    t = lincore.arange(4.0)
    for c in (copy.copy(t), copy.deepcopy(t)):
        c[0] = 100.0
        assert float(t[0]) == 0.0


def _check_module_copy(model, copied, x):
    assert type(copied) is type(model)
    assert repr(copied) == repr(model)
    assert _bits(copied(x)) == _bits(model(x))
    # Independent parameters: the same names and values, no shared memory.
    params = dict(model.named_parameters())
    copied_params = dict(copied.named_parameters())
    assert list(copied_params) == list(params)
    for name, p in params.items():
        q = copied_params[name]
        assert type(q) is nn.Parameter and q.requires_grad == p.requires_grad
        assert not q._shares_storage(p)
        _assert_same(q, np.asarray(p))
    # Writing to the original leaves the copy (and its packed weights) unchanged.
    before = _bits(copied(x))
    for p in model.parameters():
        p.detach().fill_(0.5)
    assert _bits(copied(x)) == before
    assert _bits(model(x)) != before


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: f"protocol{p}")
def test_serialization_pickle_module(rng, protocol):
    model = _model()
    x = lincore.tensor(rng.standard_normal((6, 5)).astype(np.float32))
    model(x)  # fills the packed weights and the compiled plan
    copied = pickle.loads(pickle.dumps(model, protocol=protocol))
    _check_module_copy(model, copied, x)


def test_serialization_deepcopy_module(rng):
    model = _model()
    x = lincore.tensor(rng.standard_normal((6, 5)).astype(np.float32))
    model(x)
    _check_module_copy(model, copy.deepcopy(model), x)


@pytest.mark.parametrize(
    "roundtrip",
    [lambda m: pickle.loads(pickle.dumps(m)), copy.deepcopy],
    ids=["pickle", "deepcopy"],
)
def test_serialization_pickle_linear_rebuilds_native_caches(rng, roundtrip):
    layer = nn.Linear(4, 3, dtype=lincore.float64)
    x = lincore.tensor(rng.standard_normal((2, 4)))
    y = layer(x)
    copied = roundtrip(layer)
    # The pack cache is a typed field of the layer (csrc/bindings/linear_call.cpp), never
    # pickled: the copy has its own, empty until its first forward.
    assert layer._pack.packs_built == 1
    assert type(copied._pack) is type(layer._pack) and copied._pack is not layer._pack
    assert copied._pack.packs_built == 0
    assert "_native_caches" not in vars(copied)
    assert _bits(copied(x)) == _bits(y)
    assert copied.weight.dtype is lincore.float64


def test_serialization_pickle_module_keeps_sharing_mode_and_flags(rng):
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared, nn.LeakyReLU(0.2))
    model[0].bias.requires_grad_(False)
    model.eval()
    copied = pickle.loads(pickle.dumps(model))
    assert copied[0] is copied[2]
    assert copied[0].weight is copied[0]._parameters["weight"]
    assert not copied.training and not copied[0].training
    assert not copied[0].bias.requires_grad and copied[0].weight.requires_grad
    assert copied[3].negative_slope == 0.2
    x = lincore.tensor(rng.standard_normal((3, 4)).astype(np.float32))
    assert _bits(copied(x)) == _bits(model(x))


def test_serialization_unpickled_sequential_sees_later_changes(rng):
    # The compiled plan is rebuilt after unpickling and still follows replaced layers.
    model = _model()
    x = lincore.tensor(rng.standard_normal((2, 5)).astype(np.float32))
    copied = pickle.loads(pickle.dumps(model))
    copied(x)
    copied[1] = nn.Tanh()
    model[1] = nn.Tanh()
    assert _bits(copied(x)) == _bits(model(x))


def test_serialization_pickle_user_module(rng):
    model = _Net()
    x = lincore.tensor(rng.standard_normal((2, 3)).astype(np.float32))
    copied = pickle.loads(pickle.dumps(model))
    assert copied.scale == 2.0
    assert _bits(copied(x)) == _bits(model(x))


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid())
        self.head = nn.Linear(4, 2)
        self.scale = 2.0

    def forward(self, x):
        return self.head(self.body(x)) * self.scale
