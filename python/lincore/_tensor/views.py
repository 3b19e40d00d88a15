"""Views and copies with their backward: view(), reshape(), flatten(), transpose(), clone(),
contiguous(). The compiled class implements the last four without recording; these versions
replace them on the class, and flatten, transpose and clone call the compiled ones (saved in
registry.py before install()).
"""

from __future__ import annotations

from typing import Any

from .._autograd import needs_grad, record
from .._creation import parse_size
from .properties import _wrap_dim
from .registry import Tensor, _cpp_clone, _cpp_flatten, _cpp_transpose, _method


@_method
def view(self: Tensor, *shape: Any) -> Tensor:
    """A view with another shape (one dim may be -1); fails when the strides do not allow it."""
    return _reshaped(self, self._view(parse_size(shape, "view")), "ViewBackward0")


@_method
def reshape(self: Tensor, *shape: Any) -> Tensor:
    """A view with another shape when possible, else a copy (one dim may be -1)."""
    out = self._reshape(parse_size(shape, "reshape"))
    shared = out._shares_storage(self) or self.numel() == 0
    return _reshaped(self, out, "ViewBackward0" if shared else "UnsafeViewBackward0")


def _reshaped(source: Tensor, out: Tensor, name: str) -> Tensor:
    if needs_grad(source):
        shape = tuple(source._shape)
        record(out, name, [source], lambda g: (g.reshape(shape),))
    return out


@_method
def flatten(self: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """The dims start_dim..end_dim merged into one (a view when the strides allow it)."""
    out = _cpp_flatten(self, start_dim, end_dim)
    shared = out._shares_storage(self) or self.numel() == 0
    return _reshaped(self, out, "ViewBackward0" if shared else "UnsafeViewBackward0")


@_method
def transpose(self: Tensor, dim0: int, dim1: int) -> Tensor:
    """A view with dims dim0 and dim1 swapped."""
    out = _cpp_transpose(self, dim0, dim1)
    if needs_grad(self):
        d0, d1 = _wrap_dim(self, dim0), _wrap_dim(self, dim1)
        if self.dim() == 0:  # dims 0 and -1 of a scalar: the identity, still recorded
            record(out, "TransposeBackward0", [self], lambda g: (g,))
        else:
            record(out, "TransposeBackward0", [self], lambda g: (g.swapaxes(d0, d1),))
    return out


@_method
def clone(self: Tensor) -> Tensor:
    """A copy in new memory."""
    out = _cpp_clone(self)
    if needs_grad(self):
        record(out, "CloneBackward0", [self], lambda g: (g,))
    return out


@_method
def contiguous(self: Tensor) -> Tensor:
    """Itself when contiguous, else a contiguous copy."""
    return self if self.is_contiguous() else self.clone()
