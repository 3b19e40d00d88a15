# Tensor printing: a numpy port of PyTorch's torch/_tensor_str.py (torch 2.x, dense CPU tensors) so
# that a lincore tensor's repr reads exactly like PyTorch's, with `lincore.` where it says `torch.`.
# Also owns the print options (set_printoptions / get_printoptions), kept in module state.
# Imports only numpy and the standard library, so it works before the compiled core is built.

from __future__ import annotations

import math
from typing import Any

import numpy as np


_PROFILES = {
    "default": {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80},
    "short": {"precision": 2, "threshold": 1000, "edgeitems": 2, "linewidth": 80},
    "full": {"precision": 4, "threshold": math.inf, "edgeitems": 3, "linewidth": 80},
}

# sci_mode None lets each tensor's values decide.
_print_opts: dict[str, Any] = {**_PROFILES["default"], "sci_mode": None}

# Keyed by (kind, itemsize) rather than by dtype so that byte-swapped arrays are accepted too.
_DTYPE_NAMES = {("f", 4): "float32", ("f", 8): "float64", ("i", 8): "int64", ("b", 1): "bool"}

# torch omits the dtype suffix for these: float32 is the default dtype, and int64 and bool are
# what a nested list of ints or bools becomes.
_DEFAULT_DTYPES = ("float32", "int64", "bool")


def set_printoptions(
    precision: int | None = None,
    threshold: float | None = None,
    edgeitems: int | None = None,
    linewidth: int | None = None,
    profile: str | None = None,
    sci_mode: bool | None = None,
) -> None:
    """Set options for printing, with torch.set_printoptions' semantics.

    A profile ("default", "short" or "full") is applied first, then any explicit option overrides
    it; an unknown profile is ignored, as torch does. sci_mode is always set, so leaving it out
    returns it to None (chosen per tensor).
    """
    if profile in _PROFILES:
        _print_opts.update(_PROFILES[profile])
    if precision is not None:
        _print_opts["precision"] = precision
    if threshold is not None:
        _print_opts["threshold"] = threshold
    if edgeitems is not None:
        _print_opts["edgeitems"] = edgeitems
    if linewidth is not None:
        _print_opts["linewidth"] = linewidth
    _print_opts["sci_mode"] = sci_mode


def get_printoptions() -> dict[str, Any]:
    """The current print options, as keyword arguments that set_printoptions accepts."""
    return dict(_print_opts)


def _dtype_name(dtype: np.dtype) -> str:
    name = _DTYPE_NAMES.get((dtype.kind, dtype.itemsize))
    if name is None:
        raise TypeError(
            f"format_tensor expects float32, float64, int64 or bool values, but got {dtype}"
        )
    return name


class _Formatter:
    """One format shared by every element, so that the columns line up: the common width, and
    whether floats print as integers with a trailing '.' (int_mode) or in scientific notation."""

    def __init__(self, values: np.ndarray) -> None:
        self.floating_dtype = values.dtype.kind == "f"
        self.int_mode = True
        self.sci_mode = False
        self.max_width = 1
        flat = values.reshape(-1)
        precision = _print_opts["precision"]

        if not self.floating_dtype:
            for value in flat.tolist():
                self.max_width = max(self.max_width, len(f"{value}"))
            return

        # As in torch, only nonzero finite values choose the mode and the width; zeros, nan and
        # inf are fitted to what those choose.
        nonzero_finite = flat[np.isfinite(flat) & (flat != 0)]
        if nonzero_finite.size == 0:
            return

        # torch takes the abs in the tensor's dtype, then the min and max in double.
        nonzero_finite_abs = np.abs(nonzero_finite).astype(np.float64)
        nonzero_finite_min = float(nonzero_finite_abs.min())
        nonzero_finite_max = float(nonzero_finite_abs.max())

        self.int_mode = bool(np.all(nonzero_finite == np.ceil(nonzero_finite)))

        if _print_opts["sci_mode"] is None:
            self.sci_mode = (
                nonzero_finite_max / nonzero_finite_min > 1000.0
                or nonzero_finite_max > 1.0e8
                or nonzero_finite_min < 1.0e-4
            )
        else:
            self.sci_mode = _print_opts["sci_mode"]

        # tolist() gives Python floats (doubles), which is what torch formats through item().
        for value in nonzero_finite.tolist():
            if self.sci_mode:
                width = len(f"{value:.{precision}e}")
            elif self.int_mode:
                # The +1 makes room for the '.' that marks a float printed as an integer.
                width = len(f"{value:.0f}") + 1
            else:
                width = len(f"{value:.{precision}f}")
            self.max_width = max(self.max_width, width)

    def width(self) -> int:
        return self.max_width

    def format(self, value: float | int | bool) -> str:
        precision = _print_opts["precision"]
        if not self.floating_dtype:
            text = f"{value}"
        elif self.sci_mode:
            text = f"{value:{self.max_width}.{precision}e}"
        elif self.int_mode:
            text = f"{value:.0f}"
            if not (math.isinf(value) or math.isnan(value)):
                text += "."
        else:
            text = f"{value:.{precision}f}"
        return (self.max_width - len(text)) * " " + text


