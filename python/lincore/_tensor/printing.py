"""repr() and format() of a tensor. The text itself is lincore._printing's (format_tensor, with
the print options); this module picks the name, requires_grad and grad_fn that go with it.
"""

from __future__ import annotations

from .. import _bf16
from .._printing import format_tensor
from .registry import Tensor, _method


@_method
def __repr__(self: Tensor) -> str:
    grad_fn = self.grad_fn
    # PyTorch's rule: a subclass prints its class name in place of "tensor", except the classes
    # that declare themselves plain tensors in their own body (nn.Parameter; not its subclasses).
    cls = type(self)
    plain = cls is Tensor or cls.__dict__.get("_prints_as_tensor", False)
    return format_tensor(
        _bf16.values(self),
        dtype_name=self.dtype.name,
        requires_grad=self.requires_grad,
        grad_fn=None if grad_fn is None else type(grad_fn).__name__,
        name="tensor" if plain else cls.__name__,
    )


@_method
def __format__(self: Tensor, spec: str) -> str:
    if self.dim() == 0:
        return self.item().__format__(spec)
    return object.__format__(self, spec) if spec else repr(self)
