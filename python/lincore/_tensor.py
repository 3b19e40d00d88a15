"""The Python half of lincore.Tensor: properties, printing, indexing, arithmetic, reductions and
numpy interop, installed on the compiled class (lincore._core.Tensor).

Why installed rather than subclassed: tensors made in C++ (every kernel's output) are instances
of the compiled class, and wrapping each in a Python subclass would cost a second object per
result. Storage, views, copies and the kernels are C++; the elementwise maths and reductions
here run on zero-copy numpy views of the same memory and wrap their results without copying.
"""

from __future__ import annotations

import collections
import math
import numbers
from typing import Any, Callable

import numpy as np

from . import _core
from ._autograd import as_array, needs_grad, record, run_backward, unbroadcast
from ._creation import as_tensor, copy_array, parse_size, wrap_array
from ._dtype import BY_CODE, Size, bool_, dtype, float32, float64, int64, result_kind
from ._printing import format_tensor

Tensor = _core.Tensor

# The compiled view/copy methods, kept before the recording versions below replace them.
_cpp_clone = Tensor.clone
_cpp_contiguous = Tensor.contiguous
_cpp_transpose = Tensor.transpose
_cpp_flatten = Tensor.flatten

_methods: dict[str, Any] = {}


def _method(fn: Callable[..., Any]) -> Callable[..., Any]:
    # Functions named after builtins (sum, max, ...) are defined as tensor_<name> so that they
    # do not shadow the builtins in this module.
    _methods[fn.__name__.removeprefix("tensor_")] = fn
    return fn


def _property(fn: Callable[..., Any]) -> property:
    p = property(fn, doc=fn.__doc__)
    _methods[fn.__name__] = p
    return p


# --- basic properties -------------------------------------------------------------------------


@_property
def dtype(self: Tensor) -> dtype:  # noqa: F811 (the property; the annotation is the class)
    """The element type (lincore.float32, float64, int64 or bool)."""
    return BY_CODE[self._dtype_code]


@_property
def shape(self: Tensor) -> Size:
    """The size of each dimension, as a lincore.Size."""
    return Size(self._shape)


@_property
def ndim(self: Tensor) -> int:
    return self.dim()


@_property
def T(self: Tensor) -> Tensor:
    """The tensor with its dimensions reversed (a view)."""
    out = self
    n = self.dim()
    for i in range(n // 2):
        out = _cpp_transpose(out, i, n - 1 - i)
    if needs_grad(self):
        record(out, "PermuteBackward0", [self], lambda g: (g.transpose(),))
    return out


@_property
def device(self: Tensor) -> str:
    return "cpu"


@_method
def tensor_size(self: Tensor, dim: int | None = None) -> Any:
    """size() -> lincore.Size; size(dim) -> int."""
    return Size(self._shape) if dim is None else self._shape[_wrap_dim(self, dim)]


@_method
def tensor_stride(self: Tensor, dim: int | None = None) -> Any:
    return self._strides if dim is None else self._strides[_wrap_dim(self, dim)]


@_method
def storage_offset(self: Tensor) -> int:
    return self._storage_offset


@_method
def element_size(self: Tensor) -> int:
    return self.dtype.itemsize


@_method
def nelement(self: Tensor) -> int:
    return self.numel()


@_method
def is_floating_point(self: Tensor) -> bool:
    return self.dtype.is_floating_point


def _wrap_dim(t: Tensor, d: Any) -> int:
    if not isinstance(d, numbers.Integral) or isinstance(d, bool):
        raise TypeError(f"dim must be an int, not {type(d).__name__}")
    n = max(t.dim(), 1)
    if not -n <= d < n:
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {d})"
        )
    return int(d) % n


# --- autograd --------------------------------------------------------------------------------


def _get_requires_grad(self: Tensor) -> bool:
    return self.__dict__.get("_requires_grad", False)


def _set_requires_grad(self: Tensor, value: bool) -> None:
    if self.__dict__.get("grad_fn") is not None:
        if value:
            return  # already requires grad, as every recorded result does

        raise RuntimeError(
            "you can only change requires_grad flags of leaf variables. If you want to use a "
            "computed variable in a subgraph that doesn't require differentiation use "
            "var_no_grad = var.detach()."
        )
    if value and not self.dtype.is_floating_point:
        raise RuntimeError("only Tensors of floating point dtype can require gradients")
    self.__dict__["_requires_grad"] = bool(value)


def _get_grad(self: Tensor) -> Any:
    return self.__dict__.get("_grad")


