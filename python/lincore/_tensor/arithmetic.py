"""The elementwise operators: + - * / ** (with their reflected and in-place forms, and add, sub,
mul, div), the comparisons (== != < <= > >= and eq ... ge), unary -, + and abs. They compute on
numpy views of the operands with numpy's broadcasting and PyTorch's type promotion (_promote),
and record their backward (_GRADS) when an operand requires grad. A bfloat16 result is computed
in float32 and rounded once (lincore._bf16).
"""

from __future__ import annotations

import numbers
from typing import Any, Callable

import numpy as np

from .. import _bf16
from .._autograd import needs_grad, record, unbroadcast
from .._creation import as_tensor, wrap_array
from .._dtype import bfloat16, bool_, dtype, float32, int64, result_kind
from .grad import _check_inplace
from .registry import Tensor, _method, _methods


def _operand(x: Any) -> tuple[Any, dtype | None, bool]:
    """(numpy value, lincore dtype or None for a Python scalar, is_tensor)."""
    if isinstance(x, Tensor):
        return _bf16.values(x), x.dtype, True
    if isinstance(x, (bool, np.bool_)):
        return bool(x), None, False
    if isinstance(x, numbers.Integral):
        return int(x), None, False
    if isinstance(x, numbers.Real):
        return float(x), None, False
    if isinstance(x, np.ndarray):
        t = as_tensor(x)
        return _bf16.values(t), t.dtype, True
    raise TypeError(f"unsupported operand type: {type(x).__name__}")


def _scalar_kind(v: Any) -> int:
    return 0 if isinstance(v, bool) else (1 if isinstance(v, int) else 2)


def _promote(da: dtype | None, va: Any, db: dtype | None, vb: Any) -> dtype:
    """PyTorch's result type: tensors decide within a category; a scalar of a higher category
    lifts the result to that category's default (int64 or float32)."""
    if da is not None and db is not None:
        ka, kb = result_kind(da), result_kind(db)
        if ka != kb:
            return da if ka > kb else db
        return da if da.itemsize >= db.itemsize else db
    t, s = (da, vb) if da is not None else (db, va)
    assert t is not None
    ks = _scalar_kind(s)
    if ks > result_kind(t):
        return (bool_, int64, float32)[ks]
    return t


# Gradients of the binary ops: (g, a, b) -> (da, db) before unbroadcasting, where a and b are the
# operands as computed (arrays, or Python scalars), and the PyTorch node name for (tensor op
# tensor/scalar, scalar op tensor). They use the operands only, never the result: a node that
# held its own output would form a reference cycle (output -> grad_fn -> output) that only the
# cycle collector frees.
def _pow_grads(g: Any, a: Any, b: Any) -> tuple:
    with np.errstate(all="ignore"):
        return (g * b * np.power(a, b - 1), g * np.power(a, b) * np.log(a))


def _div_grads(g: Any, a: Any, b: Any) -> tuple:
    with np.errstate(all="ignore"):
        return (g / b, -g * a / (b * b))


_GRADS: dict[str, tuple[Callable[..., tuple], str, str]] = {
    "add": (lambda g, a, b: (g, g), "AddBackward0", "AddBackward0"),
    "sub": (lambda g, a, b: (g, -g), "SubBackward0", "RsubBackward1"),
    "mul": (lambda g, a, b: (g * b, g * a), "MulBackward0", "MulBackward0"),
    "truediv": (_div_grads, "DivBackward0", "MulBackward0"),
    "pow": (_pow_grads, "PowBackward0", "PowBackward2"),
    # a rounded quotient is piecewise constant: zero gradients (PyTorch's too)
    "div_trunc": (lambda g, a, b: (np.zeros_like(g),) * 2, "DivBackward2", "DivBackward2"),
    "div_floor": (lambda g, a, b: (np.zeros_like(g),) * 2, "DivBackward2", "DivBackward2"),
}