def _vector_str(values: np.ndarray, indent: int, summarize: bool, formatter: _Formatter) -> str:
    edgeitems = _print_opts["edgeitems"]
    # Each element takes its width plus ", ".
    element_length = formatter.width() + 2
    elements_per_line = max(1, math.floor((_print_opts["linewidth"] - indent) / element_length))

    if summarize and not edgeitems:
        data = ["..."]
    elif summarize and values.shape[0] > 2 * edgeitems:
        data = (
            [formatter.format(value) for value in values[:edgeitems].tolist()]
            + [" ..."]
            + [formatter.format(value) for value in values[-edgeitems:].tolist()]
        )
    else:
        data = [formatter.format(value) for value in values.tolist()]

    lines = [
        ", ".join(data[i : i + elements_per_line]) for i in range(0, len(data), elements_per_line)
    ]
    return "[" + ("," + "\n" + " " * (indent + 1)).join(lines) + "]"


def _tensor_str_with_formatter(
    values: np.ndarray, indent: int, summarize: bool, formatter: _Formatter
) -> str:
    ndim = values.ndim
    if ndim == 0:
        return formatter.format(values.item())
    if ndim == 1:
        return _vector_str(values, indent, summarize, formatter)

    edgeitems = _print_opts["edgeitems"]
    count = values.shape[0]
    if summarize and count > 2 * edgeitems:
        slices = (
            [
                _tensor_str_with_formatter(values[i], indent + 1, summarize, formatter)
                for i in range(edgeitems)
            ]
            + ["..."]
            + [
                _tensor_str_with_formatter(values[i], indent + 1, summarize, formatter)
                for i in range(count - edgeitems, count)
            ]
        )
    else:
        slices = [
            _tensor_str_with_formatter(values[i], indent + 1, summarize, formatter)
            for i in range(count)
        ]

    # Sub-tensors of higher rank are set apart by more blank lines, one fewer per level down.
    separator = "," + "\n" * (ndim - 1) + " " * (indent + 1)
    return "[" + separator.join(slices) + "]"


def _summarized_data(values: np.ndarray) -> np.ndarray:
    """The elements a summarised print shows, so that only they choose the format."""
    edgeitems = _print_opts["edgeitems"]
    if values.ndim == 0:
        return values
    if values.ndim == 1:
        # With edgeitems 0, values[-0:] is the whole vector; torch keeps it, and so do we.
        if values.shape[0] > 2 * edgeitems:
            return np.concatenate((values[:edgeitems], values[-edgeitems:]))
        return values
    if not edgeitems:
        return np.empty([0] * values.ndim, dtype=values.dtype)
    count = values.shape[0]
    if count > 2 * edgeitems:
        rows = list(range(edgeitems)) + list(range(count - edgeitems, count))
    else:
        rows = list(range(count))
    return np.stack([_summarized_data(values[i]) for i in rows])


def _tensor_str(values: np.ndarray, indent: int) -> str:
    summarize = values.size > _print_opts["threshold"]
    formatter = _Formatter(_summarized_data(values) if summarize else values)
    return _tensor_str_with_formatter(values, indent, summarize, formatter)


def _add_suffixes(tensor_str: str, suffixes: list[str], indent: int) -> str:
    parts = [tensor_str]
    # torch counts two more than the last line's length; kept, as it decides where suffixes wrap.
    last_line_len = len(tensor_str) - tensor_str.rfind("\n") + 1
    for suffix in suffixes:
        # Measured as torch spells it ("torch.float64", two characters shorter), so that the
        # output stays exactly torch's repr with the prefix swapped, line breaks included.
        suffix_len = len(suffix.replace("lincore.", "torch."))
        if last_line_len + suffix_len + 2 > _print_opts["linewidth"]:
            parts.append(",\n" + " " * indent + suffix)
            last_line_len = indent + suffix_len
        else:
            parts.append(", " + suffix)
            last_line_len += suffix_len + 2
    parts.append(")")
    return "".join(parts)


def format_tensor(
    values: np.ndarray,
    *,
    requires_grad: bool = False,
    grad_fn: str | None = None,
    name: str = "tensor",
    dtype_name: str | None = None,
) -> str:
    """What repr(torch.tensor(values)) prints, with `lincore.` for `torch.`.

    values: float32, float64, int64 or bool, any shape and strides. grad_fn, the name of the node
    that made the tensor (e.g. "AddmmBackward0"), replaces the requires_grad=True suffix. name
    stands before the parenthesis: PyTorch prints a Tensor subclass's class name there.
    dtype_name names the tensor's dtype when values are not in it (a bfloat16 tensor's values
    come as float32; PyTorch formats each element as a double either way).
    """
    values = np.asarray(values)
    dtype_name = dtype_name or _dtype_name(values.dtype)
    prefix = name + "("
    indent = len(prefix)
    suffixes = []

    if values.size == 0:
        # Like numpy, the shape is shown unless it is (0,); and with no elements to infer it
        # from, every dtype but the default float32 is shown.
        if values.ndim != 1:
            suffixes.append("size=" + str(tuple(values.shape)))
        if dtype_name != "float32":
            suffixes.append("dtype=lincore." + dtype_name)
        tensor_str = "[]"
    else:
        # With edgeitems 0 a summary shows no elements at all, so the shape is the only clue.
        if not _print_opts["edgeitems"]:
            suffixes.append("size=" + str(tuple(values.shape)))
        if dtype_name not in _DEFAULT_DTYPES:
            suffixes.append("dtype=lincore." + dtype_name)
        tensor_str = _tensor_str(values, indent)

    if grad_fn is not None:
        suffixes.append(f"grad_fn=<{grad_fn}>")
    elif requires_grad:
        suffixes.append("requires_grad=True")

    return _add_suffixes(prefix + tensor_str, suffixes, indent)