def _set_grad(self: Tensor, value: Any) -> None:
    if value is not None:
        if not isinstance(value, Tensor):
            raise TypeError(
                f"assigned grad expected to be a Tensor or None but got grad of "
                f"type {type(value).__name__}"
            )
        if tuple(value._shape) != tuple(self._shape):
            raise RuntimeError("assigned grad has data of a different size")
        if value.dtype is not self.dtype:
            raise RuntimeError("assigned grad has data of a different type")
    self.__dict__["_grad"] = value


_methods["requires_grad"] = property(
    _get_requires_grad, _set_requires_grad, doc="Whether gradients are recorded for this tensor."
)
_methods["grad"] = property(
    _get_grad, _set_grad, doc="The gradient accumulated by backward(), or None."
)
_methods["grad_fn"] = None  # set per instance by the op that made the tensor


@_property
def is_leaf(self: Tensor) -> bool:
    """True for tensors not made by a recorded op (parameters, inputs)."""
    return self.__dict__.get("grad_fn") is None


@_method
def requires_grad_(self: Tensor, requires_grad: bool = True) -> Tensor:
    self.requires_grad = requires_grad
    return self


@_method
def backward(
    self: Tensor, gradient: Any = None, retain_graph: bool | None = None, create_graph: bool = False
) -> None:
    """Accumulates the gradient of this tensor with respect to every leaf into leaf.grad."""
    if create_graph:
        raise NotImplementedError("create_graph=True (higher-order gradients) is not supported")
    run_backward(self, gradient, retain_graph)


@_method
def detach(self: Tensor) -> Tensor:
    """A new tensor sharing this one's memory, outside any autograd graph."""
    return Tensor(self)


@_property
def data(self: Tensor) -> Tensor:
    return Tensor(self)


def _check_inplace(t: Tensor) -> None:
    """In-place writes to a tensor that requires grad are refused while grad mode records (as in
    PyTorch for leaves; lincore's autograd does not version saved tensors, so for all)."""
    if needs_grad(t):
        raise RuntimeError(
            "a leaf Variable that requires grad is being used in an in-place operation."
            if t.is_leaf
            else "in-place operations on tensors that require grad are not supported by lincore's "
            "autograd; use the out-of-place form (x = x + y)"
        )


# --- conversion -------------------------------------------------------------------------------


@_method
def numpy(self: Tensor, *, force: bool = False) -> np.ndarray:
    """A numpy array sharing this tensor's memory."""
    if self.requires_grad and not force:
        raise RuntimeError(
            "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead."
        )
    return np.asarray(memoryview(self))


