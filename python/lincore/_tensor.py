"""The Python half of lincore.Tensor: properties, printing, indexing, arithmetic, reductions and
numpy interop, installed on the compiled class (lincore._core.Tensor).

Why installed rather than subclassed: tensors made in C++ (every kernel's output) are instances
of the compiled class, and wrapping each in a Python subclass would cost a second object per
result. Storage, views, copies and the kernels are C++; the elementwise maths and reductions
here run on zero-copy numpy views of the same memory and wrap their results without copying.
"""

from __future__ import annotations

import collections
import numbers
from typing import Any, Callable

import numpy as np

from . import _core
from ._creation import as_tensor, copy_array, parse_size, wrap_array
from ._dtype import BY_CODE, Size, bool_, dtype, float32, float64, int64, result_kind
from ._printing import format_tensor

Tensor = _core.Tensor

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
def dtype(self: Tensor) -> dtype:
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
        out = out.transpose(i, n - 1 - i)
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


# --- autograd flags (the graph itself comes with the training work) ------------------------------

def _get_requires_grad(self: Tensor) -> bool:
    return self.__dict__.get("_requires_grad", False)


def _set_requires_grad(self: Tensor, value: bool) -> None:
    if value and not self.dtype.is_floating_point:
        raise RuntimeError("only Tensors of floating point dtype can require gradients")
    self.__dict__["_requires_grad"] = bool(value)


_methods["requires_grad"] = property(_get_requires_grad, _set_requires_grad,
                                     doc="Whether gradients are recorded for this tensor.")
_methods["grad"] = None
_methods["grad_fn"] = None
_methods["is_leaf"] = True


@_method
def requires_grad_(self: Tensor, requires_grad: bool = True) -> Tensor:
    self.requires_grad = requires_grad
    return self


@_method
def detach(self: Tensor) -> Tensor:
    """A new tensor sharing this one's memory, outside any autograd graph."""
    return Tensor(self)


@_property
def data(self: Tensor) -> Tensor:
    return Tensor(self)


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
        raise RuntimeError(
            f"a Tensor with {self.numel()} elements cannot be converted to Scalar"
        )
    return np.asarray(memoryview(self)).reshape(()).item()


@_method
def tolist(self: Tensor) -> Any:
    return np.asarray(memoryview(self)).tolist()


@_method
def to(self: Tensor, dtype: dtype, copy: bool = False) -> Tensor:
    """The tensor converted to dtype (itself when it already has it, unless copy=True)."""
    if not isinstance(dtype, type(float32)):
        raise TypeError(f"to(): expected a lincore.dtype, got {type(dtype).__name__}")
    if dtype is self.dtype:
        return self.clone() if copy else self
    return self._to(dtype._code)


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
    return self._view(parse_size(shape, "view"))


@_method
def reshape(self: Tensor, *shape: Any) -> Tensor:
    """A view with another shape when possible, else a copy (one dim may be -1)."""
    return self._reshape(parse_size(shape, "reshape"))


@_method
def fill_(self: Tensor, value: Any) -> Tensor:
    with np.errstate(all="ignore"):
        np.asarray(memoryview(self))[...] = value
    return self


@_method
def zero_(self: Tensor) -> Tensor:
    return self.fill_(0)


@_method
def copy_(self: Tensor, src: Any) -> Tensor:
    """Copies src (broadcast to this shape, converted to this dtype) into this tensor."""
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
    _core._uniform_(self, float(a), float(b))
    return self


