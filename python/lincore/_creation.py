"""Building tensors: lincore.tensor() from nested lists, scalars and arrays (PyTorch's dtype
rules and error messages), from_numpy (shared memory), and the factories zeros/ones/full/empty/
arange/rand/randn and their *_like forms."""

from __future__ import annotations

import math
import numbers
import os
from typing import Any, Sequence

import numpy as np

from . import _bf16, _core
from ._dtype import bfloat16, bool_, dtype, float32, float64, from_numpy_dtype, int64

Tensor = _core.Tensor


def wrap_array(arr: np.ndarray) -> Tensor:
    """A tensor over a freshly computed numpy array (shares its memory; no copy)."""
    arr = np.asarray(arr)
    d = from_numpy_dtype(arr.dtype)
    if d is None and _bf16.is_ml_bfloat16(arr.dtype):
        if not arr.flags.writeable or arr.ctypes.data % 2:
            arr = arr.copy()
        return _bf16.from_array(arr)
    if d is None:
        wide = arr.astype(_closest_dtype(arr.dtype)._np)
        _check_fits(arr, _closest_dtype(arr.dtype))  # after the allocation: see copy_array
        arr = wide
    elif not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if not arr.flags.writeable or arr.ctypes.data % max(arr.itemsize, 1):
        arr = arr.copy()
    return _core._from_buffer(arr)


def copy_array(arr: np.ndarray, d: dtype | None = None) -> Tensor:
    """A new 64-byte-aligned tensor holding a copy of arr (converted to d if given)."""
    arr = np.asarray(arr)
    source_bf16 = _bf16.is_ml_bfloat16(arr.dtype)
    if d is None:
        d = bfloat16 if source_bf16 else from_numpy_dtype(arr.dtype) or _closest_dtype(arr.dtype)
    if d is bfloat16:
        # ml_dtypes.bfloat16 data: its bits as they are; any other: through float32, rounded
        # once more to bf16 in C++ (PyTorch narrows a double to bf16 through float too).
        with np.errstate(all="ignore"):
            src = arr if source_bf16 else arr.astype(np.float32)
        out = _core._empty(list(arr.shape), d._code)
        if out.numel():
            wide = _bf16.from_array(borrowable(src)) if source_bf16 else copy_array(src, float32)
            out._copy_from(wide)
        return out
    out = _core._empty(list(arr.shape), d._code)
    # Checked once the output is allocated: a broadcast view can stand for more elements than
    # memory holds, and scanning it would never end; the allocation fails fast instead.
    _check_fits(arr, d)
    if out.numel():
        with np.errstate(all="ignore"):
            np.asarray(out)[...] = arr
    return out


def _check_fits(arr: np.ndarray, d: dtype) -> None:
    """lincore has no unsigned 64-bit type: uint64 data goes to int64, which cannot hold values
    of 2**63 and up. Those would wrap to negative numbers, so they are an error instead."""
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 8 and d is int64 and arr.size:
        big = int(arr.max())
        if big > np.iinfo(np.int64).max:
            raise ValueError(
                f"can't convert np.ndarray of type numpy.uint64 to lincore.int64: it holds "
                f"{big}, and int64 holds at most {np.iinfo(np.int64).max} (convert to a "
                "floating dtype, or reduce the values)"
            )


def _closest_dtype(np_dtype: np.dtype) -> dtype:
    kind = np.dtype(np_dtype).kind
    if kind == "b":
        return bool_
    if kind in "iu":
        return int64
    if kind == "f":
        return float64 if np.dtype(np_dtype).itemsize > 4 else float32
    raise TypeError(
        f"can't convert np.ndarray of type numpy.{np.dtype(np_dtype).name}. The only supported "
        "types are: float64, float32, int64, and bool."
    )


def _check_dtype(d: Any, where: str) -> dtype | None:
    if d is None or isinstance(d, dtype):
        return d
    raise TypeError(f"{where}(): argument 'dtype' must be lincore.dtype, not {type(d).__name__}")


