"""The activations as Tensor methods, PyTorch's: sigmoid(), tanh(), softmax(dim),
log_softmax(dim). They are lincore.nn.functional's (the C++ kernels and their recorded
backward), imported when first called: lincore.nn is imported after lincore._tensor.
"""

from __future__ import annotations

from typing import Any

from .registry import Tensor, _method


def _functional() -> Any:
    from ..nn import functional

    return functional


@_method
def sigmoid(self: Tensor) -> Tensor:
    """1 / (1 + exp(-x)), elementwise."""
    return _functional().sigmoid(self)


@_method
def tanh(self: Tensor) -> Tensor:
    """tanh(x), elementwise."""
    return _functional().tanh(self)


@_method
def softmax(self: Tensor, dim: int, dtype: Any = None) -> Tensor:
    """exp(x) / sum(exp(x)) along dim (computed stably)."""
    return _functional().softmax(self, dim, dtype=dtype)


@_method
def log_softmax(self: Tensor, dim: int, dtype: Any = None) -> Tensor:
    """x - log(sum(exp(x))) along dim (computed stably)."""
    return _functional().log_softmax(self, dim, dtype=dtype)