@_method
def __array__(self: Tensor, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
    arr = np.asarray(memoryview(self))
    if dtype is not None and np.dtype(dtype) != arr.dtype:
        if copy is False:
            raise ValueError(f"converting a {self.dtype} tensor to {np.dtype(dtype)} needs a copy")
        return arr.astype(dtype)
    return arr.copy() if copy else arr


_methods["__array_ufunc__"] = None  # numpy defers to our reflected operators (np.float32(2) * t)


@_method
def item(self: Tensor) -> Any:
    """The single value of a one-element tensor, as a Python number."""
    if self.numel() != 1:
        raise RuntimeError(f"a Tensor with {self.numel()} elements cannot be converted to Scalar")
    return np.asarray(memoryview(self)).reshape(()).item()


@_method
def tolist(self: Tensor) -> Any:
    return np.asarray(memoryview(self)).tolist()


@_method
def to(self: Tensor, dtype: dtype, copy: bool = False) -> Tensor:
    """The tensor converted to dtype (itself when it already has it, unless copy=True)."""
    if not isinstance(dtype, type(float32)):
        raise TypeError(f"to(): expected a lincore.dtype, got {type(dtype).__name__}")
    if dtype is self.dtype and not copy:
        return self
    out = _cpp_clone(self) if dtype is self.dtype else self._to(dtype._code)
    if needs_grad(self):
        source = self.dtype._np
        record(out, "ToCopyBackward0", [self], lambda g: (g.astype(source),))
    return out


def _converter(name: str, target: dtype) -> Callable[[Tensor], Tensor]:
    def convert(self: Tensor) -> Tensor:
        return self.to(target)

    convert.__name__ = name
    convert.__doc__ = f"self.to(lincore.{target.name})"
    return convert


for _name, _d in (("float", float32), ("double", float64), ("long", int64), ("bool", bool_)):
    _methods[_name] = _converter(_name, _d)


@_method
def view(self: Tensor, *shape: Any) -> Tensor:
    """A view with another shape (one dim may be -1); fails when the strides do not allow it."""
    return _reshaped(self, self._view(parse_size(shape, "view")), "ViewBackward0")


@_method
def reshape(self: Tensor, *shape: Any) -> Tensor:
    """A view with another shape when possible, else a copy (one dim may be -1)."""
    out = self._reshape(parse_size(shape, "reshape"))
    shared = out._shares_storage(self) or self.numel() == 0
    return _reshaped(self, out, "ViewBackward0" if shared else "UnsafeViewBackward0")


def _reshaped(source: Tensor, out: Tensor, name: str) -> Tensor:
    if needs_grad(source):
        shape = tuple(source._shape)
        record(out, name, [source], lambda g: (g.reshape(shape),))
    return out


@_method
def flatten(self: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """The dims start_dim..end_dim merged into one (a view when the strides allow it)."""
    out = _cpp_flatten(self, start_dim, end_dim)
    shared = out._shares_storage(self) or self.numel() == 0
    return _reshaped(self, out, "ViewBackward0" if shared else "UnsafeViewBackward0")


@_method
def transpose(self: Tensor, dim0: int, dim1: int) -> Tensor:
    """A view with dims dim0 and dim1 swapped."""
    out = _cpp_transpose(self, dim0, dim1)
    if needs_grad(self) and self.dim() > 0:
        d0, d1 = _wrap_dim(self, dim0), _wrap_dim(self, dim1)
        record(out, "TransposeBackward0", [self], lambda g: (g.swapaxes(d0, d1),))
    return out


@_method
def clone(self: Tensor) -> Tensor:
    """A copy in new memory."""
    out = _cpp_clone(self)
    if needs_grad(self):
        record(out, "CloneBackward0", [self], lambda g: (g,))
    return out


@_method
def contiguous(self: Tensor) -> Tensor:
    """Itself when contiguous, else a contiguous copy."""
    return self if self.is_contiguous() else self.clone()


@_method
def fill_(self: Tensor, value: Any) -> Tensor:
    _check_inplace(self)
    with np.errstate(all="ignore"):
        np.asarray(memoryview(self))[...] = value
    return self


@_method
def zero_(self: Tensor) -> Tensor:
    return self.fill_(0)


@_method
def copy_(self: Tensor, src: Any) -> Tensor:
    """Copies src (broadcast to this shape, converted to this dtype) into this tensor."""
    _check_inplace(self)
    src_arr = np.asarray(as_tensor(src) if not isinstance(src, np.ndarray) else src)
    dst = np.asarray(memoryview(self))
    try:
        src_arr = np.broadcast_to(src_arr, dst.shape)
    except ValueError:
        raise RuntimeError(
            f"The size of tensor a ({list(dst.shape)}) must match the size of tensor b "
            f"({list(src_arr.shape)})"
        ) from None
    with np.errstate(all="ignore"):
        dst[...] = src_arr
    return self


@_method
def uniform_(self: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    _check_inplace(self)
    _core._uniform_(self, float(a), float(b))
    return self


@_method
def normal_(self: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    _check_inplace(self)
    _core._normal_(self, float(mean), float(std))
    return self


# --- printing ---------------------------------------------------------------------------------


@_method
def __repr__(self: Tensor) -> str:
    grad_fn = self.grad_fn
    # PyTorch's rule: a subclass prints its class name in place of "tensor", except the classes
    # that declare themselves plain tensors in their own body (nn.Parameter; not its subclasses).
    cls = type(self)
    plain = cls is Tensor or cls.__dict__.get("_prints_as_tensor", False)
    return format_tensor(
        np.asarray(memoryview(self)),
        requires_grad=self.requires_grad,
        grad_fn=None if grad_fn is None else type(grad_fn).__name__,
        name="tensor" if plain else cls.__name__,
    )


@_method
def __format__(self: Tensor, spec: str) -> str:
    if self.dim() == 0:
        return self.item().__format__(spec)
    return object.__format__(self, spec) if spec else repr(self)


# --- indexing ---------------------------------------------------------------------------------


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
    arr = np.asarray(memoryview(self))
    nkey = _numpy_key(key)
    try:
        out = wrap_array(np.array(arr[nkey]))
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
        return np.asarray(memoryview(key))
    return key


@_method
def __setitem__(self: Tensor, key: Any, value: Any) -> None:
    _check_inplace(self)
    if not self._writable:
        raise ValueError("cannot assign to a tensor that borrows a read-only buffer")
    target = np.asarray(memoryview(self))
    src = np.asarray(memoryview(value)) if isinstance(value, Tensor) else value
    with np.errstate(all="ignore"):
        target[_numpy_key(key)] = src


@_method
def __len__(self: Tensor) -> int:
    if self.dim() == 0:
        raise TypeError("len() of a 0-d tensor")
    return self._shape[0]


@_method
def __iter__(self: Tensor) -> Any:
    if self.dim() == 0:
        raise TypeError("iteration over a 0-d tensor")
    return (self._select(0, i) for i in range(self._shape[0]))


@_method
def __bool__(self: Tensor) -> bool:
    if self.numel() != 1:
        what = "no values" if self.numel() == 0 else "more than one value"
        raise RuntimeError(f"Boolean value of Tensor with {what} is ambiguous")
    return bool(self.item())


@_method
def __float__(self: Tensor) -> float:
    return float(self.item())


@_method
def __int__(self: Tensor) -> int:
    return int(self.item())


@_method
def __index__(self: Tensor) -> int:
    if self.dtype.is_floating_point or self.numel() != 1:
        raise TypeError("only integer tensors of a single element can be converted to an index")
    return int(self.item())


_methods["__hash__"] = object.__hash__


# --- arithmetic (PyTorch's type promotion, numpy's broadcasting) ---------------------------------


def _operand(x: Any) -> tuple[Any, dtype | None, bool]:
    """(numpy value, lincore dtype or None for a Python scalar, is_tensor)."""
    if isinstance(x, Tensor):
        return np.asarray(memoryview(x)), x.dtype, True
    if isinstance(x, (bool, np.bool_)):
        return bool(x), None, False
    if isinstance(x, numbers.Integral):
        return int(x), None, False
    if isinstance(x, numbers.Real):
        return float(x), None, False
    if isinstance(x, np.ndarray):
        t = as_tensor(x)
        return np.asarray(memoryview(t)), t.dtype, True
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
    result = wrap_array(out)
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
        np.asarray(memoryview(self))[...] = np.broadcast_to(
            np.asarray(memoryview(result)), self._shape
        )
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

_methods["add"] = _methods["__add__"]
_methods["sub"] = _methods["__sub__"]
_methods["mul"] = _methods["__mul__"]
_methods["div"] = _methods["__truediv__"]


@_method
def __neg__(self: Tensor) -> Tensor:
    if self.dtype is bool_:
        raise TypeError(
            "Negation, the `-` operator, on a bool tensor is not supported. If you are trying "
            "to invert a mask, use the `~` or `logical_not()` operator instead."
        )
    out = wrap_array(-np.asarray(memoryview(self)))
    if needs_grad(self):
        record(out, "NegBackward0", [self], lambda g: (-g,))
    return out


@_method
def __pos__(self: Tensor) -> Tensor:
    return self.clone()


@_method
def tensor_abs(self: Tensor) -> Tensor:
    """|x| elementwise (also abs(t))."""
    arr = np.asarray(memoryview(self))
    out = wrap_array(np.abs(arr))
    if needs_grad(self):
        record(out, "AbsBackward0", [self], lambda g: (g * np.sign(arr),))
    return out


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
        xa, xb = np.asarray(memoryview(a)), np.asarray(memoryview(b))
        try:
            out = wrap_array(np.matmul(xa, xb))
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


# --- reductions -------------------------------------------------------------------------------


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
    arr = np.asarray(memoryview(self))
    out_dtype = dtype or (self.dtype if self.dtype.is_floating_point else int64)
    axes = _dims(self, dim)
    out = wrap_array(np.asarray(np.sum(arr, axis=axes, keepdims=keepdim, dtype=out_dtype._np)))
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
    arr = np.asarray(memoryview(self)).astype(d._np, copy=False)
    axes = _dims(self, dim)
    count = arr.size if axes is None else int(np.prod([arr.shape[a] for a in axes]))
    with np.errstate(all="ignore"):
        out = np.sum(arr, axis=axes, keepdims=keepdim, dtype=d._np) / d._np.type(count)
    result = wrap_array(np.asarray(out, dtype=d._np))
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
    arr = np.asarray(memoryview(self))
    if dim is None:
        if arr.size == 0:
            raise RuntimeError(
                f"{name}(): Expected reduction dim to be specified for input.numel() == 0. "
                "Specify the reduction dim with the 'dim' argument."
            )
        return wrap_array(np.asarray(pick(arr)))
    d = _wrap_dim(self, dim)
    if self.dim() == 0:
        return _MinMax(self.clone(), wrap_array(np.asarray(0, dtype=np.int64)))
    if arr.shape[d] == 0:
        raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size.")
    idx = arg(arr, axis=d, keepdims=keepdim)
    vals = pick(arr, axis=d, keepdims=keepdim)
    return _MinMax(wrap_array(np.asarray(vals)), wrap_array(np.asarray(idx, dtype=np.int64)))


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
        arr = np.asarray(memoryview(self))
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


_methods["__abs__"] = _methods["abs"]


def install() -> None:
    """Attaches every method above to lincore._core.Tensor (once, at import)."""
    for name, value in _methods.items():
        setattr(Tensor, name, value)


__all__ = ["install", "matmul", "copy_array"]
