"""Reading an ONNX model safely: bytes to ModelProto with onnx's own parser, then every tensor,
attribute and node checked before anything is built from it. Whatever a file holds, the outcome
is a model or a ValueError that says what is wrong and where; never a crash, a hang, a read of
another file (external data is refused) or an allocation the file did not pay for in bytes."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

# protobuf cannot hold more than 2 GiB in one message; a larger file is not an ONNX model that
# onnx's own loader reads without external data, which lincore refuses (see _check_tensor).
MAX_MODEL_BYTES = 2**31 - 1

# The element types lincore reads from a file, as numpy dtypes. Others (float16, bfloat16,
# the 8-bit floats, complex) are refused with their ONNX name.
_TP = onnx.TensorProto
NUMPY_TYPES = {
    _TP.FLOAT: np.dtype(np.float32),
    _TP.DOUBLE: np.dtype(np.float64),
    _TP.INT64: np.dtype(np.int64),
    _TP.INT32: np.dtype(np.int32),
    _TP.INT8: np.dtype(np.int8),
    _TP.UINT8: np.dtype(np.uint8),
    _TP.BOOL: np.dtype(np.bool_),
    _TP.STRING: np.dtype(object),
}


def type_name(elem_type: int) -> str:
    """ONNX's name of an element type (FLOAT, INT64, ...), or the number when it has none."""
    try:
        return _TP.DataType.Name(elem_type)
    except ValueError:
        return str(elem_type)


def read_model(model: Any) -> onnx.ModelProto:
    """A ModelProto from a path, bytes or a ModelProto; ValueError when it cannot be one."""
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
    elif isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        size = os.stat(path).st_size  # FileNotFoundError as open() would give it
        if size > MAX_MODEL_BYTES:
            raise ValueError(
                f"ONNX file {path!r} is {size} bytes; lincore reads models of at most "
                f"{MAX_MODEL_BYTES} bytes (protobuf's limit) and no external data"
            )
        with open(path, "rb") as f:
            data = f.read()
    else:
        raise TypeError(
            f"lincore.onnx.load: expected a path, bytes or an onnx.ModelProto, but got "
            f"{type(model).__name__}"
        )
    if len(data) > MAX_MODEL_BYTES:
        raise ValueError(f"ONNX model of {len(data)} bytes exceeds {MAX_MODEL_BYTES} bytes")
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, RuntimeError) as e:  # RuntimeError: protobuf's recursion limit
        raise ValueError(f"not a valid ONNX model (protobuf could not parse it: {e})") from None
    if not proto.HasField("graph"):
        raise ValueError("not a valid ONNX model: it has no graph")
    return proto


def tensor_to_array(t: onnx.TensorProto, where: str) -> np.ndarray:
    """An initializer or Constant's value as a numpy array (a copy the model owns), after
    checking that its dims and data agree, so that numpy never allocates more than the file
    holds."""
    if t.data_location == _TP.EXTERNAL or len(t.external_data):
        raise ValueError(
            f"{where}: tensor {t.name!r} points to external data; lincore reads only "
            "self-contained ONNX files (no data outside the model's bytes)"
        )
    if t.HasField("segment"):
        raise ValueError(f"{where}: tensor {t.name!r} is segmented, which lincore does not read")
    dtype = NUMPY_TYPES.get(t.data_type)
    if dtype is None:
        raise ValueError(
            f"{where}: tensor {t.name!r} has element type {type_name(t.data_type)}; lincore "
            f"reads {', '.join(type_name(k) for k in NUMPY_TYPES)}"
        )
    count = 1
    for d in t.dims:
        if d < 0:
            raise ValueError(f"{where}: tensor {t.name!r} has a negative dim in {list(t.dims)}")
        count *= d
    if t.data_type == _TP.STRING:
        held = len(t.string_data)
    elif t.HasField("raw_data"):
        if len(t.raw_data) != count * dtype.itemsize:
            raise ValueError(
                f"{where}: tensor {t.name!r} of shape {list(t.dims)} and type "
                f"{type_name(t.data_type)} needs {count * dtype.itemsize} bytes, but its data "
                f"has {len(t.raw_data)}"
            )
        held = count
    else:
        field = onnx.helper.tensor_dtype_to_field(t.data_type)
        held = len(getattr(t, field))
    if held != count:
        raise ValueError(
            f"{where}: tensor {t.name!r} of shape {list(t.dims)} needs {count} values, but "
            f"holds {held}"
        )
    arr = numpy_helper.to_array(t)
    if t.data_type == _TP.STRING:
        return np.array([s.decode() if isinstance(s, bytes) else s for s in arr.ravel()], object)
    return np.array(arr, dtype=dtype, order="C", copy=True).reshape(tuple(t.dims))


# The python value kinds of AttributeProto's types, as this package asks for them.
_ATTR = onnx.AttributeProto


class Attrs:
    """A node's attributes, read with the kind each op expects; a wrong kind is a ValueError
    naming the node, the attribute and both kinds."""

    __slots__ = ("_node", "_protos", "_values")

    def __init__(self, node: str, protos: Any = (), values: dict | None = None) -> None:
        self._node = node
        self._protos = {a.name: a for a in protos}
        self._values = dict(values or {})

    def get(self, name: str, kind: str, default: Any = None) -> Any:
        """kind: one of AttributeProto's type names (FLOAT, INT, STRING, TENSOR, INTS, ...)."""
        if name in self._values:
            return self._values[name]
        a = self._protos.get(name)
        if a is None:
            return default
        got = _ATTR.AttributeType.Name(a.type) if a.type in _ATTR.AttributeType.values() else a.type
        if got != kind:
            raise ValueError(f"{self._node}: attribute {name!r} must be {kind}, but it is {got}")
        if kind == "STRING":
            return a.s.decode(errors="replace")
        if kind == "STRINGS":
            return [s.decode(errors="replace") for s in a.strings]
        if kind == "INTS":
            return list(a.ints)
        if kind == "FLOATS":
            return list(a.floats)
        return onnx.helper.get_attribute_value(a)

    def need(self, name: str, kind: str) -> Any:
        """A required attribute: ValueError when the node lacks it."""
        value = self.get(name, kind)
        if value is None:
            raise ValueError(f"{self._node}: required attribute {name!r} ({kind}) is missing")
        return value

    def names(self) -> set:
        return set(self._protos) | set(self._values)
