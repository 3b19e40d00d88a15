"""lincore.save / lincore.load: state dicts as safetensors files (never pickle), which PyTorch's
safetensors.torch reads and writes too; and the same format as bytes, which tensor pickling uses
(_pickle.py).

A safetensors file is an 8-byte little-endian header length N, N bytes of JSON
({name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}), then the
data. The safetensors library (Rust) parses and validates it; every way a file can be wrong comes
back from here as a ValueError naming the file and the problem.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import IO, Any, Mapping, Union

import numpy as np
import safetensors
import safetensors.numpy

from . import _bf16, _core
from ._creation import copy_array
from ._dtype import bfloat16, bool_, dtype, float32, float64, from_numpy_dtype, int64

Tensor = _core.Tensor
PathOrFile = Union[str, "os.PathLike[str]", IO[bytes]]

# The safetensors names of lincore's dtypes, both ways.
_TO_FILE = {float32: "F32", float64: "F64", int64: "I64", bool_: "BOOL", bfloat16: "BF16"}
_FROM_FILE = {name: d for d, name in _TO_FILE.items()}

# safetensors orders its header by name; lincore keeps the saved order in the metadata under this
# key, as a JSON list of the names.
ORDER_KEY = "lincore.order"


def save(obj: Any, f: PathOrFile) -> None:
    """Saves a state dict (a Mapping of str to lincore.Tensor or numpy array; a Module saves its
    state_dict()) to f, a path or a binary file object, in the safetensors format.

    float32, float64, int64, bool and bfloat16 become F32, F64, I64, BOOL and BF16 (its bits as
    they are; an ml_dtypes.bfloat16 array too); any layout (views, transposes) is written as its
    values in C order. requires_grad is not stored: a state dict
    holds values. The file loads in PyTorch with safetensors.torch.load_file.
    """
    arrays = _arrays(obj)
    data = to_bytes(arrays, {ORDER_KEY: json.dumps(list(arrays))})
    if hasattr(f, "write"):
        f.write(data)  # type: ignore[union-attr]
    else:
        with open(os.fspath(f), "wb") as out:  # type: ignore[arg-type]
            out.write(data)


def load(f: PathOrFile) -> OrderedDict[str, Tensor]:
    """Loads a safetensors file (a path or a binary file object) as an OrderedDict of new lincore
    tensors (64-byte aligned, independent of the file).

    Order: a file written by lincore.save comes back in the order it was saved (kept in the
    header's metadata); any other file (e.g. from safetensors.torch.save_file) comes back sorted
    by name. BF16 loads bitwise as bfloat16. Files with dtypes lincore lacks (F16, I32, ...) and
    corrupt or hostile files raise ValueError; a missing path raises FileNotFoundError.
    """
    if hasattr(f, "read"):
        data = f.read()  # type: ignore[union-attr]
        source = repr(getattr(f, "name", f))
    else:
        path = os.fspath(f)  # type: ignore[arg-type]
        source = repr(path)
        try:
            with open(path, "rb") as file:
                data = file.read()
        except IsADirectoryError:
            raise ValueError(
                f"lincore.load: {source} is a directory, not a safetensors file"
            ) from None
    return from_bytes(data, source)


def to_bytes(arrays: Mapping[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    """The safetensors bytes of arrays (native-order and C-contiguous, as _arrays makes them)."""
    # safetensors reads each array's memory through a raw pointer: the arrays must be contiguous
    # and stay alive (they are referenced by `arrays`) for the whole call.
    if not any(isinstance(a, _Bf16Bits) for a in arrays.values()):
        return safetensors.numpy.save(dict(arrays), metadata=metadata)
    # numpy has no bfloat16: the library is handed each array's memory with its dtype by name;
    # releases before safetensors.TensorSpec take the bytes in a dict (what their own
    # safetensors.numpy.save builds).
    spec = getattr(safetensors, "TensorSpec", None)
    if spec is None:
        flat = {
            name: {
                "dtype": "bfloat16" if isinstance(a, _Bf16Bits) else a.dtype.name,
                "shape": list(a.shape),
                "data": a.tobytes(),
            }
            for name, a in arrays.items()
        }
        return bytes(safetensors.serialize(flat, metadata=metadata))
    specs = {
        name: spec(
            dtype="bfloat16" if isinstance(a, _Bf16Bits) else a.dtype.name,
            shape=list(a.shape),
            data_ptr=a.ctypes.data,
            data_len=a.nbytes,
        )
        for name, a in arrays.items()
    }
    return bytes(safetensors.serialize(specs, metadata=metadata))


class _Bf16Bits(np.ndarray):
    """The bits (uint16) of bfloat16 values, as _arrays hands them to to_bytes: a plain view
    type that says what they are."""


def from_bytes(data: bytes, source: str = "<bytes>") -> OrderedDict[str, Tensor]:
    """The tensors in safetensors bytes, ordered as load() documents; ValueError for bad data."""
    metadata, names = _validate(data, source)
    out: OrderedDict[str, Tensor] = OrderedDict()
    for name in _order(metadata, names):
        info = names[name]
        out[name] = _tensor(info, source, name)
    return out


def metadata_of(data: bytes) -> dict[str, str]:
    """The __metadata__ of safetensors bytes that from_bytes has accepted."""
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n]).get("__metadata__") or {}


def _validate(data: bytes, source: str) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"lincore.load: expected bytes from {source}, got {type(data).__name__}")
    if not isinstance(data, bytes):
        data = bytes(data)
    if len(data) == 0:
        raise ValueError(f"lincore.load: {source} is empty, not a safetensors file")
    if len(data) < 8:
        raise ValueError(
            f"lincore.load: {source} is truncated: {len(data)} bytes, shorter than "
            "the 8-byte header length"
        )
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise ValueError(
            f"lincore.load: {source} is truncated or corrupt: its header length "
            f"field says {n} bytes, but only {len(data) - 8} follow it"
        )
    try:
        # The library checks the rest: header size limit, JSON syntax and schema, dtypes,
        # offsets (in order, without gaps or overlaps, inside the file), and that each span
        # holds exactly shape x dtype bytes, with overflow-checked products.
        tensors = safetensors.deserialize(data)
    except safetensors.SafetensorError as e:
        raise ValueError(f"lincore.load: {source} is not a valid safetensors file: {e}") from None
    except (ValueError, TypeError, KeyError, OverflowError) as e:
        raise ValueError(
            f"lincore.load: {source} could not be read as safetensors: {type(e).__name__}: {e}"
        ) from None
    names = {name: info for name, info in tensors}
    return metadata_of(data), names


def _order(metadata: Mapping[str, str], names: Mapping[str, Any]) -> list[str]:
    """The saved order when the metadata holds a valid one (lincore wrote the file), else sorted.
    The order is advisory: a stale or damaged list (say, another tool dropped a tensor) falls
    back to sorting rather than refusing a file whose tensors are fine."""
    try:
        order = json.loads(metadata[ORDER_KEY])
    except (KeyError, TypeError, ValueError, RecursionError):  # RecursionError: deep JSON
        return sorted(names)
    if (
        isinstance(order, list)
        and all(isinstance(k, str) for k in order)
        and len(order) == len(names)
        and set(order) == set(names)
    ):
        return order
    return sorted(names)


def _tensor(info: Mapping[str, Any], source: str, name: str) -> Any:
    if info["dtype"] == "I8":
        # int8 codes of a quantized layer (nn.DynamicQuantizedLinear): lincore tensors hold no
        # int8, so they load as numpy arrays, which load_state_dict takes.
        shape = [int(s) for s in info["shape"]]
        return np.frombuffer(info["data"], dtype=np.int8).reshape(shape).copy()
    d = _FROM_FILE.get(info["dtype"])
    if d is None:
        raise ValueError(
            f"lincore.load: tensor {name!r} in {source} has dtype {info['dtype']}; lincore loads "
            f"{', '.join(_FROM_FILE)} and I8"
        )
    shape = [int(s) for s in info["shape"]]
    raw = np.frombuffer(info["data"], dtype=np.uint8)
    if d is bfloat16:  # the bits as they are (the library has checked the byte count)
        bits = raw.view(np.dtype("<u2")).astype(np.uint16).reshape(shape)
        return _core._from_buffer(bits, bfloat16._code).clone()
    if d is bool_:
        # A byte other than 0 or 1 is not a valid bool; normalise rather than carry it.
        arr = raw != 0
    else:
        arr = raw.view(d._np.newbyteorder("<"))
    return copy_array(arr.reshape(shape), d)


def _arrays(obj: Any) -> dict[str, np.ndarray]:
    """The state dict as native-order, C-contiguous numpy arrays, with every key checked."""
    from .nn.module import Module  # here: nn imports this package's tensor methods first

    if isinstance(obj, Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise TypeError(
            f"lincore.save: expected a state dict (a Mapping of str to lincore.Tensor or numpy "
            f"array) or a Module, got {type(obj).__name__}; weights are never pickled"
        )
    out: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise TypeError(f"lincore.save: keys must be str, got {type(key).__name__} {key!r}")
        if key == "__metadata__":
            raise ValueError(
                "lincore.save: '__metadata__' is reserved by the safetensors format "
                "and cannot name a tensor"
            )
        if isinstance(value, Tensor) and value.dtype is bfloat16:
            out[key] = np.ascontiguousarray(value._bits(False)).view(_Bf16Bits)
            continue
        if isinstance(value, np.ndarray) and _bf16.is_ml_bfloat16(value.dtype):
            out[key] = np.ascontiguousarray(value).view(np.uint16).view(_Bf16Bits)
            continue
        if isinstance(value, Tensor):
            arr = np.asarray(memoryview(value))
        elif isinstance(value, np.ndarray):
            arr = value
        else:
            raise TypeError(
                f"lincore.save: the value for {key!r} must be a lincore.Tensor or a "
                f"numpy array, got {type(value).__name__}"
            )
        if arr.dtype == np.int8:  # a quantized layer's codes
            out[key] = np.ascontiguousarray(arr)
            continue
        d: dtype | None = from_numpy_dtype(arr.dtype)
        if d is None:
            raise TypeError(
                f"lincore.save: the value for {key!r} has dtype {arr.dtype}; lincore "
                "saves float32, float64, int64, bool, bfloat16 and (numpy) int8"
            )
        # One copy only when needed: a view, a transpose or a big-endian array.
        out[key] = arr.astype(d._np, order="C", copy=False)
    return out


__all__ = ["load", "save"]