def _record_binary(out: Tensor, a: Any, b: Any, xa: Any, xb: Any, name: str) -> None:
    grads, node, reflected_node = _GRADS[name]
    a_is_t, b_is_t = isinstance(a, Tensor), isinstance(b, Tensor)
    node_name = node if a_is_t else reflected_node
    if name == "pow" and a_is_t and b_is_t:
        node_name = "PowBackward1"

    def backward(g: np.ndarray) -> tuple:
        ga, gb = grads(g, xa, xb)
        return (
            unbroadcast(np.asarray(ga), a._shape).astype(a.dtype._np, copy=False)
            if a_is_t and a.requires_grad
            else None,
            unbroadcast(np.asarray(gb), b._shape).astype(b.dtype._np, copy=False)
            if b_is_t and b.requires_grad
            else None,
        )

    record(out, node_name, [a if a_is_t else None, b if b_is_t else None], backward)


def _binary(
    a: Any,
    b: Any,
    op: Callable[[Any, Any], Any],
    name: str,
    true_divide: bool = False,
    compare: bool = False,
) -> Tensor:
    try:
        va, da, _ = _operand(a)
        vb, db, _ = _operand(b)
    except TypeError:
        return NotImplemented  # type: ignore[return-value]
    rd = _promote(da, va, db, vb)
    if true_divide and not rd.is_floating_point:
        rd = float32
    if rd is bfloat16:  # PyTorch casts both operands to bf16 first, then computes in fp32
        va, vb = _bf16.as_bf16(va, da), _bf16.as_bf16(vb, db)
    npd = rd._np
    xa = va.astype(npd, copy=False) if isinstance(va, np.ndarray) else va
    xb = vb.astype(npd, copy=False) if isinstance(vb, np.ndarray) else vb
    try:
        with np.errstate(all="ignore"):
            out = op(xa, xb)
    except ValueError:
        sa = list(np.shape(va))
        sb = list(np.shape(vb))
        raise RuntimeError(
            f"The size of tensor a ({sa}) must match the size of tensor b ({sb}) for {name}"
        ) from None
    out = np.asarray(out)
    if not compare and out.dtype != npd:
        out = out.astype(npd)
    result = wrap_array(out) if compare else _bf16.rounded(wrap_array(out), rd)
    if not compare and rd.is_floating_point and needs_grad(a, b):
        _record_binary(result, a, b, xa, xb, name)
    return result


def _def_binary(name: str, op: Callable[[Any, Any], Any], **kw: Any) -> None:
    def forward(self: Tensor, other: Any) -> Tensor:
        return _binary(self, other, op, name, **kw)

    def reflected(self: Tensor, other: Any) -> Tensor:
        return _binary(other, self, op, name, **kw)

    def inplace(self: Tensor, other: Any) -> Tensor:
        _check_inplace(self)
        result = _binary(self, other, op, name, **kw)
        if result is NotImplemented:
            return result
        if result_kind(result.dtype) > result_kind(self.dtype):
            raise RuntimeError(
                f"result type {result.dtype._short} can't be cast to the desired output type "
                f"{self.dtype._short}"
            )
        _bf16.assign(self, ..., np.broadcast_to(_bf16.values(result), self._shape))
        return self

    _methods[f"__{name}__"] = forward
    _methods[f"__r{name}__"] = reflected
    _methods[f"__i{name}__"] = inplace


_def_binary("add", np.add)
_def_binary("sub", np.subtract)
_def_binary("mul", np.multiply)
_def_binary("truediv", np.true_divide, true_divide=True)
_def_binary("pow", np.power)


def _comparison(name: str, op: Callable[[Any, Any], Any]) -> Callable[[Tensor, Any], Tensor]:
    def compare(self: Tensor, other: Any) -> Tensor:
        return _binary(self, other, op, name, compare=True)

    compare.__name__ = name
    return compare


for _name, _op in (
    ("eq", np.equal),
    ("ne", np.not_equal),
    ("lt", np.less),
    ("le", np.less_equal),
    ("gt", np.greater),
    ("ge", np.greater_equal),
):
    _methods[f"__{_name}__"] = _methods[_name] = _comparison(_name, _op)