def _parse_nested(data: Any) -> tuple[list[int], list[Any], int]:
    """Walks nested sequences; returns (shape, flat leaves, kind) where kind is the highest of
    0 bool, 1 int, 2 float, 3 double. A leaf that carries a 64-bit float type of its own (a
    numpy float64 scalar, a float64 tensor) makes it double, as PyTorch's inference does; a
    Python float stays the default float32. Raises PyTorch's errors for ragged or non-numeric
    data."""
    shape: list[int] = []
    probe = data
    while _is_sequence(probe):
        if len(shape) == _MAX_DIMS:
            raise ValueError(
                f"tensor(): data is nested more than {_MAX_DIMS} levels deep (a "
                "list that contains itself?); tensors have at most "
                f"{_MAX_DIMS} dimensions"
            )
        shape.append(len(probe))
        if len(probe) == 0:
            break
        probe = probe[0]
    # Check the size before walking element by element in Python: a nested array can stand for
    # more elements than memory holds (a broadcast view), and the walk would never end.
    count = math.prod(shape)
    if count * 8 > _physical_memory():
        raise MemoryError(
            f"tensor(): data of shape {shape} has {count} elements, more than "
            "fit in this machine's memory"
        )
    flat: list[Any] = []
    kind = 0

    def leaf(v: Any, where: list[int]) -> None:
        nonlocal kind
        if isinstance(v, Tensor):
            if v.numel() != 1:
                raise ValueError("only one element tensors can be converted to Python scalars")
            if v.dtype is float64:
                kind = 3
            v = v.item()
        elif isinstance(v, np.floating) and v.itemsize > 4:
            kind = 3
        if isinstance(v, (bool, np.bool_)):
            flat.append(bool(v))
        elif isinstance(v, (numbers.Integral,)):
            flat.append(int(v))
            kind = max(kind, 1)
        elif isinstance(v, numbers.Real):
            flat.append(float(v))
            kind = max(kind, 2)
        else:
            pos = "".join(f"[{i}]" for i in where)
            raise TypeError(
                f"tensor(): invalid element {v!r} of type {type(v).__name__} at index {pos}; "
                "expected a number or a bool"
            )

    def walk(node: Any, depth: int, where: list[int]) -> None:
        if depth == len(shape):
            if _is_sequence(node):
                pos = "".join(f"[{i}]" for i in where)
                raise TypeError(
                    f"expected a number at index {pos} (the nesting of the first "
                    f"element), but got a sequence of length {len(node)}"
                )
            leaf(node, where)
            return
        if not _is_sequence(node):
            raise TypeError(
                f"expected sequence of length {shape[depth]} at dim {depth} "
                f"(got {type(node).__name__} {node!r}, which is not a sequence)"
            )
        if len(node) != shape[depth]:
            raise ValueError(
                f"expected sequence of length {shape[depth]} at dim {depth} (got {len(node)})"
            )
        for i, child in enumerate(node):
            walk(child, depth + 1, where + [i])

    walk(data, 0, [])
    return shape, flat, kind


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


_MAX_DIMS = 64  # PyTorch's limit too; it also stops the walk on a list that contains itself


def _is_sequence(v: Any) -> bool:
    return isinstance(v, (list, tuple, np.ndarray)) or (isinstance(v, Tensor) and v.dim() > 0)


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (numbers.Number, np.generic))


def tensor(data: Any, dtype: dtype | None = None, requires_grad: bool = False) -> Tensor:
    """Builds a new tensor (always a copy) from a scalar, nested lists/tuples, a numpy array or
    a tensor. Types follow PyTorch: bools -> bool, ints -> int64, any float -> float32; numpy
    input keeps its dtype."""
    dtype = _check_dtype(dtype, "tensor")
    if isinstance(data, Tensor):
        out = data.clone() if dtype is None else data.to(dtype, copy=True)
    elif isinstance(data, (np.ndarray, np.generic)):
        arr = np.asarray(data)
        out = copy_array(arr, dtype)
    elif (
        isinstance(data, (str, bytes))
        or data is None
        or not (_is_scalar(data) or isinstance(data, (list, tuple)))
    ):
        if hasattr(data, "__array__") and not isinstance(data, (str, bytes)):
            return tensor(np.asarray(data), dtype, requires_grad)
        raise TypeError(
            f"tensor(): expected data to be a number, a bool, a sequence or an array, "
            f"but got {type(data).__name__}"
        )
    else:
        shape, flat, kind = _parse_nested(data)
        if dtype is None:
            # No elements at all (an empty list) gives the default float32, as in PyTorch.
            dtype = (bool_, int64, float32, float64)[kind] if flat else float32
        # Values are gathered in float64 when the data or the target is floating point (a huge
        # int is fine there, as in PyTorch), else in int64, where it overflows.
        gather = np.float64 if kind >= 2 or dtype.is_floating_point else np.int64
        try:
            with np.errstate(all="ignore"):
                arr = np.array(flat, dtype=gather)
        except OverflowError:
            raise ValueError("Overflow when unpacking long long") from None
        out = copy_array(arr.reshape(shape), dtype)
    if requires_grad:
        out.requires_grad_(True)
    return out


