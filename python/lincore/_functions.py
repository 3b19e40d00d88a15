"""PyTorch's function forms of lincore's tensor operations (torch.add(a, b) is a.add(b)):
each is the Tensor method of the same name, on its first argument made a tensor."""

from __future__ import annotations

from typing import Any

from ._core import Tensor
from ._creation import as_tensor


def _t(x: Any) -> Any:
    return x if isinstance(x, Tensor) else as_tensor(x)


def add(input: Any, other: Any, *, alpha: Any = 1) -> Tensor:
    """input + alpha * other."""
    return _t(input).add(other, alpha=alpha)


def sub(input: Any, other: Any, *, alpha: Any = 1) -> Tensor:
    """input - alpha * other."""
    return _t(input).sub(other, alpha=alpha)


def mul(input: Any, other: Any) -> Tensor:
    """input * other."""
    return _t(input).mul(other)


def div(input: Any, other: Any, *, rounding_mode: str | None = None) -> Tensor:
    """input / other; rounding_mode None, 'trunc' or 'floor'."""
    return _t(input).div(other, rounding_mode=rounding_mode)


def sum(input: Any, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """The sum of all elements, or over dim."""
    return _t(input).sum(dim, keepdim, dtype=dtype)


def mean(input: Any, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """The mean of all elements, or over dim."""
    return _t(input).mean(dim, keepdim, dtype=dtype)


def reshape(input: Any, shape: Any) -> Tensor:
    """input with another shape: a view when the strides allow it, else a copy."""
    return _t(input).reshape(shape)


def flatten(input: Any, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """The dims start_dim..end_dim merged into one."""
    return _t(input).flatten(start_dim, end_dim)


def transpose(input: Any, dim0: int, dim1: int) -> Tensor:
    """A view with dims dim0 and dim1 swapped."""
    return _t(input).transpose(dim0, dim1)


def sigmoid(input: Any) -> Tensor:
    """1 / (1 + exp(-x)), elementwise."""
    return _t(input).sigmoid()


def tanh(input: Any) -> Tensor:
    """tanh(x), elementwise."""
    return _t(input).tanh()


def softmax(input: Any, dim: int, dtype: Any = None) -> Tensor:
    """exp(x) / sum(exp(x)) along dim."""
    return _t(input).softmax(dim, dtype=dtype)


def log_softmax(input: Any, dim: int, dtype: Any = None) -> Tensor:
    """x - log(sum(exp(x))) along dim."""
    return _t(input).log_softmax(dim, dtype=dtype)
