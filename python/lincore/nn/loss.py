"""Loss functions with PyTorch's names, reductions, node names and numerics: MSE, L1,
cross-entropy over class indices (log-softmax computed stably) and BCE with logits."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core
from .._autograd import as_array, needs_grad, record
from .._creation import as_tensor, wrap_array
from .module import Module

_REDUCTIONS = ("mean", "sum", "none")
_REDUCTION_CODES = {"none": 0, "mean": 1, "sum": 2}  # csrc/nn/loss.h's Reduction


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _t(x: Any) -> Any:
    return x if isinstance(x, _core.Tensor) else as_tensor(x)


def _reduce(values: np.ndarray, reduction: str) -> np.ndarray:
    if reduction == "none":
        return values
    total = values.sum(dtype=values.dtype)
    return np.asarray(total / values.dtype.type(values.size) if reduction == "mean" else total)


def _reduce_grad(g: np.ndarray, shape: tuple, count: int, reduction: str, dt: Any) -> np.ndarray:
    """d(reduced)/d(elementwise values), times the incoming gradient g."""
    if reduction == "none":
        return g
    scale = g / dt.type(count) if reduction == "mean" else g
    return np.broadcast_to(scale, shape)


def _pair(input: Any, target: Any, name: str) -> tuple:
    input, target = _t(input), _t(target)
    if tuple(input._shape) != tuple(target._shape):
        raise ValueError(
            f"Using a target size ({target.shape}) that is different to the input size "
            f"({input.shape}) is not supported by {name}."
        )
    if not input.dtype.is_floating_point or target.dtype is not input.dtype:
        raise RuntimeError(
            f"{name}: expected input and target of one floating point dtype, "
            f"got {input.dtype} and {target.dtype}"
        )
    return input, target


def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Any:
    """mean (or sum, or each) of (input - target)^2."""
    _check_reduction(reduction)
    input, target = _pair(input, target, "mse_loss")
    x, t = as_array(input), as_array(target)
    d = x - t
    out = wrap_array(np.asarray(_reduce(d * d, reduction)))
    if needs_grad(input, target):

        def backward(g: np.ndarray) -> tuple:
            gd = _reduce_grad(g, d.shape, d.size, reduction, d.dtype) * (2 * d)
            return (gd if input.requires_grad else None, -gd if target.requires_grad else None)

        record(out, "MseLossBackward0", [input, target], backward)
    return out


def l1_loss(input: Any, target: Any, reduction: str = "mean") -> Any:
    """mean (or sum, or each) of |input - target|."""
    _check_reduction(reduction)
    input, target = _pair(input, target, "l1_loss")
    d = as_array(input) - as_array(target)
    out = wrap_array(np.asarray(_reduce(np.abs(d), reduction)))
    if needs_grad(input, target):

        def backward(g: np.ndarray) -> tuple:
            gd = _reduce_grad(g, d.shape, d.size, reduction, d.dtype) * np.sign(d)
            return (gd if input.requires_grad else None, -gd if target.requires_grad else None)

        name = {"mean": "MeanBackward0", "sum": "SumBackward0", "none": "AbsBackward0"}[reduction]
        record(out, name, [input, target], backward)
    return out


def cross_entropy(input: Any, target: Any, reduction: str = "mean") -> Any:
    """-log softmax(input)[target]: input (N, C) or (C,) logits, target (N,) or () class indices
    (int64); the log-softmax is computed stably (max subtracted)."""
    _check_reduction(reduction)
    input, target = _t(input), _t(target)
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"cross_entropy: expected floating point logits, got {input.dtype}")
    if target.dtype.is_floating_point or target.dtype.name == "bool":
        raise RuntimeError(
            f"cross_entropy: expected class indices of dtype int64 as target, got {target.dtype}"
        )
    if (
        input.dim() not in (1, 2)
        or target.dim() != input.dim() - 1
        or (input.dim() == 2 and target._shape[0] != input._shape[0])
    ):
        raise ValueError(
            f"Expected input batch_size ({input.shape[0] if input.dim() == 2 else 1}) "
            f"to match target batch_size "
            f"({target.shape[0] if target.dim() == 1 else 1}); input {input.shape}, "
            f"target {target.shape}"
        )
    # One C++ pass per row: the stable log-softmax, the loss and its gradient (csrc/nn/loss.h).
    z2 = input if input.dim() == 2 else input.reshape(1, -1)
    record_grad = needs_grad(input)
    out, unit_grad = _core.cross_entropy(
        z2, target.reshape(-1), _REDUCTION_CODES[reduction], record_grad
    )
    if input.dim() == 1 and reduction == "none":
        out = out.reshape(())
    if record_grad:

        def backward(g: np.ndarray) -> tuple:
            g = np.asarray(g)
            if reduction == "none":
                grad = as_array(unit_grad) * g.reshape(-1, 1).astype(unit_grad.dtype._np)
            elif g == 1:
                return (unit_grad.reshape(tuple(input._shape)), None)
            else:
                grad = as_array(unit_grad) * g.astype(unit_grad.dtype._np)
            return (grad.reshape(tuple(input._shape)), None)

        record(out, "NllLossBackward0", [input, None], backward)
    return out


def binary_cross_entropy_with_logits(
    input: Any, target: Any, reduction: str = "mean", pos_weight: Any = None
) -> Any:
    """-[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))], computed stably from the logits x."""
    _check_reduction(reduction)
    input, target = _pair(input, target, "binary_cross_entropy_with_logits")
    x, t = as_array(input), as_array(target)
    pw = None if pos_weight is None else as_array(_t(pos_weight)).astype(x.dtype)
    with np.errstate(all="ignore"):
        # log(1 + exp(-|x|)) + max(-x, 0) = -log sigmoid(x), without overflow.
        log_sig_neg = np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0)  # -log sigmoid(x)
        if pw is None:
            losses = (1 - t) * x + log_sig_neg
        else:
            weight = 1 + (pw - 1) * t
            losses = (1 - t) * x + weight * log_sig_neg
        sig = 1 / (1 + np.exp(-x))
    out = wrap_array(np.asarray(_reduce(losses.astype(x.dtype), reduction)))
    if needs_grad(input, target):

        def backward(g: np.ndarray) -> tuple:
            gl = _reduce_grad(g, x.shape, x.size, reduction, x.dtype)
            with np.errstate(all="ignore"):
                if pw is None:
                    dx = sig - t
                    dt = -x
                else:
                    dx = (1 + (pw - 1) * t) * (sig - 1) + (1 - t)
                    dt = -x + (pw - 1) * log_sig_neg
            return (
                gl * dx if input.requires_grad else None,
                gl * dt if target.requires_grad else None,
            )

        record(out, "BinaryCrossEntropyWithLogitsBackward0", [input, target], backward)
    return out


class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        _check_reduction(reduction)
        super().__init__()
        self.reduction = reduction


class MSELoss(_Loss):
    """Mean squared error: reduction of (input - target)^2."""

    def forward(self, input: Any, target: Any) -> Any:
        return mse_loss(input, target, self.reduction)


class L1Loss(_Loss):
    """Mean absolute error: reduction of |input - target|."""

    def forward(self, input: Any, target: Any) -> Any:
        return l1_loss(input, target, self.reduction)


class CrossEntropyLoss(_Loss):
    """Cross-entropy of logits (N, C) against class indices (N,)."""

    def forward(self, input: Any, target: Any) -> Any:
        return cross_entropy(input, target, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of logits against targets in [0, 1]."""

    def __init__(self, reduction: str = "mean", pos_weight: Any = None) -> None:
        super().__init__(reduction)
        self.pos_weight = pos_weight

    def forward(self, input: Any, target: Any) -> Any:
        return binary_cross_entropy_with_logits(input, target, self.reduction, self.pos_weight)
