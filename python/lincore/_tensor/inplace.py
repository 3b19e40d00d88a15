"""In-place writes of whole tensors: fill_(), zero_(), copy_(), uniform_(), normal_(). Each is
refused on a tensor that records (grad._check_inplace). Item assignment is in indexing.py and
the in-place operators (+= ...) in arithmetic.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _bf16, _core
from .._creation import as_tensor
from .grad import _check_inplace
from .registry import Tensor, _method


@_method
def fill_(self: Tensor, value: Any) -> Tensor:
    _check_inplace(self)
    _bf16.assign(self, ..., value)
    return self


@_method
def zero_(self: Tensor) -> Tensor:
    return self.fill_(0)


@_method
def copy_(self: Tensor, src: Any) -> Tensor:
    """Copies src (broadcast to this shape, converted to this dtype) into this tensor."""
    _check_inplace(self)
    src_arr = _bf16.values(as_tensor(src)) if not isinstance(src, np.ndarray) else src
    shape = tuple(self._shape)
    try:
        src_arr = np.broadcast_to(src_arr, shape)
    except ValueError:
        raise RuntimeError(
            f"The size of tensor a ({list(shape)}) must match the size of tensor b "
            f"({list(np.shape(src_arr))})"
        ) from None
    _bf16.assign(self, ..., src_arr)
    return self


@_method
def uniform_(self: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    _check_inplace(self)
    _core._uniform_(self, float(a), float(b))
    return self


@_method
def normal_(self: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    _check_inplace(self)
    _core._normal_(self, float(mean), float(std))
    return self
