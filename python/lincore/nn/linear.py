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
from .._grad_mode import _state as _grad_state
from .functional import LINEAR_NODES, linear_op
from .module import Module, _load_epoch, consistent
from .parameter import Parameter

_Tensor = _core.Tensor
_linear_unrecorded = _core.linear_unrecorded
_linear_recorded = _core.linear_recorded


def _check_features(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"Linear: {name} must be an int, but got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"Linear: {name} must be a non-negative integer, but got {value}")
    return int(value)


class Linear(Module):
    """Applies y = x W^T + b: input (*, in_features) -> output (*, out_features).

    weight has shape (out_features, in_features) and bias (out_features,); both start uniform in
    (-1/sqrt(in_features), 1/sqrt(in_features)) like PyTorch, drawn from lincore's generator.
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, dtype: _dtype | None = None
    ) -> None:
        in_features = _check_features("in_features", in_features)
        out_features = _check_features("out_features", out_features)
        d = dtype or float32
        if not isinstance(d, _dtype) or not d.is_floating_point:
            raise TypeError(f"Linear: dtype must be lincore.float32 or lincore.float64, got {d}")
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(empty((out_features, in_features), dtype=d))
        if bias:
            self.bias = Parameter(empty(out_features, dtype=d))
        else:
            self.register_parameter("bias", None)
        # The packed weight lives here; it is rebuilt whenever weight or bias change.
        object.__setattr__(self, "_pack", _core.PackCache())
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
        # linear_op, inlined: a small Linear's call costs about a microsecond, and a Python
        # call frame is a tenth of that.
        x = input if isinstance(input, _Tensor) else as_tensor(input)
        epoch = _load_epoch[0]
        w, b = self.weight, self.bias
        if _grad_state.__dict__.get("enabled", True):
            y = _linear_recorded(x, w, b, self._pack, LINEAR_NODES)
        else:
            y = _linear_unrecorded(x, w, b, self._pack)
        if epoch == _load_epoch[0] and not epoch & 1:
            return y
        # A load_state_dict overlapped this call (see module.py): compute again.
        return consistent(lambda: linear_op(x, self.weight, self.bias, self._pack))

    # forward in C (csrc/bindings/linear_call.cpp) for a Tensor input, and forward itself for
    # any other call: it skips Module.__call__'s extra frame (Linear runs no hooks) and this
    # one's. A subclass that overrides forward gets Module.__call__ back, so its forward is the
    # one called.
    __call__ = _core.make_linear_call(_grad_state, _load_epoch, LINEAR_NODES)

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
