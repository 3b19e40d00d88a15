"""lincore's dtypes (float32, float64, int64, bool, bfloat16) and lincore.Size, with
PyTorch's reprs."""

from __future__ import annotations

from typing import Any

import numpy as np


class dtype:
    """An element type, printed like PyTorch's (``lincore.float32``)."""

    __slots__ = ("name", "itemsize", "is_floating_point", "is_signed", "_code", "_np", "_short")

    def __init__(self, name: str, code: int, np_type: Any, short: str, itemsize: int = 0) -> None:
        self.name = name
        self._code = code
        # The numpy dtype lincore computes this dtype's values in: its own, except for bfloat16,
        # which numpy lacks; its values are computed in float32 and rounded back (_bf16.py).
        self._np = np.dtype(np_type)
        self._short = short
        self.itemsize = itemsize or self._np.itemsize
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
# The top 16 bits of a float32 (csrc/tensor/bfloat16.h); 2 bytes per element.
bfloat16 = dtype("bfloat16", 4, np.float32, "BFloat16", itemsize=2)

BY_CODE = (float32, float64, int64, bool_, bfloat16)
# numpy has no bfloat16 of its own (ml_dtypes' is recognised by _bf16.is_ml_bfloat16).
_BY_NUMPY = {d._np: d for d in BY_CODE if d is not bfloat16}


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
