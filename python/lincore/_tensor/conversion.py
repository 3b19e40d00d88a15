"""Getting values out of a tensor: numpy() and __array__ (zero-copy numpy views of its memory;
__array_ufunc__ = None makes numpy defer to the tensor's reflected operators), item(), tolist(),
and the dtype conversions to(), float(), double(), long(), bool(), bfloat16(). bfloat16 tensors
go through lincore._bf16 (numpy has no bfloat16).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import _bf16
from .._autograd import needs_grad, record
from .._dtype import bfloat16, bool_, dtype, float32, float64, int64
from .registry import Tensor, _cpp_clone, _method, _methods


@_method
def numpy(self: Tensor, *, force: bool = False) -> np.ndarray:
    """A numpy array sharing this tensor's memory (for bfloat16, an ml_dtypes.bfloat16 array;
    a TypeError without ml_dtypes)."""
    if self.requires_grad and not force:
        raise RuntimeError(
            "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead."
        )
    if self._dtype_code == bfloat16._code:
        return _bf16.to_numpy(self)
    return np.asarray(memoryview(self))


@_method
def __array__(self: Tensor, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
    if self._dtype_code == bfloat16._code:
        # np.asarray(t) comes here (the tensor has no buffer): float32 values when a dtype is
        # asked for, else what numpy() gives.
        if dtype is not None:
            if copy is False:
                raise ValueError(
                    f"converting a {self.dtype} tensor to {np.dtype(dtype)} needs a copy"
                )
            return _bf16.values(self).astype(dtype)
        arr = _bf16.to_numpy(self)
        return arr.copy() if copy else arr
    arr = np.asarray(memoryview(self))
    if dtype is not None and np.dtype(dtype) != arr.dtype:
        if copy is False:
            raise ValueError(f"converting a {self.dtype} tensor to {np.dtype(dtype)} needs a copy")
        return arr.astype(dtype)
    return arr.copy() if copy else arr


_methods["__array_ufunc__"] = None  # numpy defers to our reflected operators (np.float32(2) * t)


@_method
def item(self: Tensor) -> Any:
    """The single value of a one-element tensor, as a Python number."""
    if self.numel() != 1:
        raise RuntimeError(f"a Tensor with {self.numel()} elements cannot be converted to Scalar")
    return _bf16.values(self).reshape(()).item()


@_method
def tolist(self: Tensor) -> Any:
    return _bf16.values(self).tolist()


@_method
def to(self: Tensor, dtype: dtype, copy: bool = False) -> Tensor:
    """The tensor converted to dtype (itself when it already has it, unless copy=True)."""
    if not isinstance(dtype, type(float32)):
        raise TypeError(f"to(): expected a lincore.dtype, got {type(dtype).__name__}")
    if dtype is self.dtype and not copy:
        return self
    out = _cpp_clone(self) if dtype is self.dtype else self._to(dtype._code)
    if needs_grad(self):
        source = self.dtype._np
        record(out, "ToCopyBackward0", [self], lambda g: (g.astype(source),))
    return out


def _converter(name: str, target: dtype) -> Callable[[Tensor], Tensor]:
    def convert(self: Tensor) -> Tensor:
        return self.to(target)

    convert.__name__ = name
    convert.__doc__ = f"self.to(lincore.{target.name})"
    return convert


for _name, _d in (
    ("float", float32),
    ("double", float64),
    ("long", int64),
    ("bool", bool_),
    ("bfloat16", bfloat16),
):
    _methods[_name] = _converter(_name, _d)
