"""bfloat16 on the numpy side.

numpy has no bfloat16, and a bfloat16 tensor exports no buffer (csrc/bindings/bind_tensor.cpp
refuses it, so that numpy never computes on its bit patterns as if they were numbers). So:

- lincore's own numpy code reads a tensor's values through values(): a view of its memory for
  every other dtype, float32 values (a read-only copy; widening is exact) for bfloat16. An op on
  bfloat16 computes in float32 and rounds its result back once (rounded()), which is PyTorch's
  rule for bf16 ops (csrc/tensor/bfloat16.h's rounding: nearest, ties to even).
- in-place writes go through assign() (the tensor's own memory, or the conversion in C++).
- users get an ml_dtypes.bfloat16 array over the same memory from t.numpy() when ml_dtypes is
  installed (it comes with onnx; imported here only when first needed, never at
  `import lincore`), and lincore.tensor / from_numpy accept one (its 2-byte items taken as they
  are). Without ml_dtypes, t.numpy() raises PyTorch's TypeError and says what to do instead.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from . import _core
from ._dtype import bfloat16, dtype, float32

Tensor = _core.Tensor

_BF16 = bfloat16._code

# PyTorch's message for numpy() of a bf16 tensor, and what to do about it in lincore.
NO_NUMPY = (
    "Got unsupported ScalarType BFloat16: numpy has no bfloat16. Use t.float().numpy() for "
    "float32 values, or install ml_dtypes (pip install ml_dtypes) to get an "
    "ml_dtypes.bfloat16 array that shares the tensor's memory"
)


def values(t: Tensor) -> np.ndarray:
    """t's values as a numpy array: a view of its memory, or for bfloat16 a read-only float32
    copy (exact), to compute on."""
    if t._dtype_code != _BF16:
        return np.asarray(memoryview(t))
    arr = np.asarray(memoryview(t._to(float32._code)))
    arr.flags.writeable = False  # a write to the copy would be lost: make it fail instead
    return arr


def rounded(out: Tensor, d: dtype) -> Tensor:
    """out (computed in float32 for a bfloat16 result) rounded to d; out itself otherwise."""
    return out._to(_BF16) if d is bfloat16 and out._dtype_code != _BF16 else out


def as_bf16(v: Any, d: dtype | None) -> Any:
    """An operand of an op whose result is bfloat16 (its values v, its dtype d, None for a
    Python scalar) rounded to bf16 first, as PyTorch casts it (the C++ rule), in float32."""
    if d is bfloat16:
        return v
    if d is None:
        return values(_core._full([], float(v), _BF16)).item()
    from ._creation import copy_array  # (_creation imports this module)

    return values(copy_array(np.asarray(v), bfloat16))


def assign(t: Tensor, key: Any, src: Any) -> None:
    """t[key] = src (numpy semantics: broadcasting, conversion to t's dtype)."""
    if t._dtype_code != _BF16:
        with np.errstate(all="ignore"):
            np.asarray(memoryview(t))[key] = src
        return
    # bfloat16: the new values in float32, rounded once into t's memory by the C++ copy.
    new = np.array(values(t))
    with np.errstate(all="ignore"):
        new[key] = src
    t._copy_from(_core._from_buffer(new))


def ml_dtypes() -> Any:
    """The ml_dtypes module, or None when it is not installed."""
    try:
        import ml_dtypes as module
    except ImportError:
        return None
    return module


def is_ml_bfloat16(np_dtype: Any) -> bool:
    """Whether np_dtype is ml_dtypes.bfloat16 (without importing ml_dtypes: an array of it
    exists only once ml_dtypes is imported)."""
    module = sys.modules.get("ml_dtypes")
    return module is not None and np.dtype(np_dtype) == np.dtype(module.bfloat16)


def to_numpy(t: Tensor) -> np.ndarray:
    """An ml_dtypes.bfloat16 array over t's memory; PyTorch's TypeError without ml_dtypes."""
    module = ml_dtypes()
    if module is None:
        raise TypeError(NO_NUMPY)
    return t._bits().view(module.bfloat16)


def from_array(arr: np.ndarray) -> Tensor:
    """A bfloat16 tensor over the memory of an ml_dtypes.bfloat16 array (no copy)."""
    return _core._from_buffer(arr.view(np.uint16), _BF16)
