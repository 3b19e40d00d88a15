"""t[key] and t[key] = value. Ints, slices, None and Ellipsis give views through the compiled
_select/_slice/_reshape, recorded with PyTorch's node names; tensors, lists and booleans
(advanced indexing) give copies through numpy. The backward scatters the gradient into zeros of
the input's shape.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable

import numpy as np

from .. import _bf16
from .._autograd import needs_grad, record
from .._creation import wrap_array
from .grad import _check_inplace
from .registry import Tensor, _method


def _basic_view(t: Tensor, key: Any) -> Tensor | None:
    """The view for ints, slices, None and Ellipsis; None when key needs advanced indexing."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(
        not (
            k is None
            or k is Ellipsis
            or isinstance(k, slice)
            or (isinstance(k, numbers.Integral) and not isinstance(k, bool))
        )
        for k in key
    ):
        return None
    n_index = sum(1 for k in key if k is not None and k is not Ellipsis)
    if sum(1 for k in key if k is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if t.dim() == 0 and any(isinstance(k, numbers.Integral) for k in key):
        raise IndexError(
            "invalid index of a 0-dim tensor. Use `tensor.item()` in Python or "
            "`tensor.item<T>()` in C++ to convert a 0-dim tensor to a number"
        )
    if n_index > t.dim():
        raise IndexError(f"too many indices for tensor of dimension {t.dim()}")
    if Ellipsis in key:
        at = key.index(Ellipsis)
        key = key[:at] + (slice(None),) * (t.dim() - n_index) + key[at + 1 :]
    out, d, source_dim = t, 0, 0  # source_dim: the dim of t that k indexes, for messages
    for k in key:
        if k is None:
            out = out._reshape(list(out._shape[:d]) + [1] + list(out._shape[d:]))
            d += 1
        elif isinstance(k, slice):
            start, stop, step = k.start, k.stop, k.step
            step = 1 if step is None else int(step)
            if step <= 0:
                raise ValueError("step must be greater than zero")
            big = 1 << 62
            out = out._slice(
                d, 0 if start is None else int(start), big if stop is None else int(stop), step
            )
            d += 1
            source_dim += 1
        else:
            size = out._shape[d]
            if not -size <= k < size:
                raise IndexError(
                    f"index {k} is out of bounds for dimension {source_dim} with size {size}"
                )
            out = out._select(d, int(k))
            source_dim += 1
    return out


@_method
def __getitem__(self: Tensor, key: Any) -> Tensor:
    view = _basic_view(self, key)
    if view is not None:
        if needs_grad(self):
            record(view, _index_node_name(self, key), [self], _scatter_back(self, key, add=False))
        return view
    # Advanced indexing (tensors, lists, booleans): a copy, as in PyTorch and numpy.
    arr = _bf16.values(self)
    nkey = _numpy_key(key)
    try:
        out = _bf16.rounded(wrap_array(np.array(arr[nkey])), self.dtype)  # (exact: a gather)
    except IndexError as e:
        # numpy says "axis"; PyTorch says "dimension".
        raise IndexError(str(e).replace("for axis", "for dimension")) from None
    if needs_grad(self):
        record(out, "IndexBackward0", [self], _scatter_back(self, nkey, add=True))
    return out


def _index_node_name(t: Tensor, key: Any) -> str:
    """PyTorch's node for basic indexing: named by the last element that does something. In a
    tuple, full slices (the whole dim) and Ellipsis do nothing; a tuple of only those gives
    AliasBackward0. A lone slice is always a SliceBackward0."""
    if not isinstance(key, tuple):
        return (
            "UnsqueezeBackward0"
            if key is None
            else "AliasBackward0"
            if key is Ellipsis
            else "SelectBackward0"
            if isinstance(key, numbers.Integral)
            else "SliceBackward0"
        )
    name, dim = "AliasBackward0", 0
    before = sum(1 for k in key if k is not None and k is not Ellipsis)
    for k in key:
        if k is Ellipsis:
            dim += t.dim() - before
        elif k is None:
            name = "UnsqueezeBackward0"
        elif isinstance(k, numbers.Integral):
            name, dim = "SelectBackward0", dim + 1
        else:
            full = (
                k.step in (None, 1)
                and k.start in (None, 0)
                and (k.stop is None or k.stop >= t._shape[dim])
            )
            if not full:
                name = "SliceBackward0"
            dim += 1
    return name


def _scatter_back(t: Tensor, key: Any, add: bool) -> Callable[[np.ndarray], tuple]:
    """The backward of indexing: the gradient scattered into zeros of the input's shape (added
    up where an advanced index repeats an element)."""
    shape, dt = tuple(t._shape), t.dtype._np

    def backward(g: np.ndarray) -> tuple:
        out = np.zeros(shape, dt)
        if add:
            np.add.at(out, key, g)
        else:
            out[key] = g
        return (out,)

    return backward


def _numpy_key(key: Any) -> Any:
    if isinstance(key, tuple):
        return tuple(_numpy_key(k) for k in key)
    if isinstance(key, Tensor):
        return _bf16.values(key)
    return key


@_method
def __setitem__(self: Tensor, key: Any, value: Any) -> None:
    _check_inplace(self)  # refuses read-only memory too
    src = _bf16.values(value) if isinstance(value, Tensor) else value
    _bf16.assign(self, _numpy_key(key), src)
