"""Activation modules. Each maps to a fused epilogue of the kernel (csrc/kernels/gemm.h), so a
Linear followed by one of these runs as a single kernel call inside a Sequential."""

from __future__ import annotations

import numbers
from typing import Any

from .. import _core
from .._creation import as_tensor
from .functional import GELU as _GELU
from .functional import GELU_TANH as _GELU_TANH
from .functional import LEAKY_RELU as _LEAKY_RELU
from .functional import RELU as _RELU
from .functional import SIGMOID as _SIGMOID
from .functional import TANH as _TANH
from .functional import activation_op
from .module import Module


class _Activation(Module):
    _code = 0

    def _slope(self) -> float:
        return 0.01

    def forward(self, input: Any) -> Any:
        x = input if isinstance(input, _core.Tensor) else as_tensor(input)
        return activation_op(x, self._code, self._slope())

    def _step(self, name: str) -> Any:
        return _core.Step.activation(name, self._code, self._slope())


class ReLU(_Activation):
    """max(x, 0), elementwise."""

    _code = _RELU

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(_Activation):
    """x if x >= 0 else negative_slope * x."""

    _code = _LEAKY_RELU

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real):
            raise TypeError(
                f"LeakyReLU(): argument 'negative_slope' must be a number, not "
                f"{type(negative_slope).__name__}"
            )
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def _slope(self) -> float:
        return float(self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Sigmoid(_Activation):
    """1 / (1 + exp(-x))."""

    _code = _SIGMOID


class Tanh(_Activation):
    _code = _TANH


class GELU(_Activation):
    """x * Phi(x) (approximate='none', with erf) or its tanh approximation (approximate='tanh')."""

    def __init__(self, approximate: str = "none") -> None:
        if approximate not in ("none", "tanh"):
            raise RuntimeError(
                f"approximate argument must be either none or tanh, got {approximate!r}"
            )
        super().__init__()
        self.approximate = approximate
        self._code = _GELU if approximate == "none" else _GELU_TANH

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"
