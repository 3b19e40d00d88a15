"""The matrix product: lincore.matmul and the @ operator, with PyTorch's rules for 1-D, 2-D and
batched operands and its backward. 2-D float products run on lincore's Linear kernel
(_core.linear); batched ones on numpy.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _bf16, _core
from .._autograd import as_array, needs_grad, record, unbroadcast
from .._creation import as_tensor, wrap_array
from .registry import Tensor, _cpp_transpose, _method


@_method
def __matmul__(self: Tensor, other: Any) -> Tensor:
    """Matrix product with PyTorch's rules for 1-D, 2-D and batched operands."""
    if not isinstance(other, Tensor):
        if isinstance(other, np.ndarray):
            other = as_tensor(other)
        else:
            return NotImplemented
    return matmul(self, other)


@_method
def __rmatmul__(self: Tensor, other: Any) -> Tensor:
    if isinstance(other, np.ndarray):
        return matmul(as_tensor(other), self)
    return NotImplemented


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """a @ b. 2-D float products run on lincore's kernel (as a Linear with weight b.T)."""
    if a.dim() == 0 or b.dim() == 0:
        raise RuntimeError(
            f"both arguments to matmul need to be at least 1D, but they are {a.dim()}D and "
            f"{b.dim()}D"
        )
    if a.dtype is not b.dtype:
        raise RuntimeError(
            f"expected m1 and m2 to have the same dtype, but got: {a.dtype._short} != "
            f"{b.dtype._short}"
        )
    if a.dim() <= 2 and b.dim() <= 2:
        a2 = a if a.dim() == 2 else a._reshape([1, a._shape[0]])
        b2 = b if b.dim() == 2 else b._reshape([b._shape[0], 1])
        if a2._shape[1] != b2._shape[0]:
            raise RuntimeError(
                f"mat1 and mat2 shapes cannot be multiplied ({a2._shape[0]}x{a2._shape[1]} and "
                f"{b2._shape[0]}x{b2._shape[1]})"
            )
        y = _core.linear(a2, _cpp_transpose(b2, 0, 1))
        shape = ([a._shape[0]] if a.dim() == 2 else []) + ([b._shape[1]] if b.dim() == 2 else [])
        out = y._reshape(shape)
    else:
        xa, xb = _bf16.values(a), _bf16.values(b)
        try:
            out = _bf16.rounded(wrap_array(np.matmul(xa, xb)), a.dtype)  # fp32 sums for bf16
        except ValueError:
            raise RuntimeError(
                f"mat1 and mat2 shapes cannot be multiplied ({list(xa.shape)} and {list(xb.shape)})"
            ) from None
    if needs_grad(a, b):
        _record_matmul(out, a, b)
    return out


def _record_matmul(out: Tensor, a: Tensor, b: Tensor) -> None:
    """The backward of a @ b for every operand rank, with PyTorch's node names."""
    na, nb = a.dim(), b.dim()
    xa, xb = as_array(a), as_array(b)
    if na == nb == 1:
        name = "DotBackward0"
    elif (na, nb) == (2, 1):
        name = "MvBackward0"
    elif (na, nb) == (1, 2):
        name = "SqueezeBackward4"
    elif na == nb == 2:
        name = "MmBackward0"
    else:
        # PyTorch folds a matrix with no real batch (its batch dims all 1) against a batched
        # operand through transposes and a final copy; every other batched product ends in an
        # unsafe view (names checked against torch 2.13 in tests/test_autograd.py).
        batch = np.broadcast_shapes(xa.shape[:-2], xb.shape[:-2] if nb > 1 else ())
        name = (
            "CloneBackward0"
            if na >= 2 and math.prod(xa.shape[:-2]) == 1 and math.prod(batch) > 1
            else "UnsafeViewBackward0"
        )

    def backward(g: np.ndarray) -> tuple:
        a2 = xa if na > 1 else xa[None, :]
        b2 = xb if nb > 1 else xb[:, None]
        g2 = np.asarray(g)
        if na == 1 and nb == 1:
            g2 = g2.reshape(1, 1)
        elif na == 1:
            g2 = np.expand_dims(g2, -2)
        elif nb == 1:
            g2 = np.expand_dims(g2, -1)
        ga = gb = None
        if a.requires_grad:
            ga = unbroadcast(g2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(xa.shape)
        if b.requires_grad:
            gb = unbroadcast(np.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(xb.shape)
        return (ga, gb)

    record(out, name, [a, b], backward)
