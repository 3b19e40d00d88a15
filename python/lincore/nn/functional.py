"""lincore.nn.functional: the layers as functions. Under grad mode they record their backward
(PyTorch's node names), which runs in the C++ core."""

from __future__ import annotations

import numbers
import operator
import warnings
from typing import Any

from .. import _core
from .._autograd import SavedNode, needs_grad, node_class, record
from .._creation import as_tensor, wrap_array
from .._tensor.grad import _check_inplace

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
        raise RuntimeError(f"approximate argument must be either none or tanh, got {approximate!r}")
    return activation_op(_t(input), GELU if approximate == "none" else GELU_TANH)


# The losses live in loss.py; imported last because loss.py needs nothing from here.
from .loss import (  # noqa: E402
    binary_cross_entropy_with_logits as binary_cross_entropy_with_logits,
    cross_entropy as cross_entropy,
    l1_loss as l1_loss,
    mse_loss as mse_loss,
)


# --- softmax, log_softmax, layer_norm, dropout (csrc/nn/softmax.h, layer_norm.h, dropout.h) ---

# PyTorch's node names for these ops' outputs (a dropout in training mode is x * mask there).
SOFTMAX_NODE, LOG_SOFTMAX_NODE = "SoftmaxBackward0", "LogSoftmaxBackward0"
LAYER_NORM_NODE = "NativeLayerNormBackward0"
DROPOUT_NODE = "MulBackward0"


def _get_softmax_dim(name: str, ndim: int, stacklevel: int) -> int:
    """PyTorch's legacy choice of dim when none is given, with its deprecation warning."""
    warnings.warn(
        f"Implicit dimension choice for {name} has been deprecated. "
        "Change the call to include dim=X as an argument.",
        stacklevel=stacklevel,
    )
    return 0 if ndim in (0, 1, 3) else 1


def softmax_op(x: Any, dim: int, log: bool) -> Any:
    """softmax (log_softmax when log) of x along dim, recorded in the graph under grad mode."""
    y = _core.softmax(x, dim, log)
    if needs_grad(x):
        # The backward reads the output through its own handle: the node then holds no
        # reference to y, which holds the node (no cycle for the garbage collector).
        saved = _core.Tensor(y)
        record(
            y,
            LOG_SOFTMAX_NODE if log else SOFTMAX_NODE,
            [x],
            lambda g: (_core.softmax_backward(wrap_array(g), saved, dim, log),),
        )
    return y


def _softmax(name: str, input: Any, dim: Any, stacklevel: int, dtype: Any, log: bool) -> Any:
    x = _t(input)
    if dim is None:
        dim = _get_softmax_dim(name, x.dim(), stacklevel + 1)
    if dtype is not None:
        x = x.to(dtype)
    return softmax_op(x, operator.index(dim), log)


def softmax(input: Any, dim: Any = None, _stacklevel: int = 3, dtype: Any = None) -> Any:
    """exp(x) / sum(exp(x)) along dim (computed stably); dtype: cast the input first."""
    return _softmax("softmax", input, dim, _stacklevel, dtype, False)


def log_softmax(input: Any, dim: Any = None, _stacklevel: int = 3, dtype: Any = None) -> Any:
    """x - log(sum(exp(x))) along dim (computed stably); dtype: cast the input first."""
    return _softmax("log_softmax", input, dim, _stacklevel, dtype, True)


def normalized_shape_tuple(normalized_shape: Any) -> tuple:
    """normalized_shape as LayerNorm keeps it: an int becomes a 1-tuple."""
    if isinstance(normalized_shape, numbers.Integral):
        return (int(normalized_shape),)
    return tuple(operator.index(s) for s in normalized_shape)


def layer_norm(
    input: Any, normalized_shape: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5
) -> Any:
    """(x - mean) / sqrt(var + eps) * weight + bias over the trailing normalized_shape."""
    x = _t(input)
    w = None if weight is None else _t(weight)
    b = None if bias is None else _t(bias)
    shape = list(normalized_shape_tuple(normalized_shape))
    y, stats = _core.layer_norm(x, shape, w, b, float(eps))
    if needs_grad(x, w, b):
        record(
            y,
            LAYER_NORM_NODE,
            [x, w, b],
            lambda g: _core.layer_norm_backward(
                wrap_array(g),
                x,
                stats,
                shape,
                w,
                x.requires_grad,
                w is not None and w.requires_grad,
                b is not None and b.requires_grad,
            ),
        )
    return y


def check_dropout_p(p: Any) -> None:
    if p < 0 or p > 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def dropout(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Any:
    """In training: each element zeroed with probability p (lincore's generator, see
    manual_seed), the rest scaled by 1 / (1 - p). Otherwise, or for p = 0, the input itself."""
    check_dropout_p(p)
    x = _t(input)
    if not training or p == 0 or x.numel() == 0:
        return x  # PyTorch returns the input tensor itself here
    if inplace:
        _check_inplace(x)
    y, mask = _core.dropout(x, float(p))
    if needs_grad(x):
        record(y, DROPOUT_NODE, [x], lambda g: (_core.dropout_backward(wrap_array(g), mask),))
    if inplace:
        x._copy_from(y)
        return x
    return y
