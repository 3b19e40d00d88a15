"""Float64 references for the dense chains that lincore.onnx and lincore.from_sklearn build, with
error bounds in the form of the tolerance rule (docs/testing.md): the bound of each layer's own
rounding (assert_linear_close's for a Linear, test_softmax_layernorm_dropout.py's for softmax)
plus the previous layers' bound carried through the layer (|W| for a Linear; the activation's
largest slope; 2 max_j for softmax and log_softmax, whose Jacobian rows sum to at most 2 p_i and
2 in absolute value). Checked with conftest.assert_within_bound(y, ref, G, n)."""

from __future__ import annotations

import math

import numpy as np

import lincore.nn as nn
from conftest import UNIT_ROUNDOFF

_erf = np.vectorize(math.erf, otypes=[np.float64])

# Largest |f'| of each activation (GELU's x Phi(x) peaks at about 1.13 near x = 2.4).
_SLOPE = {nn.ReLU: 1.0, nn.Tanh: 1.0, nn.Sigmoid: 0.25, nn.GELU: 1.13}
# Roundings allowed for an activation's own evaluation (exp, tanh, erf: a few ulps).
_ACT_ROUNDINGS = 4


def _act(layer, z: np.ndarray) -> np.ndarray:
    if isinstance(layer, nn.ReLU):
        return np.maximum(z, 0)
    if isinstance(layer, nn.LeakyReLU):
        return np.where(z >= 0, z, layer.negative_slope * z)
    if isinstance(layer, nn.Tanh):
        return np.tanh(z)
    if isinstance(layer, nn.Sigmoid):
        return 1 / (1 + np.exp(-z))
    if isinstance(layer, nn.GELU):
        if layer.approximate == "tanh":
            return 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3)))
        return 0.5 * z * (1 + _erf(z / np.sqrt(2)))
    raise AssertionError(f"no reference for {layer!r}")


def chain_reference(seq, x) -> tuple[np.ndarray, np.ndarray, int]:
    """(ref, G, n) for the nn.Sequential `seq` applied to x."""
    ref = np.asarray(x, np.float64)
    g = np.abs(ref)
    n = 0
    for layer in seq:
        if isinstance(layer, nn.Linear):
            w = np.asarray(layer.weight, np.float64)
            b = 0 if layer.bias is None else np.asarray(layer.bias, np.float64)
            ref = ref @ w.T + b
            g = np.abs(b) + g @ np.abs(w).T
            n += w.shape[1] + 2
        elif isinstance(layer, (nn.Softmax, nn.LogSoftmax)):
            dim = layer.dim
            m = ref.max(axis=dim, keepdims=True)
            d = ref - m
            lse = np.log(np.exp(d).sum(axis=dim, keepdims=True))
            carried = 2 * g.max(axis=dim, keepdims=True)
            c = ref.shape[dim]
            if isinstance(layer, nn.LogSoftmax):
                ref = d - lse
                g = np.abs(d) + np.abs(lse) + 1 + carried
            else:
                ref = np.exp(d - lse)
                g = ref * (1 + np.abs(d) + carried)
            n += 2 * c + 4
        elif isinstance(layer, nn.Flatten):
            ref = ref.reshape(ref.shape[0], -1)
            g = g.reshape(g.shape[0], -1)
        elif isinstance(layer, (nn.Identity, nn.Dropout)):
            pass
        else:
            slope = max(1.0, abs(layer.negative_slope)) if isinstance(layer, nn.LeakyReLU) else None
            ref = _act(layer, ref)
            g = (slope or _SLOPE[type(layer)]) * g + np.abs(ref)
            n += _ACT_ROUNDINGS
    return ref, g, n


def decided(probs_ref: np.ndarray, g: np.ndarray, n: int) -> np.ndarray:
    """Rows whose argmax cannot change within the float32 bound gamma(n) G (the top two differ
    by more than their bounds): there, every correct implementation gives the same label."""
    u = UNIT_ROUNDOFF[np.dtype(np.float32)]
    bound = n * u / (1 - n * u) * g
    order = np.argsort(probs_ref, axis=1)
    rows = np.arange(len(probs_ref))
    top, second = order[:, -1], order[:, -2]
    gap = probs_ref[rows, top] - probs_ref[rows, second]
    return gap > bound[rows, top] + bound[rows, second]
