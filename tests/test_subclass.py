# Python subclasses of lincore.Tensor (nn.Parameter is one; PyTorch lets users write their own)
# export their memory through every path a plain Tensor does: memoryview, numpy, DLPack both
# ways, pickle and repr. This is the seam that broke on Python 3.12 and 3.13: the buffer slots
# were patched into the compiled class after PyType_Ready, which had already wrapped pybind11's
# getbuffer as Tensor.__buffer__ (PEP 688); a Python subclass takes its slot from that wrapper,
# so memoryview(Parameter) raised "pybind11_getbuffer(): Internal error".

import copy
import ctypes
import pickle
import sys

import numpy as np
import pytest

import lincore
import lincore.nn as nn
from conftest import NUMPY_DLPACK_WRITABLE


class Tagged(lincore.Tensor):
    """A user's subclass with an __init__ of its own, as PyTorch users write them."""

    def __init__(self, data, tag="none"):
        super().__init__(data)
        self.tag = tag


class Plain(lincore.Tensor):
    pass


class MyParameter(nn.Parameter):
    pass


VALUES = np.arange(12, dtype=np.float32).reshape(3, 4) / 8  # exact in every dtype used


def _make(kind, values=VALUES):
    t = lincore.tensor(values)
    if kind == "parameter":
        return nn.Parameter(t, requires_grad=False)
    if kind == "parameter_sub":
        return MyParameter(t, requires_grad=False)
    if kind == "tagged":
        return Tagged(t, tag="x")
    return Plain(t)


KINDS = ["parameter", "parameter_sub", "tagged", "plain_sub"]


@pytest.mark.parametrize("kind", KINDS)
def test_subclass_memoryview(kind):
    t = _make(kind)
    m = memoryview(t)
    assert m.format == "f" and m.shape == (3, 4) and not m.readonly
    assert np.array_equal(np.asarray(m), VALUES)
    m[1, 2] = -1.0  # writes through to the tensor
    assert t[1, 2].item() == -1.0
    m.release()


@pytest.mark.skipif(sys.version_info < (3, 12), reason="__buffer__ (PEP 688) is Python 3.12+")
@pytest.mark.parametrize("kind", KINDS + ["tensor"])
@pytest.mark.parametrize("flags", [0, 1, 0x11C], ids=["simple", "writable", "full_ro"])
def test_subclass_dunder_buffer_is_lincores(kind, flags):
    # __buffer__(flags) is the class's buffer slot called from Python (PEP 688); with PyBUF_SIMPLE
    # (0) the exporter gives no shape, and the bytes come back as one dimension.
    t = lincore.tensor(VALUES) if kind == "tensor" else _make(kind)
    with t.__buffer__(flags) as m:
        assert m.nbytes == VALUES.nbytes and not m.readonly
        assert m.shape == ((3, 4) if flags == 0x11C else (12,))
        assert np.array_equal(np.frombuffer(m.cast("B"), np.float32).reshape(3, 4), VALUES)


@pytest.mark.parametrize("kind", KINDS)
def test_subclass_numpy(kind):
    t = _make(kind)
    for a in (
        np.asarray(t),
        t.numpy(),
        np.array(t, copy=False) if np.__version__ >= "2" else np.asarray(t),
    ):
        assert a.dtype == np.float32 and np.array_equal(a, VALUES)
        assert a.ctypes.data == t.data_ptr()  # shared, not copied
    assert t.tolist() == VALUES.tolist()
    assert t.sum().item() == float(VALUES.sum())


def _get_buffer(obj, flags):
    """PyObject_GetBuffer(obj, flags), then release: the C call, with flags no Python API sets."""
    get, release = ctypes.pythonapi.PyObject_GetBuffer, ctypes.pythonapi.PyBuffer_Release
    get.argtypes = [ctypes.py_object, ctypes.c_void_p, ctypes.c_int]
    release.argtypes = [ctypes.c_void_p]
    view = ctypes.create_string_buffer(256)  # room for a Py_buffer
    get(obj, view, flags)  # raises what the exporter raised
    release(view)


PyBUF_SIMPLE, PyBUF_WRITABLE = 0, 1


@pytest.mark.parametrize("cls", [Tagged, Plain])
def test_subclass_non_contiguous_exports(cls):
    t = cls(lincore.tensor(VALUES).T)  # a subclass instance over a transposed view
    assert not t.is_contiguous()
    a = np.asarray(t)
    assert np.array_equal(a, VALUES.T) and a.strides == (4, 16) and a.ctypes.data == t.data_ptr()
    with pytest.raises(BufferError, match="the tensor is not contiguous"):
        _get_buffer(t, PyBUF_SIMPLE)


def test_subclass_read_only_buffer_is_refused_with_lincores_message():
    # Our getbuffer's own message proves that the subclass's slot is lincore's, not pybind11's.
    ro = VALUES.copy()
    ro.flags.writeable = False
    t = Plain(lincore.from_numpy(ro))
    assert memoryview(t).readonly and not np.asarray(t).flags.writeable
    _get_buffer(t, PyBUF_SIMPLE)
    with pytest.raises(BufferError, match="the tensor is read-only"):
        _get_buffer(t, PyBUF_WRITABLE)


