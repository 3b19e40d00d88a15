"""lincore.nn.functional: the layers as functions. Under grad mode they record their backward
(PyTorch's node names), which runs in the C++ core."""

from __future__ import annotations

from typing import Any

from .. import _core
from .._autograd import SavedNode, needs_grad, node_class, record
from .._creation import as_tensor, wrap_array

# csrc/kernels/gemm.h's Activation codes, as the compiled module binds them, and PyTorch's
# backward node name for each.
RELU, LEAKY_RELU, SIGMOID, TANH, GELU, GELU_TANH = (
    _core.ACTIVATIONS[name]
    for name in ("relu", "leaky_relu", "sigmoid", "tanh", "gelu", "gelu_tanh")
)
_ACTIVATION_NODES = {
    RELU: "ReluBackward0",
    LEAKY_RELU: "LeakyReluBackward0",
    SIGMOID: "SigmoidBackward0",
    TANH: "TanhBackward0",
    GELU: "GeluBackward0",
    GELU_TANH: "GeluBackward0",
}


def _t(x: Any) -> Any:
    return x if isinstance(x, _core.Tensor) else as_tensor(x)


class LinearBackward(SavedNode):
    """The node of y = linear(x, weight, bias); its backward is one C++ call."""

    __slots__ = ()

    def __init__(self, x: Any, weight: Any, bias: Any) -> None:
        self._inputs = self._saved = (x, weight, bias)
        self._edges = None
        self._backward = None

    def apply(self, grad: Any) -> Any:
        x, weight, bias = self.saved()
        return _core.linear_backward(
            x,
            weight,
            wrap_array(grad),
            x.requires_grad,
            weight.requires_grad,
            bias is not None and bias.requires_grad,
        )


# The node classes of F.linear's output, nested as the C++ table of their names that the
# recorded calls pick from: [has bias][output dims 1, 2, 3+] (csrc/bindings/record.h); handed to
# the core once, here.
LINEAR_NODES = tuple(
    tuple(node_class(name, LinearBackward) for name in by_dims)
    for by_dims in _core.LINEAR_NODE_NAMES
)
_core.set_linear_nodes(LINEAR_NODES)


def activation_op(x: Any, code: int, slope: float = 0.01) -> Any:
    y = _core.activation(x, code, slope)
    if needs_grad(x):
        record(
            y,
            _ACTIVATION_NODES[code],
            [x],
            lambda g: (_core.activation_backward(wrap_array(g), x, code, slope),),
        )
    return y


def linear(input: Any, weight: Any, bias: Any = None) -> Any:
    """(*, in_features) -> (*, out_features): input @ weight.T + bias."""
    # The one Linear forward, nn.Linear's too (csrc/bindings/linear_call.h).
    return _core.linear_forward(_t(input), _t(weight), None if bias is None else _t(bias))


def relu(input: Any) -> Any:
    return activation_op(_t(input), RELU)


def leaky_relu(input: Any, negative_slope: float = 0.01) -> Any:
    return activation_op(_t(input), LEAKY_RELU, float(negative_slope))


def sigmoid(input: Any) -> Any:
    return activation_op(_t(input), SIGMOID)


def tanh(input: Any) -> Any:
    return activation_op(_t(input), TANH)


def gelu(input: Any, approximate: str = "none") -> Any:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate argument must be either none or tanh, got {approximate!r}")
    return activation_op(_t(input), GELU if approximate == "none" else GELU_TANH)


# The losses live in loss.py; imported last because loss.py needs nothing from here.
from .loss import (  # noqa: E402
    binary_cross_entropy_with_logits as binary_cross_entropy_with_logits,
    cross_entropy as cross_entropy,
    l1_loss as l1_loss,
    mse_loss as mse_loss,
)