@_method
def normal_(self: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    _core._normal_(self, float(mean), float(std))
    return self


# --- printing ---------------------------------------------------------------------------------

@_method
def __repr__(self: Tensor) -> str:
    grad_fn = self.grad_fn
    return format_tensor(
        np.asarray(memoryview(self)),
        requires_grad=self.requires_grad,
        grad_fn=None if grad_fn is None else type(grad_fn).__name__,
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
    if any(not (k is None or k is Ellipsis or isinstance(k, slice) or
                (isinstance(k, numbers.Integral) and not isinstance(k, bool))) for k in key):
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
        key = key[:at] + (slice(None),) * (t.dim() - n_index) + key[at + 1:]
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
            out = out._slice(d, 0 if start is None else int(start),
                             big if stop is None else int(stop), step)
            d += 1
            source_dim += 1
        else:
            size = out._shape[d]
            if not -size <= k < size:
                raise IndexError(f"index {k} is out of bounds for dimension {source_dim} "
                                 f"with size {size}")
            out = out._select(d, int(k))
            source_dim += 1
    return out


@_method
def __getitem__(self: Tensor, key: Any) -> Tensor:
    view = _basic_view(self, key)
    if view is not None:
        return view
    # Advanced indexing (tensors, lists, booleans): a copy, as in PyTorch and numpy.
    arr = np.asarray(memoryview(self))
    try:
        return wrap_array(np.array(arr[_numpy_key(key)]))
    except IndexError as e:
        # numpy says "axis"; PyTorch says "dimension".
        raise IndexError(str(e).replace("for axis", "for dimension")) from None


def _numpy_key(key: Any) -> Any:
    if isinstance(key, tuple):
        return tuple(_numpy_key(k) for k in key)
    if isinstance(key, Tensor):
        return np.asarray(memoryview(key))
    return key


@_method
def __setitem__(self: Tensor, key: Any, value: Any) -> None:
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
        raise RuntimeError(
            f"Boolean value of Tensor with {'no values' if self.numel() == 0 else 'more than one value'} is ambiguous"
        )
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


def _binary(a: Any, b: Any, op: Callable[[Any, Any], Any], name: str,
            true_divide: bool = False, compare: bool = False) -> Tensor:
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
    return wrap_array(out)


def _def_binary(name: str, op: Callable[[Any, Any], Any], **kw: Any) -> None:
    def forward(self: Tensor, other: Any) -> Tensor:
        return _binary(self, other, op, name, **kw)

    def reflected(self: Tensor, other: Any) -> Tensor:
        return _binary(other, self, op, name, **kw)

    def inplace(self: Tensor, other: Any) -> Tensor:
        result = _binary(self, other, op, name, **kw)
        if result is NotImplemented:
            return result
        if result_kind(result.dtype) > result_kind(self.dtype):
            raise RuntimeError(
                f"result type {result.dtype._short} can't be cast to the desired output type "
                f"{self.dtype._short}"
            )
        np.asarray(memoryview(self))[...] = np.broadcast_to(np.asarray(memoryview(result)),
                                                            self._shape)
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


for _name, _op in (("eq", np.equal), ("ne", np.not_equal), ("lt", np.less),
                   ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal)):
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
    return wrap_array(-np.asarray(memoryview(self)))


@_method
def __pos__(self: Tensor) -> Tensor:
    return self.clone()


@_method
def tensor_abs(self: Tensor) -> Tensor:
    return wrap_array(np.abs(np.asarray(memoryview(self))))


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
        y = _core.linear(a2, b2.transpose(0, 1))
        shape = ([a._shape[0]] if a.dim() == 2 else []) + ([b._shape[1]] if b.dim() == 2 else [])
        return y._reshape(shape)
    xa, xb = np.asarray(memoryview(a)), np.asarray(memoryview(b))
    try:
        return wrap_array(np.matmul(xa, xb))
    except ValueError:
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({list(xa.shape)} and {list(xb.shape)})"
        ) from None


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
def tensor_sum(self: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: dtype | None = None
        ) -> Tensor:
    """Sum of all elements, or over dim (an int or a tuple). ints and bools sum to int64."""
    arr = np.asarray(memoryview(self))
    out_dtype = dtype or (self.dtype if self.dtype.is_floating_point else int64)
    out = np.sum(arr, axis=_dims(self, dim), keepdims=keepdim, dtype=out_dtype._np)
    return wrap_array(np.asarray(out))


@_method
def tensor_mean(self: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: dtype | None = None
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
    return wrap_array(np.asarray(out, dtype=d._np))


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
        raise IndexError(
            f"{name}(): Expected reduction dim {d} to have non-zero size."
        )
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


@_method
def argmax(self: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """Index of the largest element (in the flattened tensor when dim is None)."""
    if dim is None:
        if self.numel() == 0:
            raise RuntimeError(
                "argmax(): Expected reduction dim to be specified for input.numel() == 0."
            )
        arr = np.asarray(memoryview(self))
        idx = np.argmax(arr.reshape(-1))
        return wrap_array(np.asarray(idx, dtype=np.int64).reshape((1,) * arr.ndim if keepdim else ()))
    return _extreme(self, dim, keepdim, "argmax", np.max, np.argmax).indices


@_method
def argmin(self: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    if dim is None:
        if self.numel() == 0:
            raise RuntimeError(
                "argmin(): Expected reduction dim to be specified for input.numel() == 0."
            )
        arr = np.asarray(memoryview(self))
        idx = np.argmin(arr.reshape(-1))
        return wrap_array(np.asarray(idx, dtype=np.int64).reshape((1,) * arr.ndim if keepdim else ()))
    return _extreme(self, dim, keepdim, "argmin", np.min, np.argmin).indices


def install() -> None:
    """Attaches every method above to lincore._core.Tensor (once, at import)."""
    for name, value in _methods.items():
        setattr(Tensor, name, value)


__all__ = ["install", "matmul", "copy_array"]