@pytest.mark.parametrize("kind", KINDS)
def test_subclass_dlpack_out(kind):
    t = _make(kind)
    a = np.from_dlpack(t)
    assert a.ctypes.data == t.data_ptr() and np.array_equal(a, VALUES)
    t[0, 0] = 5.0
    assert a[0, 0] == 5.0
    if NUMPY_DLPACK_WRITABLE:
        a[1, 0] = 6.0
        assert t[1, 0].item() == 6.0


@pytest.mark.parametrize("kind", KINDS)
def test_subclass_dlpack_out_to_torch(kind):
    torch = pytest.importorskip("torch")
    t = _make(kind)
    tt = torch.from_dlpack(t)
    assert tt.data_ptr() == t.data_ptr() and np.array_equal(tt.numpy(), VALUES)
    tt[2, 3] = 7.0
    assert t[2, 3].item() == 7.0


def test_subclass_dlpack_in():
    a = VALUES.copy()
    t = Tagged(lincore.from_dlpack(a), tag="in")
    assert t.data_ptr() == a.ctypes.data and np.array_equal(np.asarray(t), VALUES)
    a[1, 1] = 9.0
    assert t[1, 1].item() == 9.0
    t[0, 3] = -2.0
    assert a[0, 3] == -2.0
    # and back out again, the same memory
    assert np.from_dlpack(t).ctypes.data == a.ctypes.data


def test_subclass_dlpack_in_from_torch():
    torch = pytest.importorskip("torch")
    tt = torch.from_numpy(VALUES.copy())
    p = nn.Parameter(lincore.from_dlpack(tt))
    assert p.data_ptr() == tt.data_ptr()
    tt.mul_(2.0)
    assert np.array_equal(np.asarray(p), VALUES * 2)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_subclass_pickle_and_deepcopy(kind, how):
    t = _make(kind)
    back = pickle.loads(pickle.dumps(t)) if how == "pickle" else copy.deepcopy(t)
    assert np.array_equal(np.asarray(back), VALUES)
    assert back.data_ptr() != t.data_ptr()  # its own memory
    expected_type = nn.Parameter if kind == "parameter_sub" else type(t)  # torch's rule too
    assert type(back) is expected_type
    if kind == "tagged":
        assert back.tag == "x"


def test_subclass_pickle_keeps_requires_grad_and_no_graph():
    t = Tagged(lincore.tensor(VALUES), tag="leaf")
    t.requires_grad_(True)
    back = pickle.loads(pickle.dumps(t))
    assert type(back) is Tagged and back.requires_grad and back.is_leaf and back.grad is None
    assert back.tag == "leaf" and set(back.__dict__) >= {"tag"}


def test_subclass_module_with_parameters_pickles():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    x = lincore.tensor(VALUES)
    back = pickle.loads(pickle.dumps(model))
    assert type(back[0].weight) is nn.Parameter
    with lincore.no_grad():
        assert np.array_equal(np.asarray(back(x)), np.asarray(model(x)))


@pytest.mark.parametrize(
    "kind, prefix",
    [
        ("parameter", "Parameter containing:\ntensor("),
        ("parameter_sub", "Parameter containing:\nMyParameter("),
        ("tagged", "Tagged("),
        ("plain_sub", "Plain("),
    ],
)
def test_subclass_repr(kind, prefix):
    # torch prints a subclass's name in place of "tensor" (nn.Parameter itself excepted).
    t = _make(kind, np.array([[0.5, -1.25], [2.0, 0.125]], np.float32))
    r = repr(t)
    assert r.startswith(prefix), r
    body = r[r.index("(") + 1 :]
    assert "0.5000" in body and "-1.2500" in body and "0.1250" in body
    indent = " " * len(prefix.split("\n")[-1])
    assert r.split("\n")[-1].startswith(indent + " ["), r  # continuation lines follow the prefix


def test_subclass_repr_matches_torch():
    torch = pytest.importorskip("torch")
    values = np.array([[0.5, -1.25], [2.0, 0.125]], np.float32)

    class Tagged(torch.Tensor):  # same name as ours, so the reprs can be compared whole
        pass

    ours = repr(_make("tagged", values))
    theirs = repr(torch.tensor(values).as_subclass(Tagged))
    assert ours == theirs
    assert repr(_make("parameter", values)) == repr(
        torch.nn.Parameter(torch.tensor(values), requires_grad=False)
    )
    # A subclass of torch's Parameter prints as "Parameter(MyParameter(...))" after the
    # "Parameter containing:" line, an artefact of its __torch_function__ that lincore does
    # not copy: test_subclass_repr pins lincore's "MyParameter(...)" instead.


def test_subclass_parameter_write_through_buffer_reaches_the_layer():
    # A writable export of a Parameter is counted, so writing through it invalidates the
    # layer's packed weight: the next forward sees the new values.
    lin = nn.Linear(4, 3)
    x = lincore.tensor(VALUES)
    with lincore.no_grad():
        lin(x)  # packs the weight
        np.asarray(lin.weight)[...] = 0.0
        np.asarray(lin.bias)[...] = 1.0
        assert np.array_equal(np.asarray(lin(x)), np.ones((3, 3), np.float32))
