"""lincore's dtypes (float32, float64, int64, bool) and lincore.Size, with PyTorch's reprs."""

from __future__ import annotations

from typing import Any

import numpy as np


class dtype:
    """An element type, printed like PyTorch's (``lincore.float32``)."""

    __slots__ = ("name", "itemsize", "is_floating_point", "is_signed", "_code", "_np", "_short")

    def __init__(self, name: str, code: int, np_type: Any, short: str) -> None:
        self.name = name
        self._code = code
        self._np = np.dtype(np_type)
        self._short = short
        self.itemsize = self._np.itemsize
        self.is_floating_point = self._np.kind == "f"
        self.is_signed = self._np.kind in "fi"

    def __repr__(self) -> str:
        return f"lincore.{self.name}"

    def __reduce__(self) -> str:
        return self.name


# The codes are csrc/tensor/dtype.h's DType values.
float32 = dtype("float32", 0, np.float32, "Float")
float64 = dtype("float64", 1, np.float64, "Double")
int64 = dtype("int64", 2, np.int64, "Long")
bool_ = dtype("bool", 3, np.bool_, "Bool")

BY_CODE = (float32, float64, int64, bool_)
_BY_NUMPY = {d._np: d for d in BY_CODE}


def from_numpy_dtype(np_dtype: Any) -> dtype | None:
    """The lincore dtype for a numpy dtype (any byte order), or None if there is none."""
    return _BY_NUMPY.get(np.dtype(np_dtype).newbyteorder("="))


def result_kind(d: dtype) -> int:
    """0 for bool, 1 for integers, 2 for floating point: PyTorch's promotion categories."""
    return 2 if d.is_floating_point else (0 if d is bool_ else 1)


class Size(tuple):
    """The shape of a tensor: a tuple of ints printed as ``lincore.Size([2, 3])``."""

    def __repr__(self) -> str:
        return f"lincore.Size({list(self)})"

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n

    def __getitem__(self, key):  # type: ignore[override]
        out = tuple.__getitem__(self, key)
        return Size(out) if isinstance(key, slice) else out

    def __add__(self, other):  # type: ignore[override]
        return Size(tuple(self) + tuple(other))

    def __reduce__(self):
        return (Size, (tuple(self),))
