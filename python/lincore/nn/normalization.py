"""nn.LayerNorm: normalization over the trailing dims, in the C++ core (csrc/nn/layer_norm.h),
with PyTorch's parameters (weight ones, bias zeros) and state_dict keys."""

from __future__ import annotations

import numbers
from typing import Any

from .. import _core
from .._creation import ones, zeros
from .._dtype import dtype as _dtype
from .._dtype import float32
from .._grad_mode import no_grad
from .functional import LAYER_NORM_NODE, layer_norm, normalized_shape_tuple
from .module import Module
from .parameter import Parameter


class LayerNorm(Module):
    """y = (x - E[x]) / sqrt(Var[x] + eps) * weight + bias, the mean and (biased) variance over
    the last len(normalized_shape) dims; weight and bias of shape normalized_shape."""

    def __init__(
        self,
        normalized_shape: Any,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        dtype: _dtype | None = None,
    ) -> None:
        shape = normalized_shape_tuple(normalized_shape)
        for size in shape:
            if size < 0:
                raise RuntimeError(
                    f"Trying to create tensor with negative dimension {size}: {list(shape)}"
                )
        d = dtype or float32
        if not isinstance(d, _dtype) or not d.is_floating_point:
            raise TypeError(f"LayerNorm: dtype must be lincore.float32 or lincore.float64, got {d}")
        if not isinstance(eps, numbers.Real):
            raise TypeError(f"LayerNorm: eps must be a number, but got {type(eps).__name__}")
        super().__init__()
        self.normalized_shape = shape
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(ones(shape, dtype=d))
            if bias:
                self.bias = Parameter(zeros(shape, dtype=d))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    @no_grad()
    def reset_parameters(self) -> None:
        if self.weight is not None:
            self.weight.fill_(1.0)
        if self.bias is not None:
            self.bias.fill_(0.0)

    def forward(self, input: Any) -> Any:
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def _step(self, name: str) -> Any:
        return _core.Step.layer_norm(
            name, list(self.normalized_shape), self.weight, self.bias, float(self.eps)
        )

    def _plan_node(self) -> str:
        return LAYER_NORM_NODE

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}"
        )
