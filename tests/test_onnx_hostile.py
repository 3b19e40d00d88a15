"""Hostile ONNX files (docs/testing.md, "Files"): truncated, corrupt, huge-dimension, cyclic,
external-data-pointing and wrongly typed models give a clear ValueError from
lincore.onnx.load, never a crash, a hang, a read of another file or a huge allocation. The fuzz
harness's `onnx` target (tools/fuzz_harness.py) does the same at random, in CI briefly."""

from __future__ import annotations

import random

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="lincore.onnx needs the onnx package")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import lincore.onnx  # noqa: E402


def mlp(rng=None) -> onnx.ModelProto:
    rng = rng or np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((6, 4)).astype(np.float32), "W1"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "W2"),
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["r"], name="act"),
        helper.make_node("MatMul", ["r", "W2"], ["m"], name="fc2"),
        helper.make_node("Softmax", ["m"], ["y"], name="sm"),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def load_or_value_error(data):
    """The contract on any bytes: a model (which then runs or raises a clear error) or a
    ValueError."""
    try:
        model = lincore.onnx.load(data)
    except ValueError as e:
        assert str(e)
        return None
    try:
        model(*[np.ones((2, 6), np.float32)] * len(model.input_names))
    except (ValueError, TypeError, RuntimeError):
        pass
    return model


def test_every_truncation_is_a_value_error_or_a_model():
    data = mlp().SerializeToString()
    for cut in range(len(data)):
        load_or_value_error(data[:cut])
    with pytest.raises(ValueError, match="no graph"):
        lincore.onnx.load(b"")


def test_corrupt_bytes_are_a_value_error_or_a_model():
    data = mlp().SerializeToString()
    r = random.Random(7)
    for _ in range(400):
        b = bytearray(data)
        for _ in range(r.randint(1, 8)):
            b[r.randrange(len(b))] = r.randrange(256)
        load_or_value_error(bytes(b))
    with pytest.raises(ValueError, match="not a valid ONNX model"):
        lincore.onnx.load(b"\xff" * 64)


def test_deeply_nested_message_is_a_value_error():
    # Field 7 (graph), length-delimited, nested far past protobuf's recursion limit.
    data = b""
    for _ in range(2000):
        data = b"\x3a" + _varint(len(data)) + data
    with pytest.raises(ValueError):
        lincore.onnx.load(data)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def test_huge_dimension_initializer_is_refused_before_allocating():
    m = mlp()
    t = m.graph.initializer[0]
    del t.dims[:]
    t.dims.extend([2**40, 2**40])
    with pytest.raises(ValueError, match=r"needs \d+ bytes, but its data has 96"):
        lincore.onnx.load(m)
    t.dims[:] = [2**62, 2**62]  # a product past int64
    with pytest.raises(ValueError, match="needs"):
        lincore.onnx.load(m)
    t.dims[:] = [-1, 24]
    with pytest.raises(ValueError, match="negative dim"):
        lincore.onnx.load(m)


def test_typed_field_count_must_match_dims():
    t = TensorProto(name="W1", data_type=TensorProto.FLOAT, dims=[6, 4], float_data=[1.0] * 5)
    m = mlp()
    m.graph.initializer[0].CopyFrom(t)
    with pytest.raises(ValueError, match="needs 24 values, but holds 5"):
        lincore.onnx.load(m)


def test_huge_reshape_target_fails_when_run_not_when_loaded():
    nodes = [helper.make_node("Reshape", ["x", "s"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2**40, 2**40])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.array([2**40, 2**40], np.int64), "s")],
    )
    model = lincore.onnx.load(helper.make_model(graph))
    with pytest.raises(ValueError, match="cannot reshape"):
        model(np.ones((2, 3), np.float32))


def test_cycle_is_a_value_error():
    nodes = [
        helper.make_node("Relu", ["x", "b"], ["a"], name="one"),
        helper.make_node("Relu", ["a"], ["b"], name="two"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])],
    )
    with pytest.raises(ValueError, match="cycle"):
        lincore.onnx.load(helper.make_model(graph))


def test_external_data_is_refused(tmp_path):
    secret = tmp_path / "weights.bin"
    secret.write_bytes(b"\0" * 96)
    m = mlp()
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value=str(secret))
    path = tmp_path / "m.onnx"
    path.write_bytes(m.SerializeToString())
    with pytest.raises(ValueError, match="external data"):
        lincore.onnx.load(path)


@pytest.mark.parametrize(
    "mutate,message",
    [
        (
            lambda m: m.graph.node[0].attribute.append(helper.make_attribute("alpha", "big")),
            "attribute 'alpha' must be FLOAT, but it is STRING",
        ),
        (
            lambda m: m.graph.initializer[0].CopyFrom(
                numpy_helper.from_array(np.ones((6, 4), np.float16), "W1")
            ),
            "element type FLOAT16",
        ),
        (
            lambda m: m.graph.initializer[0].CopyFrom(
                numpy_helper.from_array(np.ones((6, 4), np.int64), "W1")
            ),
            "int64",
        ),
        (
            lambda m: setattr(m.graph.input[0].type.tensor_type, "elem_type", TensorProto.FLOAT16),
            "graph input 'x' has element type FLOAT16",
        ),
        (
            lambda m: m.graph.input[0].type.CopyFrom(
                helper.make_sequence_type_proto(helper.make_tensor_type_proto(1, None))
            ),
            "is a sequence_type",
        ),
        (
            lambda m: m.graph.node[2].input.__setitem__(1, "missing"),
            "input 'missing' is not produced",
        ),
        (lambda m: m.graph.node[1].output.__setitem__(0, "x"), "defined twice"),
        (lambda m: m.graph.output[0].__setattr__("name", "nowhere"), "not produced by any"),
        (
            lambda m: m.graph.node.append(helper.make_node("If", ["x"], ["z"], name="branch")),
            "op 'If'",
        ),
        (lambda m: setattr(m.graph.initializer[0], "data_type", 999), "element type 999"),
    ],
)
def test_wrongly_typed_or_dangling_parts_are_value_errors(mutate, message):
    m = mlp()
    mutate(m)
    with pytest.raises(ValueError, match=message):
        lincore.onnx.load(m.SerializeToString())
