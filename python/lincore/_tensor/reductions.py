"""Reductions over all elements or over dims, with their backward: sum(), mean(), max(), min(),
argmax(), argmin(). max/min over a dim return (values, indices), as PyTorch's do.
"""

from __future__ import annotations

import collections
from typing import Any, Callable

import numpy as np

from .. import _bf16
from .._autograd import needs_grad, record
from .._creation import wrap_array
from .._dtype import dtype, int64
from .properties import _wrap_dim
from .registry import Tensor, _method


def _dims(t: Tensor, dim: Any) -> tuple[int, ...] | None:
    if dim is None:
        return None
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    out = tuple(_wrap_dim(t, d) for d in dims)
    if len(set(out)) != len(out):
        raise RuntimeError(f"dim {out} appears multiple times in the list of dims")
    return tuple(d for d in out if d < t.dim()) if t.dim() else ()


@_method
def tensor_sum(
    self: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: dtype | None = None
) -> Tensor:
    """Sum of all elements, or over dim (an int or a tuple). ints and bools sum to int64."""
    arr = _bf16.values(self)
    out_dtype = dtype or (self.dtype if self.dtype.is_floating_point else int64)
    axes = _dims(self, dim)
    out = wrap_array(np.asarray(np.sum(arr, axis=axes, keepdims=keepdim, dtype=out_dtype._np)))
    out = _bf16.rounded(out, out_dtype)
    if needs_grad(self):
        record(
            out,
            "SumBackward0" if dim is None else "SumBackward1",
            [self],
            _reduce_back(self, axes, keepdim, 1),
        )
    return out


def _reduce_back(t: Tensor, axes: Any, keepdim: bool, count: int) -> Callable[..., tuple]:
    """The backward of sum (count 1) or mean (count elements averaged): the gradient spread
    back over the reduced dims."""
    shape, dt = tuple(t._shape), t.dtype._np

    def backward(g: np.ndarray) -> tuple:
        if axes is not None and not keepdim:
            g = np.expand_dims(g, axes)
        out = np.broadcast_to(g, shape).astype(dt)
        return (out / dt.type(count) if count != 1 else out,)

    return backward


@_method
def tensor_mean(
    self: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: dtype | None = None
) -> Tensor:
    """Mean of all elements, or over dim; floating point tensors only, like PyTorch."""
    d = dtype or self.dtype
    if not d.is_floating_point:
        raise RuntimeError(
            "mean(): could not infer output dtype. Input dtype must be either a floating point "
            f"or complex dtype. Got: {self.dtype._short}"
        )
    arr = _bf16.values(self).astype(d._np, copy=False)
    axes = _dims(self, dim)
    count = arr.size if axes is None else int(np.prod([arr.shape[a] for a in axes]))
    with np.errstate(all="ignore"):
        out = np.sum(arr, axis=axes, keepdims=keepdim, dtype=d._np) / d._np.type(count)
    result = _bf16.rounded(wrap_array(np.asarray(out, dtype=d._np)), d)
    if needs_grad(self):
        record(
            result,
            "MeanBackward0" if dim is None else "MeanBackward1",
            [self],
            _reduce_back(self, axes, keepdim, count),
        )
    return result


_MinMax = collections.namedtuple("_MinMax", ["values", "indices"])


def _extreme(self: Tensor, dim: Any, keepdim: bool, name: str, pick: Any, arg: Any) -> Any:
    arr = _bf16.values(self)
    if dim is None:
        if arr.size == 0:
            raise RuntimeError(
                f"{name}(): Expected reduction dim to be specified for input.numel() == 0. "
                "Specify the reduction dim with the 'dim' argument."
            )
        return _bf16.rounded(wrap_array(np.asarray(pick(arr))), self.dtype)
    d = _wrap_dim(self, dim)
    if self.dim() == 0:
        return _MinMax(self.clone(), wrap_array(np.asarray(0, dtype=np.int64)))
    if arr.shape[d] == 0:
        raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size.")
    idx = arg(arr, axis=d, keepdims=keepdim)
    vals = pick(arr, axis=d, keepdims=keepdim)
    values = _bf16.rounded(wrap_array(np.asarray(vals)), self.dtype)  # (exact: a pick)
    return _MinMax(values, wrap_array(np.asarray(idx, dtype=np.int64)))


@_method
def tensor_max(self: Tensor, dim: Any = None, keepdim: bool = False) -> Any:
    """max() -> the largest element; max(dim) -> (values, indices) along dim."""
    return _extreme(self, dim, keepdim, "max", np.max, np.argmax)


@_method
def tensor_min(self: Tensor, dim: Any = None, keepdim: bool = False) -> Any:
    return _extreme(self, dim, keepdim, "min", np.min, np.argmin)


def _arg_extreme(self: Tensor, dim: Any, keepdim: bool, name: str, pick: Any, arg: Any) -> Tensor:
    """argmax/argmin: over the flattened tensor when dim is None, else along dim."""
    if dim is None:
        if self.numel() == 0:
            raise RuntimeError(
                f"{name}(): Expected reduction dim to be specified for input.numel() == 0."
            )
        arr = _bf16.values(self)
        idx = np.asarray(arg(arr.reshape(-1)), dtype=np.int64)
        return wrap_array(idx.reshape((1,) * arr.ndim if keepdim else ()))
    return _extreme(self, dim, keepdim, name, pick, arg).indices


@_method
def argmax(self: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """Index of the largest element (in the flattened tensor when dim is None)."""
    return _arg_extreme(self, dim, keepdim, "argmax", np.max, np.argmax)


@_method
def argmin(self: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """Index of the smallest element (in the flattened tensor when dim is None)."""
    return _arg_extreme(self, dim, keepdim, "argmin", np.min, np.argmin)
