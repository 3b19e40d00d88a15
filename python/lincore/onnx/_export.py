"""lincore.onnx.export: a lincore Sequential (Linear, the int8 DynamicQuantizedLinear, the
activations, Softmax, LogSoftmax, LayerNorm, Flatten, Identity, Dropout, nested Sequentials) as
an ONNX file with a dynamic batch axis, built with onnx.helper and checked with onnx.checker."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .. import nn
from ..nn.module import Module
from ..nn.quantized import DynamicQuantizedLinear

_ELEM = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}
# The opset each op needs at least: 13 for single-axis Softmax, 17 for LayerNormalization,
# 20 for Gelu. An exported file asks for the least its ops need.
_BASE_OPSET = 13
_LAYER_NORM_OPSET = 17
_GELU_OPSET = 20


def _flat_layers(module: Module, path: str = "") -> list[tuple[str, Module]]:
    if isinstance(module, nn.Sequential):
        out = []
        for name, child in module._modules.items():
            out.extend(_flat_layers(child, f"{path}.{name}" if path else name))
        return out
    return [(path or type(module).__name__, module)]


def export(
    model: Module,
    path: Any = None,
    *,
    input_shape: Any = None,
    input_name: str = "input",
    output_name: str = "output",
) -> onnx.ModelProto:
    """Writes `model` (a lincore nn.Sequential or one layer) to `path` as ONNX, and returns
    the ModelProto (path None: only returns it). The input is (batch, in_features), the batch
    axis dynamic, unless input_shape gives the shape without the batch dim (needed when the
    first layer is not a Linear). onnxruntime runs the file with lincore's results within the
    tolerance rule."""
    if not isinstance(model, Module):
        raise TypeError(f"export: expected a lincore nn.Module, got {type(model).__name__}")
    layers = _flat_layers(model)
    if not layers:
        raise ValueError("export: the model has no layers")
    linears = [m for _, m in layers if isinstance(m, nn.Linear)]
    dtype = np.dtype(np.asarray(linears[0].weight).dtype) if linears else np.dtype(np.float32)
    if any(isinstance(m, DynamicQuantizedLinear) for _, m in layers) and dtype != np.float32:
        raise ValueError(f"export: int8 layers take float32 inputs; the model is {dtype}")
    if input_shape is None:
        if not isinstance(layers[0][1], (nn.Linear, DynamicQuantizedLinear)):
            raise ValueError(
                "export: the first layer is not a Linear; give input_shape (without the batch)"
            )
        input_shape = (layers[0][1].in_features,)
    shape = ["batch", *[int(d) for d in input_shape]]
    rank = len(shape)
    features = shape[1:]  # the dims after the batch, as the layers change them
    nodes: list = []
    inits: list = []
    opset = _BASE_OPSET
    current = input_name

    def name(i: int) -> str:
        return output_name if i == len(layers) - 1 else f"h{i}"

    for i, (where, m) in enumerate(layers):
        out = name(i)
        kind = type(m)
        if kind is nn.Linear:
            w = np.asarray(m.weight)
            if w.dtype != dtype:
                raise ValueError(f"export: layer {where} is {w.dtype}, the model {dtype}")
            inits.append(numpy_helper.from_array(np.ascontiguousarray(w), f"{where}.weight"))
            ins = [current, f"{where}.weight"]
            if m.bias is not None:
                inits.append(numpy_helper.from_array(np.asarray(m.bias).copy(), f"{where}.bias"))
                ins.append(f"{where}.bias")
            features = [*features[:-1], w.shape[0]]
            if rank == 2:
                nodes.append(helper.make_node("Gemm", ins, [out], name=where, transB=1))
            else:  # MatMul takes the leading dims; the weight is stored transposed for it
                inits[-1 - (m.bias is not None)] = numpy_helper.from_array(
                    np.ascontiguousarray(w.T), f"{where}.weight"
                )
                mm = out if m.bias is None else f"{where}.matmul"
                nodes.append(helper.make_node("MatMul", ins[:2], [mm], name=where))
                if m.bias is not None:
                    nodes.append(helper.make_node("Add", [mm, ins[2]], [out], name=f"{where}.add"))
        elif kind is DynamicQuantizedLinear:
            nodes.extend(_quantized_linear(m, where, current, out, inits))
            features = [*features[:-1], m.out_features]
        elif kind is nn.ReLU:
            nodes.append(helper.make_node("Relu", [current], [out], name=where))
        elif kind is nn.LeakyReLU:
            nodes.append(
                helper.make_node(
                    "LeakyRelu", [current], [out], name=where, alpha=float(m.negative_slope)
                )
            )
        elif kind is nn.Sigmoid:
            nodes.append(helper.make_node("Sigmoid", [current], [out], name=where))
        elif kind is nn.Tanh:
            nodes.append(helper.make_node("Tanh", [current], [out], name=where))
        elif kind is nn.GELU:
            opset = max(opset, _GELU_OPSET)
            nodes.append(
                helper.make_node("Gelu", [current], [out], name=where, approximate=m.approximate)
            )
        elif kind in (nn.Softmax, nn.LogSoftmax):
            if m.dim is None:
                raise ValueError(f"export: layer {where} has no dim; give Softmax a dim")
            op = "Softmax" if kind is nn.Softmax else "LogSoftmax"
            nodes.append(helper.make_node(op, [current], [out], name=where, axis=int(m.dim)))
        elif kind is nn.LayerNorm:
            opset = max(opset, _LAYER_NORM_OPSET)
            k = len(m.normalized_shape)
            scale = np.ones(m.normalized_shape, dtype) if m.weight is None else np.asarray(m.weight)
            ins = [current, f"{where}.weight"]
            inits.append(numpy_helper.from_array(np.ascontiguousarray(scale), f"{where}.weight"))
            if m.bias is not None:
                inits.append(numpy_helper.from_array(np.asarray(m.bias).copy(), f"{where}.bias"))
                ins.append(f"{where}.bias")
            nodes.append(
                helper.make_node(
                    "LayerNormalization", ins, [out], name=where, axis=-k, epsilon=float(m.eps)
                )
            )
        elif kind is nn.Flatten:
            start = m.start_dim % rank
            end = m.end_dim % rank
            if start != 1 or end != rank - 1:
                raise ValueError(
                    f"export: layer {where} flattens dims {m.start_dim}..{m.end_dim}; ONNX "
                    "export supports Flatten(1, -1) (all but the batch dim)"
                )
            nodes.append(helper.make_node("Flatten", [current], [out], name=where, axis=1))
            rank = 2
            features = [int(np.prod(features, dtype=np.int64))]
        elif kind in (nn.Identity, nn.Dropout):
            nodes.append(helper.make_node("Identity", [current], [out], name=where))
        else:
            raise ValueError(
                f"export: layer {where} ({kind.__name__}) has no ONNX form here; exported are "
                "Linear, DynamicQuantizedLinear, ReLU, LeakyReLU, Sigmoid, Tanh, GELU, Softmax, "
                "LogSoftmax, LayerNorm, Flatten, Identity, Dropout and Sequentials of these"
            )
        current = out
    elem = _ELEM.get(dtype)
    if elem is None:
        raise ValueError(f"export: lincore exports float32 or float64 models, not {dtype}")
    graph = helper.make_graph(
        nodes,
        "lincore",
        [helper.make_tensor_value_info(input_name, elem, shape)],
        [helper.make_tensor_value_info(output_name, elem, ["batch", *features])],
        initializer=inits,
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="lincore"
    )
    proto.ir_version = min(proto.ir_version, 9)  # readable by onnxruntime releases since 1.16
    onnx.checker.check_model(proto)
    if path is not None:
        with open(os.fspath(path), "wb") as f:
            f.write(proto.SerializeToString())
    return proto


def _quantized_linear(m: DynamicQuantizedLinear, where: str, x: str, out: str, inits: list) -> list:
    """The int8 layer as the standard ONNX ops onnxruntime's own quantize_dynamic writes:
    DynamicQuantizeLinear (x per tensor, asymmetric uint8), MatMulInteger with lincore's codes
    (int8, stored k x n) and zero weight zero points, Cast, and the two scales and the bias
    applied in float. The weights are lincore's exactly; x is quantized as ONNX defines it (per
    tensor, not per row as lincore does), so the outputs agree within the int8 error."""
    inits.append(
        numpy_helper.from_array(np.ascontiguousarray(m.int8_weight().T), f"{where}.weight_int8")
    )
    inits.append(
        numpy_helper.from_array(np.zeros(m.out_features, np.int8), f"{where}.weight_zero_point")
    )
    inits.append(numpy_helper.from_array(m.scales(), f"{where}.weight_scale"))
    q = [f"{where}.x_int8", f"{where}.x_scale", f"{where}.x_zero_point"]
    nodes = [
        helper.make_node("DynamicQuantizeLinear", [x], q, name=f"{where}.quantize"),
        helper.make_node(
            "MatMulInteger",
            [q[0], f"{where}.weight_int8", q[2], f"{where}.weight_zero_point"],
            [f"{where}.acc"],
            name=where,
        ),
        helper.make_node(
            "Cast", [f"{where}.acc"], [f"{where}.accf"], name=f"{where}.cast", to=TensorProto.FLOAT
        ),
        helper.make_node(
            "Mul", [q[1], f"{where}.weight_scale"], [f"{where}.scale"], name=f"{where}.scales"
        ),
    ]
    bias = m.bias()
    scaled = out if bias is None else f"{where}.scaled"
    nodes.append(
        helper.make_node("Mul", [f"{where}.accf", f"{where}.scale"], [scaled], name=f"{where}.mul")
    )
    if bias is not None:
        inits.append(numpy_helper.from_array(bias, f"{where}.bias"))
        nodes.append(helper.make_node("Add", [scaled, f"{where}.bias"], [out], name=f"{where}.add"))
    return nodes
