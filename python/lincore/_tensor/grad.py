"""The tensor's autograd state and entry points: requires_grad, grad, grad_fn, is_leaf,
requires_grad_(), backward(), detach(), data; and _check_inplace, the rule every in-place write
(inplace.py, indexing.py, arithmetic.py) applies to tensors that record. The state is typed fields
of the Tensor object (csrc/bindings/record.h: grad_fn, _grad, _requires_grad); the graph itself
is lincore._autograd's.
"""

from __future__ import annotations

from typing import Any

from .._autograd import needs_grad, run_backward
from .registry import Tensor, _method, _methods, _property


def _get_requires_grad(self: Tensor) -> bool:
    return self._requires_grad


def _set_requires_grad(self: Tensor, value: bool) -> None:
    if self.grad_fn is not None:
        if value:
            return  # already requires grad, as every recorded result does

        raise RuntimeError(
            "you can only change requires_grad flags of leaf variables. If you want to use a "
            "computed variable in a subgraph that doesn't require differentiation use "
            "var_no_grad = var.detach()."
        )
    if value and not self.dtype.is_floating_point:
        raise RuntimeError("only Tensors of floating point dtype can require gradients")
    self._requires_grad = bool(value)


def _get_grad(self: Tensor) -> Any:
    return self._grad


def _set_grad(self: Tensor, value: Any) -> None:
    if value is not None:
        if not isinstance(value, Tensor):
            raise TypeError(
                f"assigned grad expected to be a Tensor or None but got grad of "
                f"type {type(value).__name__}"
            )
        if tuple(value._shape) != tuple(self._shape):
            raise RuntimeError("assigned grad has data of a different size")
        if value.dtype is not self.dtype:
            raise RuntimeError("assigned grad has data of a different type")
    self._grad = value


_methods["requires_grad"] = property(
    _get_requires_grad, _set_requires_grad, doc="Whether gradients are recorded for this tensor."
)
_methods["grad"] = property(
    _get_grad, _set_grad, doc="The gradient accumulated by backward(), or None."
)


@_property
def is_leaf(self: Tensor) -> bool:
    """True for tensors not made by a recorded op (parameters, inputs)."""
    return self.grad_fn is None


@_method
def requires_grad_(self: Tensor, requires_grad: bool = True) -> Tensor:
    self.requires_grad = requires_grad
    return self


@_method
def backward(
    self: Tensor, gradient: Any = None, retain_graph: bool | None = None, create_graph: bool = False
) -> None:
    """Accumulates the gradient of this tensor with respect to every leaf into leaf.grad."""
    if create_graph:
        raise NotImplementedError("create_graph=True (higher-order gradients) is not supported")
    run_backward(self, gradient, retain_graph)


@_method
def detach(self: Tensor) -> Tensor:
    """A new tensor sharing this one's memory, outside any autograd graph."""
    return Tensor(self)


@_property
def data(self: Tensor) -> Tensor:
    return Tensor(self)


READ_ONLY_WRITE = (
    "cannot write to a tensor that shares memory with a read-only buffer (lincore.from_numpy of "
    "a read-only numpy array); write to a copy (t.clone()) or make the array writable first"
)


def _check_inplace(t: Tensor) -> None:
    """In-place writes to a tensor that requires grad are refused while grad mode records (as in
    PyTorch for leaves; lincore's autograd does not version saved tensors, so for all). Writes to
    a tensor over read-only memory (from_numpy of a read-only array) are refused too: PyTorch only
    warns and leaves them undefined."""
    if not t._writable:
        raise ValueError(READ_ONLY_WRITE)
    if needs_grad(t):
        raise RuntimeError(
            "a leaf Variable that requires grad is being used in an in-place operation."
            if t.is_leaf
            else "in-place operations on tensors that require grad are not supported by lincore's "
            "autograd; use the out-of-place form (x = x + y)"
        )
