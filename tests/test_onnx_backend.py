"""ONNX's own node tests (onnx.backend.test.BackendTest) for the ops lincore runs, through
lincore.onnx.Backend: Gemm, MatMul, Add (float), Relu, Sigmoid, Tanh, LeakyRelu, Gelu, Flatten,
Softmax and LogSoftmax, without the `_expanded` variants (those are other ops' graphs). With onnx
1.23.2 that is 55 tests (README, "Run ONNX and scikit-learn models")."""

from __future__ import annotations

import re
import unittest
import warnings

import pytest

pytest.importorskip("onnx", reason="lincore.onnx needs the onnx package")
import numpy as np  # noqa: E402
import onnx.backend.test  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

import lincore.onnx  # noqa: E402

OPS = "gemm|matmul|add|relu|sigmoid|tanh|leakyrelu|gelu|flatten|softmax|logsoftmax"
SELECTED = re.compile(rf"^test_({OPS})(_.*)?_cpu$")
# Not ours: the expanded forms (graphs of other ops) and Add on integer types.
LEFT_OUT = re.compile(r"_expanded|^test_add_u?int")


def _selected_cases() -> type[unittest.TestCase]:
    """One TestCase class holding only the selected node tests (BackendTest's own classes list
    every test of every op, the rest skipped: thousands of skips)."""
    with warnings.catch_warnings():
        # Building onnx's cases computes their expected outputs (overflows, log(0), ... on
        # purpose): onnx's warnings, not ours.
        warnings.simplefilter("ignore")
        runner = onnx.backend.test.BackendTest(lincore.onnx.Backend, __name__)
    source = runner.test_cases["OnnxBackendNodeModelTest"]
    names = [n for n in dir(source) if SELECTED.match(n) and not LEFT_OUT.search(n)]
    return type("OnnxNodeTest", (unittest.TestCase,), {n: getattr(source, n) for n in names})


OnnxNodeTest = _selected_cases()


def test_node_test_selection_covers_every_listed_op():
    names = [n for n in dir(OnnxNodeTest) if n.startswith("test_")]
    assert len(names) >= 50, names
    for op in OPS.split("|"):
        assert any(re.match(rf"test_{op}(_|$)", n[: -len("_cpu")] + "_") for n in names), op


def test_backend_interface():
    B = lincore.onnx.Backend
    assert B.supports_device("CPU") and not B.supports_device("CUDA")
    node = helper.make_node("LeakyRelu", ["x"], ["y"], alpha=0.5)
    (y,) = B.run_node(node, [np.array([-2.0, 3.0], np.float32)])
    assert y.dtype == np.float32 and y.tolist() == [-1.0, 3.0]
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph)
    out = B.run_model(model, {"x": np.array([-4.0, 1.0], np.float32)})
    assert out["y"].tolist() == [-2.0, 1.0] and out[0].tolist() == [-2.0, 1.0]
    with pytest.raises(ValueError, match="CPU"):
        B.prepare(model, "CUDA")
