"""The rest of Python's data model for a tensor: len() and iteration over the first dim, bool(),
float(), int() and operator.index() of one-element tensors, and identity hashing (== is
elementwise, so tensors hash by identity, as in PyTorch).
"""

from __future__ import annotations

from typing import Any

from .registry import Tensor, _method, _methods


@_method
def __len__(self: Tensor) -> int:
    if self.dim() == 0:
        raise TypeError("len() of a 0-d tensor")
    return self._shape[0]


@_method
def __iter__(self: Tensor) -> Any:
    if self.dim() == 0:
        raise TypeError("iteration over a 0-d tensor")
    return (self._select(0, i) for i in range(self._shape[0]))


@_method
def __bool__(self: Tensor) -> bool:
    if self.numel() != 1:
        what = "no values" if self.numel() == 0 else "more than one value"
        raise RuntimeError(f"Boolean value of Tensor with {what} is ambiguous")
    return bool(self.item())


@_method
def __float__(self: Tensor) -> float:
    return float(self.item())


@_method
def __int__(self: Tensor) -> int:
    return int(self.item())


@_method
def __index__(self: Tensor) -> int:
    if self.dtype.is_floating_point or self.numel() != 1:
        raise TypeError("only integer tensors of a single element can be converted to an index")
    return int(self.item())


_methods["__hash__"] = object.__hash__