def _scaled(other: Any, alpha: Any, self: Tensor) -> Any:
    """other * alpha for add/sub's alpha (recorded, so other's gradient is alpha times)."""
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Number):
        raise TypeError(f"alpha must be a number, not {type(alpha).__name__}")
    if alpha == 1 and not isinstance(alpha, float):
        return other
    other_kind = result_kind(other.dtype) if isinstance(other, Tensor) else 0
    kind = max(result_kind(self.dtype), other_kind)
    if isinstance(alpha, float) and kind < 2:
        raise RuntimeError(
            "For integral input tensors, argument alpha must not be a floating point number."
        )
    return other * alpha


def _other(name: str, other: Any) -> Any:
    """other, checked before alpha scales it: a TypeError in PyTorch's words for what is not a
    number or tensor (the operators return NotImplemented instead)."""
    try:
        _operand(other)
    except TypeError:
        raise TypeError(
            f"{name}(): argument 'other' must be Tensor or Number, not {type(other).__name__}"
        ) from None
    return other


@_method
def add(self: Tensor, other: Any, *, alpha: Any = 1) -> Tensor:
    """self + alpha * other."""
    return _binary(self, _scaled(_other("add", other), alpha, self), np.add, "add")


@_method
def sub(self: Tensor, other: Any, *, alpha: Any = 1) -> Tensor:
    """self - alpha * other."""
    return _binary(self, _scaled(_other("sub", other), alpha, self), np.subtract, "sub")


_methods["mul"] = _methods["__mul__"]


def _integer_divisor(a: Any, b: Any) -> bool:
    """True for an integer division (both operands integers); refuses a zero divisor there,
    as PyTorch does."""
    if any(np.asarray(v).dtype.kind == "f" for v in (a, b)):
        return False
    if np.any(np.asarray(b) == 0):
        raise RuntimeError("ZeroDivisionError")
    return True


def _trunc_divide(a: Any, b: Any) -> Any:
    if not _integer_divisor(a, b):
        return np.trunc(np.true_divide(a, b))
    q = np.abs(a) // np.abs(b)  # exact for any int64, unlike a / b
    return np.where((np.asarray(a) < 0) != (np.asarray(b) < 0), -q, q)


def _floor_divide(a: Any, b: Any) -> Any:
    _integer_divisor(a, b)
    return np.floor_divide(a, b)


@_method
def div(self: Tensor, other: Any, *, rounding_mode: str | None = None) -> Tensor:
    """self / other; rounding_mode 'trunc' or 'floor' rounds the quotient (its gradient is
    zero, as PyTorch's)."""
    if rounding_mode is None:
        return _binary(self, other, np.true_divide, "truediv", true_divide=True)
    if rounding_mode not in ("trunc", "floor"):
        raise RuntimeError(
            "div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
            f"'{rounding_mode}'"
        )
    op = _trunc_divide if rounding_mode == "trunc" else _floor_divide
    return _binary(self, other, op, "div_" + rounding_mode)


@_method
def __neg__(self: Tensor) -> Tensor:
    if self.dtype is bool_:
        raise TypeError(
            "Negation, the `-` operator, on a bool tensor is not supported. If you are trying "
            "to invert a mask, use the `~` or `logical_not()` operator instead."
        )
    out = _bf16.rounded(wrap_array(-_bf16.values(self)), self.dtype)
    if needs_grad(self):
        record(out, "NegBackward0", [self], lambda g: (-g,))
    return out


@_method
def __pos__(self: Tensor) -> Tensor:
    return self.clone()


@_method
def tensor_abs(self: Tensor) -> Tensor:
    """|x| elementwise (also abs(t))."""
    arr = _bf16.values(self)
    out = _bf16.rounded(wrap_array(np.abs(arr)), self.dtype)
    if needs_grad(self):
        record(out, "AbsBackward0", [self], lambda g: (g * np.sign(arr),))
    return out


_methods["__abs__"] = _methods["abs"]
