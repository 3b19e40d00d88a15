"""The tensor's description: dtype, shape, ndim, T, device, size(), stride(), storage_offset(),
element_size(), nelement(), is_floating_point(); and _wrap_dim, the check of a dim argument that
views and reductions use too. They read the compiled class's raw fields (_dtype_code, _shape,
_strides, ...) and turn them into lincore's types.
"""

from __future__ import annotations

import numbers
from typing import Any

from .._autograd import needs_grad, record
from .._dtype import BY_CODE, Size, dtype
from .registry import Tensor, _cpp_transpose, _method, _property


@_property
def dtype(self: Tensor) -> dtype:  # noqa: F811 (the property; the annotation is the class)
    """The element type (lincore.float32, float64, int64 or bool)."""
    return BY_CODE[self._dtype_code]


@_property
def shape(self: Tensor) -> Size:
    """The size of each dimension, as a lincore.Size."""
    return Size(self._shape)


@_property
def ndim(self: Tensor) -> int:
    return self.dim()


@_property
def T(self: Tensor) -> Tensor:
    """The tensor with its dimensions reversed (a view)."""
    out = self
    n = self.dim()
    for i in range(n // 2):
        out = _cpp_transpose(out, i, n - 1 - i)
    if needs_grad(self):
        record(out, "PermuteBackward0", [self], lambda g: (g.transpose(),))
    return out


@_property
def device(self: Tensor) -> str:
    return "cpu"


@_method
def tensor_size(self: Tensor, dim: int | None = None) -> Any:
    """size() -> lincore.Size; size(dim) -> int."""
    return Size(self._shape) if dim is None else self._shape[_wrap_dim(self, dim)]


@_method
def tensor_stride(self: Tensor, dim: int | None = None) -> Any:
    return self._strides if dim is None else self._strides[_wrap_dim(self, dim)]


@_method
def storage_offset(self: Tensor) -> int:
    return self._storage_offset


@_method
def element_size(self: Tensor) -> int:
    return self.dtype.itemsize


@_method
def nelement(self: Tensor) -> int:
    return self.numel()


@_method
def is_floating_point(self: Tensor) -> bool:
    return self.dtype.is_floating_point


def _wrap_dim(t: Tensor, d: Any) -> int:
    if not isinstance(d, numbers.Integral) or isinstance(d, bool):
        raise TypeError(f"dim must be an int, not {type(d).__name__}")
    n = max(t.dim(), 1)
    if not -n <= d < n:
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {d})"
        )
    return int(d) % n
