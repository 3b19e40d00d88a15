"""Moving to and from PyTorch and other array libraries: lincore.from_torch (torch.nn modules and
state dicts, copied), Module.to_torch (back, copied; installed on nn.Module at import), and DLPack
(tensors, zero-copy both ways: Tensor.__dlpack__ / __dlpack_device__, installed on the compiled
class at import, and lincore.from_dlpack).

torch is imported inside the functions that need it, never by `import lincore`. DLPack goes
through numpy, which implements the protocol: a numpy view of a tensor keeps the tensor's memory
alive for as long as the consumer holds the capsule, and lincore.from_numpy keeps the producer's
capsule alive for as long as the lincore tensor lives.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from typing import Any, Callable, Mapping

import numpy as np

from . import _core
from ._creation import borrowable, copy_array
from ._dtype import bfloat16, from_numpy_dtype
from .nn.activation import GELU, LeakyReLU, ReLU, Sigmoid, Tanh
from .nn.container import Sequential
from .nn.dropout import Dropout
from .nn.flatten import Flatten
from .nn.linear import Identity, Linear
from .nn.module import Module
from .nn.normalization import LayerNorm
from .nn.parameter import Parameter
from .nn.quantized import DynamicQuantizedLinear
from .nn.softmax import LogSoftmax, Softmax

Tensor = _core.Tensor

_SUPPORTED = (
    "Linear, ReLU, LeakyReLU, Sigmoid, Tanh, GELU, Softmax, LogSoftmax, LayerNorm, Dropout, "
    "Identity, Flatten, Sequential and torch.ao.nn.quantized.dynamic.Linear (qint8)"
)


def _where(path: str) -> str:
    return f"at '{path}'" if path else "at the top level"


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


# --- from PyTorch -------------------------------------------------------------------------------


def from_torch(obj: Any) -> Any:
    """A lincore copy of a torch.nn.Linear, a torch.nn.Sequential of supported layers (Linear,
    ReLU, LeakyReLU, Sigmoid, Tanh, GELU, Softmax, LogSoftmax, LayerNorm, Dropout, Identity,
    Flatten, nested Sequential), or a state dict
    (a Mapping of str to torch.Tensor, giving an OrderedDict of lincore tensors).

    Weights are copied and keep their dtype (float32, float64 or bfloat16), requires_grad and the
    train/eval mode. An unsupported layer raises TypeError naming it and its position. Tensors
    are not converted here: lincore.from_dlpack(t) shares a torch tensor's memory, and
    lincore.tensor(t.numpy()) copies it.
    """
    import torch

    if isinstance(obj, torch.nn.Module):
        return _module_from_torch(torch, obj, "", {}, _parameter_from_torch)
    if isinstance(obj, torch.Tensor):
        raise TypeError(
            "from_torch converts torch.nn modules and state dicts; for a tensor use "
            "lincore.from_dlpack(t) (shares memory) or lincore.tensor(t.numpy()) "
            "(a copy)"
        )
    if isinstance(obj, Mapping):
        out: OrderedDict[str, Tensor] = OrderedDict()
        for key, value in obj.items():
            if not isinstance(value, torch.Tensor):
                raise TypeError(
                    f"from_torch: the state dict value for {key!r} must be a "
                    f"torch.Tensor, got {type(value).__name__}"
                )
            out[key] = _tensor_from_torch(torch, value, f"state dict entry {key!r}")
        return out
    raise TypeError(
        f"from_torch: expected a torch.nn.Module or a state dict (a Mapping of str "
        f"to torch.Tensor), got {type(obj).__name__}"
    )


def _tensor_from_torch(torch: Any, t: Any, what: str) -> Tensor:
    if t.dtype not in (torch.float32, torch.float64, torch.int64, torch.bool, torch.bfloat16):
        raise TypeError(
            f"from_torch: {what} has dtype {t.dtype}; lincore supports "
            "torch.float32, torch.float64, torch.int64, torch.bool and torch.bfloat16"
        )
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: the bits, through int16
        bits = t.detach().cpu().contiguous().view(torch.int16).numpy().view(np.uint16)
        return _core._from_buffer(bits, bfloat16._code).clone()
    return copy_array(t.detach().cpu().numpy())


def _module_from_torch(
    torch: Any, m: Any, path: str, memo: dict[int, Module], param: Callable[..., Parameter]
) -> Module:
    """The lincore module for torch module m; param(torch, p, what) makes each parameter (a copy
    for from_torch, a view of p's memory for lincore.optimize)."""
    # A module that appears twice (weight sharing) stays one module.
    if id(m) in memo:
        return memo[id(m)]
    tnn = torch.nn
    kind = type(m)  # exact types: a subclass may override forward
    out: Module
    if kind is tnn.Linear:
        if m.weight.dtype not in (torch.float32, torch.float64, torch.bfloat16):
            raise TypeError(
                f"from_torch: Linear {_where(path)} has dtype {m.weight.dtype}; "
                "lincore's Linear supports torch.float32, torch.float64 and torch.bfloat16"
            )
        weight = param(torch, m.weight, f"Linear {_where(path)}")
        bias = None if m.bias is None else param(torch, m.bias, f"Linear {_where(path)}")
        out = _linear(weight, bias)
    elif _is_torch_dynamic_qlinear(torch, kind):
        out = _qlinear_from_torch(torch, m, path)
    elif kind is tnn.Sequential or kind.__dict__.get("_lincore_swapped", False):
        children = OrderedDict()
        for name, child in m._modules.items():
            if child is None:
                raise TypeError(f"from_torch: Sequential {_where(path)} holds None as '{name}'")
            children[name] = _module_from_torch(torch, child, _join(path, name), memo, param)
        out = Sequential(children)
    elif kind is tnn.ReLU:
        out = ReLU(inplace=m.inplace)
    elif kind is tnn.LeakyReLU:
        out = LeakyReLU(m.negative_slope, inplace=m.inplace)
    elif kind is tnn.Sigmoid:
        out = Sigmoid()
    elif kind is tnn.Tanh:
        out = Tanh()
    elif kind is tnn.GELU:
        out = GELU(approximate=m.approximate)
    elif kind is tnn.Identity:
        out = Identity()
    elif kind is tnn.Flatten:
        out = Flatten(m.start_dim, m.end_dim)
    elif kind is tnn.Softmax:
        out = Softmax(m.dim)
    elif kind is tnn.LogSoftmax:
        out = LogSoftmax(m.dim)
    elif kind is tnn.Dropout:
        out = Dropout(m.p, inplace=m.inplace)
    elif kind is tnn.LayerNorm:
        out = _layer_norm_from_torch(torch, m, path, param)
    else:
        raise TypeError(
            f"from_torch: unsupported layer {kind.__name__} {_where(path)} "
            f"(supported: {_SUPPORTED})"
        )
    object.__setattr__(out, "training", bool(m.training))
    memo[id(m)] = out
    return out


def _parameter_from_torch(torch: Any, p: Any, what: str) -> Parameter:
    return Parameter(_tensor_from_torch(torch, p, what), requires_grad=p.requires_grad)


def shared_module_from_torch(torch: Any, m: Any) -> Module:
    """The lincore module for a supported torch layer (from_torch's table), its parameters
    views of the torch parameters' memory (no copy) whose writes torch reports: the caller bumps
    their version when a torch parameter's _version moves (lincore.optimize does)."""
    return _module_from_torch(torch, m, "", {}, _shared_parameter)


def _shared_parameter(torch: Any, p: Any, what: str) -> Parameter:
    if p.dtype not in (torch.float32, torch.float64) or not p.is_cpu or p.layout != torch.strided:
        raise TypeError(
            f"{what}: lincore runs float32 and float64 CPU tensors; got {p.dtype} on {p.device}"
        )
    view = _core._from_dlpack(torch._C._to_dlpack(p.detach()))
    view._owner_reports_writes()
    return Parameter(view, requires_grad=p.requires_grad)


def _layer_norm_from_torch(
    torch: Any, m: Any, path: str, param: Callable[..., Parameter]
) -> LayerNorm:
    what = f"LayerNorm {_where(path)}"
    weight = None if m.weight is None else param(torch, m.weight, what)
    bias = None if m.bias is None else param(torch, m.bias, what)
    # Built with its own ones and zeros (which draw nothing from the generator), then given the
    # copies.
    out = LayerNorm(
        m.normalized_shape,
        eps=m.eps,
        elementwise_affine=m.elementwise_affine,
        bias=bias is not None,
        dtype=None if weight is None else weight.dtype,
    )
    if weight is not None:
        out.weight = weight
    if bias is not None:
        out.bias = bias
    return out


def _is_torch_dynamic_qlinear(torch: Any, kind: type) -> bool:
    qd = getattr(getattr(getattr(torch.ao, "nn", None), "quantized", None), "dynamic", None)
    return qd is not None and kind is getattr(qd, "Linear", None)


def _qlinear_from_torch(torch: Any, m: Any, path: str) -> Module:
    """PyTorch's dynamically quantized Linear (torch.ao.nn.quantized.dynamic.Linear, qint8) as
    an nn.DynamicQuantizedLinear. Its weight is dequantized and quantized again by lincore's
    rule (docs/quantization.md): PyTorch's codes may use -128 and its per-channel scales are
    float64, neither of which lincore's kernels take as they are."""
    from .nn.quantized import DynamicQuantizedLinear

    w = m.weight()
    if w.dtype != torch.qint8:
        raise TypeError(
            f"from_torch: quantized Linear {_where(path)} has dtype {w.dtype}; lincore converts "
            "torch.qint8 dynamic quantized Linear layers"
        )
    weight = _parameter_from_torch(torch, w.dequantize().float(), f"Linear {_where(path)}")
    b = m.bias()
    bias = None if b is None else _parameter_from_torch(torch, b.detach().float(), "bias")
    return DynamicQuantizedLinear.from_float(_linear(weight, bias))


def _linear(weight: Parameter, bias: Parameter | None) -> Linear:
    """A Linear holding these parameters. It is built 0x0 and then given them, so that its
    constructor's initialisation draws nothing from lincore's random generator."""
    n, k = weight.shape
    layer = Linear(0, 0, bias=bias is not None, dtype=weight.dtype)
    layer.in_features = k
    layer.out_features = n
    layer.weight = weight
    if bias is not None:
        layer.bias = bias
    return layer


# --- to PyTorch ---------------------------------------------------------------------------------


def to_torch(self: Module) -> Any:
    """The equivalent torch.nn module, with copies of the weights (imports torch).
    Implemented for Linear, the activations, Softmax, LogSoftmax, LayerNorm, Dropout,
    Identity, Flatten, DynamicQuantizedLinear (as torch.ao.nn.quantized.dynamic.Linear) and
    Sequential of these; other modules raise NotImplementedError."""
    import torch

    return _module_to_torch(torch, self, "", {})


def _module_to_torch(torch: Any, m: Module, path: str, memo: dict[int, Any]) -> Any:
    if id(m) in memo:
        return memo[id(m)]
    tnn = torch.nn
    kind = type(m)
    if kind is Linear:
        weight = _parameter_to_torch(torch, m.weight)
        # skip_init: built on the meta device, so torch's random generator is not touched.
        out = tnn.utils.skip_init(
            tnn.Linear,
            weight.shape[1],
            weight.shape[0],
            bias=m.bias is not None,
            dtype=weight.dtype,
        )
        out.weight = weight
        if m.bias is not None:
            out.bias = _parameter_to_torch(torch, m.bias)
    elif kind is Sequential:
        children = OrderedDict()
        for name, child in m._modules.items():
            if child is None:
                raise NotImplementedError(
                    f"to_torch: Sequential {_where(path)} holds None as '{name}'"
                )
            children[name] = _module_to_torch(torch, child, _join(path, name), memo)
        out = tnn.Sequential(children)
    elif kind is ReLU:
        out = tnn.ReLU(inplace=m.inplace)
    elif kind is LeakyReLU:
        out = tnn.LeakyReLU(m.negative_slope, inplace=m.inplace)
    elif kind is Sigmoid:
        out = tnn.Sigmoid()
    elif kind is Tanh:
        out = tnn.Tanh()
    elif kind is GELU:
        out = tnn.GELU(approximate=m.approximate)
    elif kind is Identity:
        out = tnn.Identity()
    elif kind is Flatten:
        out = tnn.Flatten(m.start_dim, m.end_dim)
    elif kind is Softmax:
        out = tnn.Softmax(m.dim)
    elif kind is LogSoftmax:
        out = tnn.LogSoftmax(m.dim)
    elif kind is Dropout:
        out = tnn.Dropout(m.p, inplace=m.inplace)
    elif kind is LayerNorm:
        out = _layer_norm_to_torch(torch, m)
    elif kind is DynamicQuantizedLinear:
        out = _qlinear_to_torch(torch, m)
    else:
        raise NotImplementedError(
            f"to_torch: {kind.__name__} {_where(path)} has no PyTorch conversion (supported: "
            f"{_SUPPORTED})"
        )
    out.training = m.training
    memo[id(m)] = out
    return out


def _layer_norm_to_torch(torch: Any, m: LayerNorm) -> Any:
    weight = None if m.weight is None else _parameter_to_torch(torch, m.weight)
    out = torch.nn.LayerNorm(
        m.normalized_shape,
        eps=m.eps,
        elementwise_affine=m.elementwise_affine,
        bias=m.bias is not None,
        dtype=None if weight is None else weight.dtype,
    )
    if weight is not None:
        out.weight = weight
    if m.bias is not None:
        out.bias = _parameter_to_torch(torch, m.bias)
    return out


def _qlinear_to_torch(torch: Any, m: DynamicQuantizedLinear) -> Any:
    """torch.ao.nn.quantized.dynamic.Linear holding lincore's codes and per-channel scales
    exactly (zero points 0). torch quantizes the input its own way (per tensor, asymmetric,
    with fbgemm's reduced range), so its outputs differ from lincore's within int8 error."""
    qd = torch.ao.nn.quantized.dynamic
    has_bias = m._packed.has_bias
    out = qd.Linear(m.in_features, m.out_features, bias_=has_bias, dtype=torch.qint8)
    scales = m.scales().astype(np.float64)
    # A row of zero weights has scale 0 (codes 0); torch's requantization divides by it.
    scales[scales == 0] = 1.0
    codes = torch._make_per_channel_quantized_tensor(
        torch.from_numpy(m.int8_weight()),
        torch.from_numpy(scales),
        torch.zeros(m.out_features, dtype=torch.int64),
        0,
    )
    out.set_weight_bias(codes, torch.from_numpy(m.bias()) if has_bias else None)
    return out


def _parameter_to_torch(torch: Any, p: Tensor) -> Any:
    # A writable, C-contiguous copy that torch then owns (bf16: its bits, through int16).
    if p.dtype is bfloat16:
        bits = np.ascontiguousarray(p._bits(False)).view(np.int16).copy()
        data = torch.from_numpy(bits).view(torch.bfloat16)
    else:
        data = torch.from_numpy(np.asarray(memoryview(p)).copy(order="C"))
    return torch.nn.Parameter(data, requires_grad=p.requires_grad)


# --- DLPack -------------------------------------------------------------------------------------

_KDLCPU = 1  # DLPack's DLDeviceType for host memory


def _dlpack(
    self: Tensor,
    *,
    stream: Any = None,
    max_version: Any = None,
    dl_device: Any = None,
    copy: bool | None = None,
) -> Any:
    """A DLPack capsule sharing this tensor's memory (the array API's __dlpack__)."""
    if self.requires_grad:
        raise RuntimeError("Can't export tensors that require gradient, use tensor.detach()")
    # Only the keywords the consumer gave: numpy < 2.1 (the newest for Python 3.9) takes stream
    # alone, and a consumer that asks for more retries without them on TypeError (array API).
    given = {"max_version": max_version, "dl_device": dl_device, "copy": copy}
    if self.dtype is bfloat16:
        # numpy cannot describe bfloat16 (kDLBfloat): lincore's own capsule, the unversioned
        # DLPack 0.x one that consumers accept (a copy only when one is asked for).
        return _core._to_dlpack(self.clone() if copy else self)
    return np.asarray(memoryview(self)).__dlpack__(
        stream=stream, **{k: v for k, v in given.items() if v is not None}
    )


def _dlpack_device(self: Tensor) -> tuple[int, int]:
    """(device type, device id): lincore tensors live in host memory, (kDLCPU, 0)."""
    return (_KDLCPU, 0)


def from_dlpack(ext_tensor: Any) -> Tensor:
    """A lincore tensor sharing the memory of ext_tensor, any object with __dlpack__ (a torch
    tensor, a numpy array, ...) on the CPU, with dtype float32, float64, int64, bool or
    bfloat16."""
    if _is_torch_bfloat16(ext_tensor):
        # numpy cannot import bfloat16: lincore's own DLPack import (csrc/bindings/dlpack.cpp).
        return _core._from_dlpack(ext_tensor.__dlpack__())
    # A numpy array is taken as it is: numpy < 2.1 marks what it imports through DLPack read-only.
    arr = ext_tensor if isinstance(ext_tensor, np.ndarray) else np.from_dlpack(ext_tensor)
    if from_numpy_dtype(arr.dtype) is None:
        raise TypeError(
            f"from_dlpack: lincore has no dtype for {arr.dtype} (supported: "
            "float32, float64, int64 and bool)"
        )
    return _core._from_buffer(borrowable(arr))


def _is_torch_bfloat16(obj: Any) -> bool:
    torch = sys.modules.get("torch")  # a torch tensor exists only once torch is imported
    return torch is not None and isinstance(obj, torch.Tensor) and obj.dtype == torch.bfloat16


def install() -> None:
    """Attaches __dlpack__ and __dlpack_device__ to lincore._core.Tensor, and to_torch to
    nn.Module (once, at import). Module.to_torch is defined here, not in nn/module.py, because it
    needs every layer class, and they all import nn/module.py: so nn never imports this module."""
    Tensor.__dlpack__ = _dlpack  # type: ignore[attr-defined]
    Tensor.__dlpack_device__ = _dlpack_device  # type: ignore[attr-defined]
    Module.to_torch = to_torch  # type: ignore[method-assign]


__all__ = ["from_dlpack", "from_torch", "install", "to_torch"]
