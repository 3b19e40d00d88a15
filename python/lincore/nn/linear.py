"""nn.Linear (y = x W^T + b on lincore's packed-weight kernel) and nn.Identity."""

from __future__ import annotations

import math
import numbers
from typing import Any

from .. import _core
from .._creation import as_tensor, empty
from .._dtype import dtype as _dtype
from .._dtype import float32
from .._grad_mode import no_grad
from . import functional as _functional  # noqa: F401  (registers the Linear node classes)
from .module import Module
from .parameter import Parameter

_Tensor = _core.Tensor


def _check_features(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"Linear: {name} must be an int, but got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"Linear: {name} must be a non-negative integer, but got {value}")
    return int(value)


class Linear(Module, _core.LinearBase):
    """Applies y = x W^T + b: input (*, in_features) -> output (*, out_features).

    weight has shape (out_features, in_features) and bias (out_features,); both start uniform in
    (-1/sqrt(in_features), 1/sqrt(in_features)) like PyTorch, drawn from lincore's generator.

    weight, bias and the packed weight (rebuilt whenever they change) are typed fields of
    _core.LinearBase, where the C++ forward reads them (csrc/bindings/linear_call.cpp).

    dtype=lincore.bfloat16 (or .bfloat16() / .to(lincore.bfloat16) later) holds bf16 weight and
    bias and runs the bf16 kernels: bf16 input -> bf16 output, fp32 sums, one rounding
    (docs/quantization.md). Inference only: in grad mode with a parameter or input that
    requires grad it raises (run it under lincore.no_grad()).
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, dtype: _dtype | None = None
    ) -> None:
        in_features = _check_features("in_features", in_features)
        out_features = _check_features("out_features", out_features)
        d = dtype or float32
        if not isinstance(d, _dtype) or not d.is_floating_point:
            raise TypeError(
                "Linear: dtype must be lincore.float32, lincore.float64 or lincore.bfloat16, "
                f"got {d}"
            )
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(empty((out_features, in_features), dtype=d))
        if bias:
            self.bias = Parameter(empty(out_features, dtype=d))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    @no_grad()
    def reset_parameters(self) -> None:
        # PyTorch's kaiming_uniform_(a=sqrt(5)) reduces to this bound for both tensors.
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
        if self.weight.numel():
            self.weight.uniform_(-bound, bound)
        if self.bias is not None:
            self.bias.uniform_(-bound, bound)

    def forward(self, input: Any) -> Any:
        return self._forward(input if isinstance(input, _Tensor) else as_tensor(input))

    # _forward in C for a Tensor input, and forward for any other call: it skips
    # Module.__call__'s extra frame (Linear runs no hooks) and forward's. A subclass that
    # overrides forward gets Module.__call__ back, so its forward is the one called.
    __call__ = _core.LinearBase.__call__

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.forward is not Linear.forward and "__call__" not in cls.__dict__:
            cls.__call__ = Module.__call__  # type: ignore[method-assign]

    def _step(self, name: str) -> Any:
        return _core.Step.linear(name, self.weight, self.bias, self._pack)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Identity(Module):
    """Returns its input unchanged; takes and ignores any arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Any) -> Any:
        return input

    def _step(self, name: str) -> Any:
        return _core.Step.identity(name)
