"""Loss functions with PyTorch's names, signatures, reductions, node names and numerics: MSE,
L1, cross-entropy (class indices or probabilities, weight, ignore_index, label smoothing; the
log-softmax computed stably in C++) and BCE with logits (weight, pos_weight)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .. import _core
from .._autograd import as_array, needs_grad, record, unbroadcast
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


def _legacy_reduction(size_average: Any, reduce: Any, reduction: str) -> str:
    """PyTorch's deprecated size_average / reduce arguments, mapped to a reduction as it maps
    them (with its warning); reduction itself when both are None."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    ret = ("mean" if size_average else "sum") if reduce else "none"
    warnings.warn(
        f"size_average and reduce args will be deprecated, please use reduction='{ret}' instead.",
        stacklevel=3,
    )
    return ret


def _pair(input: Any, target: Any, name: str) -> tuple:
    """(input, target) as tensors of one floating point dtype and broadcast-compatible shapes:
    a target of another shape warns, as in PyTorch, and broadcasts (RuntimeError when the
    shapes do not broadcast)."""
    input, target = _t(input), _t(target)
    if not input.dtype.is_floating_point or target.dtype is not input.dtype:
        raise RuntimeError(
            f"{name}: expected input and target of one floating point dtype, "
            f"got {input.dtype} and {target.dtype}"
        )
    a, b = tuple(input._shape), tuple(target._shape)
    if a != b:
        warnings.warn(
            f"Using a target size ({target.shape}) that is different to the input size "
            f"({input.shape}). This will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same size.",
            stacklevel=3,
        )
        try:
            np.broadcast_shapes(a, b)
        except ValueError:
            raise RuntimeError(
                f"The size of tensor a ({list(a)}) must match the size of tensor b ({list(b)}) "
                f"for {name}: the shapes do not broadcast"
            ) from None
    return input, target


def _elementwise_backward(input: Any, target: Any, gd: np.ndarray, dt_sign: int = -1) -> tuple:
    """The (input, target) gradients of a loss of d = input - target, from d(loss)/d(d)."""
    return (
        unbroadcast(gd, input._shape).astype(gd.dtype, copy=False) if input.requires_grad else None,
        unbroadcast(dt_sign * gd, target._shape) if target.requires_grad else None,
    )


def mse_loss(
    input: Any,
    target: Any,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    weight: Any = None,
) -> Any:
    """mean (or sum, or each) of weight * (input - target)^2."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    input, target = _pair(input, target, "mse_loss")
    x, t = as_array(input), as_array(target)
    d = x - t
    w = None if weight is None else as_array(_t(weight)).astype(d.dtype)
    sq = d * d if w is None else w * (d * d)
    out = wrap_array(np.asarray(_reduce(sq.astype(d.dtype, copy=False), reduction)))
    if needs_grad(input, target):

        def backward(g: np.ndarray) -> tuple:
            gd = _reduce_grad(g, sq.shape, sq.size, reduction, d.dtype) * (2 * d)
            return _elementwise_backward(input, target, gd if w is None else gd * w)

        record(out, "MseLossBackward0", [input, target], backward)
    return out


def l1_loss(
    input: Any, target: Any, size_average: Any = None, reduce: Any = None, reduction: str = "mean"
) -> Any:
    """mean (or sum, or each) of |input - target|."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    input, target = _pair(input, target, "l1_loss")
    d = as_array(input) - as_array(target)
    out = wrap_array(np.asarray(_reduce(np.abs(d), reduction)))
    if needs_grad(input, target):

        def backward(g: np.ndarray) -> tuple:
            gd = _reduce_grad(g, d.shape, d.size, reduction, d.dtype) * np.sign(d)
            return _elementwise_backward(input, target, gd)

        name = {"mean": "MeanBackward0", "sum": "SumBackward0", "none": "AbsBackward0"}[reduction]
        record(out, name, [input, target], backward)
    return out


def _cross_entropy_target(input: Any, target: Any, ignore_index: int) -> bool:
    """Checks the target against the input as PyTorch does, in its words; True for class
    probabilities (a target of the input's shape), False for class indices."""
    shape, tshape = tuple(input._shape), tuple(target._shape)
    if shape == tshape:
        if not target.dtype.is_floating_point:
            raise RuntimeError(
                "Expected floating point type for target with class probabilities, "
                f"got {target.dtype._short}"
            )
        if ignore_index >= 0:
            raise RuntimeError("ignore_index is not supported for floating point target")
        return True
    if target.dtype.name != "int64":
        raise RuntimeError(
            f"expected target dtype to be Long or Byte, but got {target.dtype._short}"
        )
    if len(shape) != 1 and (len(tshape) == 0 or tshape[0] != shape[0]):
        raise ValueError(
            f"Expected input batch_size ({shape[0]}) to match target batch_size "
            f"({tshape[0] if tshape else 0})."
        )
    expected = shape[:1] + shape[2:] if len(shape) > 1 else ()
    if tshape != expected:
        raise RuntimeError(f"Expected target size {list(expected)}, got {list(tshape)}")
    return False


