"""lincore.nn.functional: the layers as functions."""

from __future__ import annotations

from typing import Any

from .. import _core
from .._creation import as_tensor
from .activation import _GELU, _GELU_TANH, _LEAKY_RELU, _RELU, _SIGMOID, _TANH


def _t(x: Any) -> Any:
    return x if isinstance(x, _core.Tensor) else as_tensor(x)


def linear(input: Any, weight: Any, bias: Any = None) -> Any:
    """(*, in_features) -> (*, out_features): input @ weight.T + bias."""
    return _core.linear(_t(input), _t(weight), None if bias is None else _t(bias))


def relu(input: Any) -> Any:
    return _core.activation(_t(input), _RELU)


def leaky_relu(input: Any, negative_slope: float = 0.01) -> Any:
    return _core.activation(_t(input), _LEAKY_RELU, float(negative_slope))


def sigmoid(input: Any) -> Any:
    return _core.activation(_t(input), _SIGMOID)


def tanh(input: Any) -> Any:
    return _core.activation(_t(input), _TANH)


def gelu(input: Any, approximate: str = "none") -> Any:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate argument must be either none or tanh, got {approximate!r}")
    return _core.activation(_t(input), _GELU if approximate == "none" else _GELU_TANH)
