"""lincore.quantize_dynamic: PyTorch's torch.ao.quantization.quantize_dynamic for lincore models
(int8 weights per output channel, input quantized per row on each call). The arithmetic and its
accuracy: docs/quantization.md."""

from __future__ import annotations

import copy
import warnings
from typing import Any

from .nn.linear import Linear
from .nn.module import Module
from .nn.quantized import DynamicQuantizedLinear

__all__ = ["quantize_dynamic"]


def _check_dtype(dtype: Any) -> None:
    # torch.qint8 is accepted by its name, so that PyTorch code runs unchanged (torch is not
    # imported for it).
    name = str(dtype)
    if name in ("qint8", "int8", "torch.qint8"):
        return
    raise ValueError(
        f"quantize_dynamic: unsupported dtype {name}; lincore quantizes Linear layers to int8 "
        "(dtype='qint8' or torch.qint8)"
    )


def _selected(spec: Any, name: str, module: Module) -> bool:
    if spec is None:
        return type(module) is Linear
    for item in spec:
        if isinstance(item, str) and item == name:
            return isinstance(module, Linear)
        if isinstance(item, type) and type(module) is item and issubclass(item, Linear):
            return True
    return False


def quantize_dynamic(
    model: Module, qconfig_spec: Any = None, dtype: Any = "qint8", *, inplace: bool = False
) -> Module:
    """Returns the model with each selected lincore.nn.Linear replaced by a
    nn.DynamicQuantizedLinear (int8 weights, symmetric per output channel, packed once; the
    input quantized per row, symmetric, on every call; int32 sums; fp32 bias and output).

    qconfig_spec: None (every nn.Linear), or a set of layer classes (nn.Linear) and/or
    submodule names ("0", "encoder.fc") to quantize. dtype: 'qint8' (or torch.qint8).
    inplace: change model itself instead of a deep copy. A bare Linear gives a quantized
    Linear. A model with nothing to quantize comes back unchanged, with a UserWarning.

    Raises TypeError for a float64 Linear (int8 quantization takes float32 weights) and
    ValueError for a NaN or infinite weight or bias, a layer wider than
    lincore._core.QMAX_IN_FEATURES inputs, or an unsupported dtype; on error the model is left
    as it was.
    """
    _check_dtype(dtype)
    if not isinstance(model, Module):
        raise TypeError(
            f"quantize_dynamic: expected a lincore.nn.Module, got {type(model).__name__}"
        )
    if isinstance(model, Linear) and (qconfig_spec is None or _selected(qconfig_spec, "", model)):
        return _quantize(model, "")
    # Every layer is quantized before anything is replaced: an error leaves the model as it was.
    targets = [
        (name, module)
        for name, module in model.named_modules()
        if name and _selected(qconfig_spec, name, module)
    ]
    if not targets:
        warnings.warn(
            "quantize_dynamic: the model has no lincore.nn.Linear layer to quantize; it is "
            "returned unchanged",
            UserWarning,
            stacklevel=2,
        )
        return model if inplace else copy.deepcopy(model)
    quantized = {name: _quantize(module, name) for name, module in targets}
    out = model if inplace else copy.deepcopy(model)
    for name, q in quantized.items():
        parent_name, _, child = name.rpartition(".")
        parent = out
        for part in parent_name.split(".") if parent_name else []:
            parent = parent._modules[part]
        setattr(parent, child, q)
    return out


def _quantize(module: Linear, name: str) -> DynamicQuantizedLinear:
    where = f" (layer {name!r})" if name else ""
    try:
        return DynamicQuantizedLinear.from_float(module)
    except TypeError as e:
        raise TypeError(f"{e}{where}") from None
    except ValueError as e:
        raise ValueError(f"{e}{where}") from None