def cross_entropy(
    input: Any,
    target: Any,
    weight: Any = None,
    size_average: Any = None,
    ignore_index: int = -100,
    reduce: Any = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Any:
    """-log softmax(input)[target] over the class dim (dim 1, or 0 for an unbatched (C,) input),
    with PyTorch's options: target class indices (int64, the input's shape without the class
    dim) or class probabilities (the input's shape); weight per class; ignore_index; label
    smoothing. One C++ pass (csrc/nn/loss.h) computes the loss and its gradient."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    input, target = _t(input), _t(target)
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"cross_entropy: expected floating point logits, got {input.dtype}")
    if input.dim() == 0:
        raise ValueError("Expected 1 or more dimensions (got 0)")
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    probs = _cross_entropy_target(input, target, ignore_index)
    shape = tuple(input._shape)
    c = shape[0] if len(shape) == 1 else shape[1]
    w = None
    if weight is not None:
        w = _t(weight)
        if tuple(w._shape) != (c,):
            raise RuntimeError(
                f"weight tensor should be defined either for all {c} classes or no classes but "
                f"got weight tensor of shape: {list(w._shape)}"
            )
        w = w.to(input.dtype).contiguous()
    # The core takes (N, C) or (N, C, S): an unbatched input is one row, K extra dims are one.
    n = 1 if len(shape) == 1 else shape[0]
    z = input.reshape((n, c) if len(shape) <= 2 else (n, c, -1))
    if probs:
        t = target.to(input.dtype).reshape(tuple(z._shape))
    else:
        t = target.reshape((n,) if len(shape) <= 2 else (n, -1))
    record_grad = needs_grad(input)
    target_grad = probs and needs_grad(target)
    out, unit_grad, unit_tgrad = _core.cross_entropy(
        z,
        t,
        _REDUCTION_CODES[reduction],
        record_grad,
        w,
        int(ignore_index),
        float(label_smoothing),
        target_grad,
    )
    if reduction == "none":
        out = out.reshape(shape[:1] + shape[2:] if len(shape) > 1 else ())
    if record_grad or target_grad:
        # the upstream gradient of each row, broadcast over the class dim of (N, C[, S])
        row_g = (-1, 1) if len(z._shape) == 2 else (n, 1, -1)

        def scaled(unit: Any, g: np.ndarray) -> np.ndarray:
            u = as_array(unit)
            g = np.asarray(g).astype(u.dtype, copy=False)
            if reduction == "none":
                return (u * g.reshape(row_g)).reshape(shape)
            return (u if g == 1 else u * g).reshape(shape)

        def backward(g: np.ndarray) -> tuple:
            return (
                scaled(unit_grad, g) if record_grad else None,
                scaled(unit_tgrad, g) if target_grad else None,
            )

        if probs:
            name = "DivBackward0" if reduction == "mean" else "NegBackward0"
        else:
            name = "AddBackward0" if label_smoothing > 0 else "NllLossBackward0"
        record(out, name, [input, target if target_grad else None], backward)
    return out


def binary_cross_entropy_with_logits(
    input: Any,
    target: Any,
    weight: Any = None,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    pos_weight: Any = None,
) -> Any:
    """-w [t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))], computed stably from the logits x;
    weight w broadcasts over the input, pos_weight over its last dim."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    input, target = _t(input), _t(target)
    if tuple(input._shape) != tuple(target._shape):
        raise ValueError(
            f"Target size ({target.shape}) must be the same as input size ({input.shape})"
        )
    input, target = _pair(input, target, "binary_cross_entropy_with_logits")
    x, t = as_array(input), as_array(target)
    pw = None if pos_weight is None else as_array(_t(pos_weight)).astype(x.dtype)
    w = None if weight is None else as_array(_t(weight)).astype(x.dtype)
    with np.errstate(all="ignore"):
        # log(1 + exp(-|x|)) + max(-x, 0) = -log sigmoid(x), without overflow.
        log_sig_neg = np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0)  # -log sigmoid(x)
        if pw is None:
            losses = (1 - t) * x + log_sig_neg
        else:
            losses = (1 - t) * x + (1 + (pw - 1) * t) * log_sig_neg
        if w is not None:
            losses = w * losses
        sig = 1 / (1 + np.exp(-x))
    out = wrap_array(np.asarray(_reduce(losses.astype(x.dtype), reduction)))
    if needs_grad(input, target):

        def backward(g: np.ndarray) -> tuple:
            gl = _reduce_grad(g, losses.shape, losses.size, reduction, x.dtype)
            if w is not None:
                gl = gl * w
            with np.errstate(all="ignore"):
                if pw is None:
                    dx = sig - t
                    dt = -x
                else:
                    dx = (1 + (pw - 1) * t) * (sig - 1) + (1 - t)
                    dt = -x + (pw - 1) * log_sig_neg
            return (
                unbroadcast(gl * dx, input._shape).astype(x.dtype) if input.requires_grad else None,
                unbroadcast(gl * dt, target._shape).astype(x.dtype)
                if target.requires_grad
                else None,
            )

        record(out, "BinaryCrossEntropyWithLogitsBackward0", [input, target], backward)
    return out


class _Loss(Module):
    def __init__(
        self, size_average: Any = None, reduce: Any = None, reduction: str = "mean"
    ) -> None:
        reduction = _legacy_reduction(size_average, reduce, reduction)
        _check_reduction(reduction)
        super().__init__()
        self.reduction = reduction


class MSELoss(_Loss):
    """Mean squared error: reduction of (input - target)^2."""

    def forward(self, input: Any, target: Any) -> Any:
        return mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error: reduction of |input - target|."""

    def forward(self, input: Any, target: Any) -> Any:
        return l1_loss(input, target, reduction=self.reduction)


class CrossEntropyLoss(_Loss):
    """Cross-entropy of logits (N, C, ...) or (C,) against class indices or probabilities."""

    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        ignore_index: int = -100,
        reduce: Any = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = weight
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: Any, target: Any) -> Any:
        return cross_entropy(
            input,
            target,
            self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of logits against targets in [0, 1]."""

    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        reduce: Any = None,
        reduction: str = "mean",
        pos_weight: Any = None,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = weight
        self.pos_weight = pos_weight

    def forward(self, input: Any, target: Any) -> Any:
        return binary_cross_entropy_with_logits(
            input, target, self.weight, reduction=self.reduction, pos_weight=self.pos_weight
        )