def as_tensor(data: Any, dtype: dtype | None = None) -> Tensor:
    """Like tensor(), but returns data itself when it already is a tensor of that dtype, and
    shares memory with a numpy array when it can."""
    dtype = _check_dtype(dtype, "as_tensor")
    if isinstance(data, Tensor):
        return data if dtype is None or data.dtype is dtype else data.to(dtype)
    if isinstance(data, np.ndarray):
        d = bfloat16 if _bf16.is_ml_bfloat16(data.dtype) else from_numpy_dtype(data.dtype)
        if d is not None and (dtype is None or dtype is d):
            try:
                return from_numpy(data)
            except ValueError:
                pass
        return copy_array(data, dtype)
    return tensor(data, dtype)


def from_numpy(ndarray: np.ndarray) -> Tensor:
    """A tensor sharing ndarray's memory: writes to either are seen by both. Accepts what
    torch.from_numpy accepts. A read-only array gives a read-only tensor over the same memory
    (in-place writes to it raise ValueError; PyTorch warns and leaves them undefined). An array
    whose data is not aligned to its element size (as pickle protocol 5 and Dask can hand over)
    is copied once into aligned memory, read-only if the array was: lincore's kernels read
    elements at their natural alignment, so they never see the borrowed, misaligned bytes. An
    ml_dtypes.bfloat16 array gives a bfloat16 tensor over its memory."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(ndarray).__name__})")
    if _bf16.is_ml_bfloat16(ndarray.dtype):  # an ml_dtypes.bfloat16 array: its 2-byte items
        return _bf16.from_array(borrowable(ndarray))
    if from_numpy_dtype(ndarray.dtype) is None:
        raise TypeError(
            f"can't convert np.ndarray of type numpy.{ndarray.dtype.name}. The only supported "
            "types are: float64, float32, int64, and bool."
        )
    return _core._from_buffer(borrowable(ndarray))


def borrowable(arr: np.ndarray) -> np.ndarray:
    """arr itself when a tensor can share its memory; else, for data misaligned to its element
    size, an aligned copy (numpy's own allocation) that is read-only when arr is. The one place
    that decides to copy instead of borrow: _from_buffer refuses misaligned memory outright.
    Strides that are not whole elements and non-native byte order are left for _from_buffer to
    refuse, with PyTorch's words, as torch.from_numpy refuses them."""
    item = max(arr.itemsize, 1)
    if arr.ctypes.data % item == 0 or any(s % item for s in arr.strides):
        return arr
    copy = np.array(arr, copy=True, order="K")
    copy.flags.writeable = arr.flags.writeable
    return copy


def parse_size(size: Sequence[Any], where: str) -> list[int]:
    """Accepts f(2, 3), f((2, 3)), f([2, 3]) or f(lincore.Size([2, 3])) like PyTorch."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = size[0]
    out = []
    for i, s in enumerate(size):
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, (numbers.Integral,)):
            if isinstance(s, Tensor) and s.numel() == 1 and not s.dtype.is_floating_point:
                s = s.item()
            else:
                raise TypeError(
                    f"{where}(): argument 'size' must be tuple of ints, but found element of "
                    f"type {type(s).__name__} at pos {i}"
                )
        out.append(int(s))
    return out


def _make(size: Sequence[Any], dtype_: dtype | None, requires_grad: bool, where: str) -> Tensor:
    shape = parse_size(size, where)
    d = _check_dtype(dtype_, where) or float32
    out = _core._empty(shape, d._code)
    if requires_grad:
        out.requires_grad_(True)
    return out


def empty(*size: Any, dtype: dtype | None = None, requires_grad: bool = False) -> Tensor:
    """An uninitialised tensor of the given size (default dtype float32)."""
    return _make(size, dtype, requires_grad, "empty")


def zeros(*size: Any, dtype: dtype | None = None, requires_grad: bool = False) -> Tensor:
    t = _make(size, dtype, False, "zeros")
    t._fill(0.0)
    return t.requires_grad_(requires_grad) if requires_grad else t


def ones(*size: Any, dtype: dtype | None = None, requires_grad: bool = False) -> Tensor:
    t = _make(size, dtype, False, "ones")
    t._fill(1.0)
    return t.requires_grad_(requires_grad) if requires_grad else t


def full(
    size: Sequence[Any], fill_value: Any, dtype: dtype | None = None, requires_grad: bool = False
) -> Tensor:
    """A tensor filled with fill_value; the dtype follows fill_value (bool, int64 or float32)."""
    if dtype is None:
        if isinstance(fill_value, (bool, np.bool_)):
            dtype = bool_
        elif isinstance(fill_value, numbers.Integral):
            dtype = int64
        elif isinstance(fill_value, numbers.Real):
            dtype = float32
        else:
            raise TypeError(
                f"full(): argument 'fill_value' must be a number, not {type(fill_value).__name__}"
            )
    t = _make((size,) if isinstance(size, (tuple, list)) else (size,), dtype, False, "full")
    _bf16.assign(t, ..., fill_value)
    return t.requires_grad_(requires_grad) if requires_grad else t


def arange(
    start: Any,
    end: Any = None,
    step: Any = 1,
    dtype: dtype | None = None,
    requires_grad: bool = False,
) -> Tensor:
    """Values from start (default 0) up to end, exclusive, by step: arange(5), arange(1, 4, .5)."""
    if end is None:
        start, end = 0, start
    for name, v in (("start", start), ("end", end), ("step", step)):
        if not isinstance(v, numbers.Real) or isinstance(v, bool):
            raise TypeError(f"arange(): argument '{name}' must be a number, not {type(v).__name__}")
        if not math.isfinite(v):
            raise ValueError(f"arange(): unsupported range: {start} -> {end} with step {step}")
    if step == 0:
        raise ValueError("arange(): step must be nonzero")
    if (end - start) * step < 0:
        raise ValueError("arange(): upper bound and larger bound inconsistent with step sign")
    if dtype is None:
        all_int = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = int64 if all_int else float32
    n = max(0, math.ceil((end - start) / step))
    values = start + np.arange(n, dtype=np.float64 if dtype.is_floating_point else np.int64) * step
    t = copy_array(values, dtype)
    return t.requires_grad_(requires_grad) if requires_grad else t


def _random(
    size: Sequence[Any], dtype_: dtype | None, requires_grad: bool, where: str, normal: bool
) -> Tensor:
    t = _make(size, dtype_, False, where)
    if not t.dtype.is_floating_point:
        raise TypeError(f'"{where}" is only implemented for floating point dtypes, got {t.dtype}')
    if normal:
        _core._normal_(t, 0.0, 1.0)
    else:
        _core._uniform_(t, 0.0, 1.0)
    return t.requires_grad_(requires_grad) if requires_grad else t


def rand(*size: Any, dtype: dtype | None = None, requires_grad: bool = False) -> Tensor:
    """Uniform random values in [0, 1) from lincore's generator (see manual_seed)."""
    return _random(size, dtype, requires_grad, "rand", normal=False)


def randn(*size: Any, dtype: dtype | None = None, requires_grad: bool = False) -> Tensor:
    """Standard normal random values from lincore's generator (see manual_seed)."""
    return _random(size, dtype, requires_grad, "randn", normal=True)


def _like(fn: Any) -> Any:
    def like(input: Tensor, *args: Any, dtype: dtype | None = None, **kwargs: Any) -> Tensor:
        return fn(input.shape, *args, dtype=dtype or input.dtype, **kwargs)

    like.__name__ = fn.__name__ + "_like"
    like.__doc__ = f"{fn.__name__}() with the shape (and by default the dtype) of input."
    return like


zeros_like = _like(zeros)
ones_like = _like(ones)
empty_like = _like(empty)
rand_like = _like(rand)
randn_like = _like(randn)


def full_like(
    input: Tensor, fill_value: Any, dtype: dtype | None = None, requires_grad: bool = False
) -> Tensor:
    return full(input.shape, fill_value, dtype=dtype or input.dtype, requires_grad=requires_grad)
