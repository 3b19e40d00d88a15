"""The dynamically quantized Linear (PyTorch's torch.ao.nn.quantized.dynamic.Linear): int8
weights, symmetric per output channel, packed once; the input quantized per row on every call;
int32 accumulation; fp32 bias and output. The arithmetic and its error bound:
docs/quantization.md; the kernels: csrc/kernels/qgemm.h."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core
from .._creation import as_tensor
from .linear import Linear, _check_features
from .module import Module

_Tensor = _core.Tensor


class DynamicQuantizedLinear(Module):
    """y = x W^T + b with W held as int8 codes and one fp32 scale per output feature.

    Built by lincore.quantize_dynamic (or DynamicQuantizedLinear.from_float(linear)); inference
    only: its output does not record a gradient back through the layer. The packed weight is the
    only copy of W (about 1 byte per weight); `int8_weight()`, `scales()` and `bias()` return new
    arrays read back from it."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        in_features = _check_features("in_features", in_features)
        out_features = _check_features("out_features", out_features)
        super().__init__()
        codes = np.zeros((out_features, in_features), np.int8)
        scales = np.ones(out_features, np.float32)
        b = np.zeros(out_features, np.float32) if bias else None
        self._set_packed(_core.QLinearWeight.from_int8(codes, scales, b))

    def _set_packed(self, packed: Any) -> None:
        object.__setattr__(self, "_packed", packed)
        object.__setattr__(self, "in_features", packed.in_features)
        object.__setattr__(self, "out_features", packed.out_features)
        self._changed()

    @classmethod
    def from_float(cls, mod: Linear) -> DynamicQuantizedLinear:
        """Quantizes a float32 lincore.nn.Linear (its weight per output channel)."""
        if not isinstance(mod, Linear):
            raise TypeError(
                f"DynamicQuantizedLinear.from_float: expected a lincore.nn.Linear, got "
                f"{type(mod).__name__}"
            )
        bias = mod.bias.detach() if mod.bias is not None else None
        packed = _core.QLinearWeight.quantize(mod.weight.detach(), bias)
        return cls._from_packed(packed)

    @classmethod
    def from_int8(cls, codes: Any, scales: Any, bias: Any = None) -> DynamicQuantizedLinear:
        """From saved codes (int8, (out, in), in [-127, 127]), scales (float32, (out,)) and an
        optional bias (float32, (out,)); checked, so a bad file gives a clear error."""
        return cls._from_packed(_core.QLinearWeight.from_int8(codes, scales, bias))

    @classmethod
    def _from_packed(cls, packed: Any) -> DynamicQuantizedLinear:
        self = cls.__new__(cls)
        Module.__init__(self)
        self._set_packed(packed)
        return self

    def forward(self, input: Any) -> Any:
        x = input if isinstance(input, _Tensor) else as_tensor(input)
        if x.requires_grad and _core.is_grad_enabled():
            # A gradient cannot flow back through int8 arithmetic: say so rather than cut the
            # graph silently (inside a Sequential run the same error comes at backward).
            raise NotImplementedError(
                "a quantized Linear does not support autograd (int8 layers are for inference): "
                "call it under lincore.no_grad() or on an input that does not require grad"
            )
        return _core.qlinear(x, self._packed)

    def _step(self, name: str) -> Any:
        return _core._qlinear_step(name, self._packed)

    # The weight as saved: new arrays, read back from the pack.
    def int8_weight(self) -> np.ndarray:
        return self._packed.codes()

    def scales(self) -> np.ndarray:
        return self._packed.scales()

    def bias(self) -> np.ndarray | None:
        return self._packed.bias()

    @property
    def nbytes(self) -> int:
        """Bytes the layer's packed weight holds (codes, scales, bias, column sums)."""
        return int(self._packed.nbytes)

    def dequantized_weight(self) -> np.ndarray:
        """codes * scale per row, float32: the weight the int8 product computes with."""
        return (self.int8_weight().astype(np.float32) * self.scales()[:, None]).astype(np.float32)

    # -- state dict: the codes, scales and bias under documented keys (docs/quantization.md) --
    def _state_keys(self, prefix: str) -> list[str]:
        keys = [prefix + "weight_int8", prefix + "weight_scale"]
        return keys + [prefix + "bias"] if self._packed.has_bias else keys

    def _state_arrays(self, prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            prefix + "weight_int8": self.int8_weight(),
            prefix + "weight_scale": self.scales(),
        }
        if self._packed.has_bias:
            out[prefix + "bias"] = self.bias()
        return out

    def _rebuild_from_state(self, state: Any, prefix: str) -> Any:
        """A new pack from state's arrays, checked: right shapes (this layer's), int8 codes in
        [-127, 127], finite non-negative scales, a finite bias; nothing changes on error."""

        def get(key: str, kind: Any) -> np.ndarray:
            if prefix + key not in state:
                raise KeyError(f"missing {prefix + key!r}")
            value = state[prefix + key]
            arr = np.asarray(value) if not isinstance(value, _Tensor) else np.asarray(value)
            if arr.dtype != kind:
                raise TypeError(
                    f"{prefix + key!r} must have dtype {np.dtype(kind)}, got {arr.dtype}"
                )
            return arr

        codes = get("weight_int8", np.int8)
        scales = get("weight_scale", np.float32)
        bias = get("bias", np.float32) if self._packed.has_bias else None
        expect = (self.out_features, self.in_features)
        if codes.shape != expect:
            raise ValueError(
                f"size mismatch for {prefix}weight_int8: copying a param with shape "
                f"{codes.shape} from checkpoint, the shape in current model is {expect}."
            )
        return _core.QLinearWeight.from_int8(codes, scales, bias)

    def _set_state(self, packed: Any) -> None:
        self._set_packed(packed)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_native_caches", None)
        state["_native_caches"] = {}
        state["_packed"] = self._packed  # pickles as (codes, scales, bias)
        return state

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"dtype=qint8, qscheme=per_channel_symmetric"
        )
