"""lincore.onnx.export: lincore Sequentials written as ONNX with a dynamic batch axis run in
onnxruntime with lincore's results (both within the float64 reference's bound), and load back
into lincore bitwise equal to the original."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="lincore.onnx needs the onnx package")
ort = pytest.importorskip("onnxruntime", reason="the comparisons need onnxruntime")

import lincore  # noqa: E402
import lincore.nn as nn  # noqa: E402
import lincore.onnx  # noqa: E402
from conftest import assert_within_bound  # noqa: E402
from onnx_reference import chain_reference  # noqa: E402

BATCHES = [1, 7, 64]

STACKS = {
    "relu": lambda: nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 4)),
    "mixed": lambda: nn.Sequential(
        nn.Linear(10, 12),
        nn.LeakyReLU(0.1),
        nn.Linear(12, 12),
        nn.Tanh(),
        nn.Dropout(0.3),
        nn.Linear(12, 8),
        nn.Sigmoid(),
        nn.Sequential(nn.Linear(8, 6), nn.Identity()),
        nn.Softmax(dim=-1),
    ),
    "gelu": lambda: nn.Sequential(
        nn.Linear(10, 8),
        nn.GELU(),
        nn.Linear(8, 8),
        nn.GELU("tanh"),
        nn.Linear(8, 3),
        nn.LogSoftmax(dim=1),
    ),
    "no_bias": lambda: nn.Sequential(nn.Linear(10, 5, bias=False), nn.ReLU()),
}


@pytest.mark.parametrize("dtype", [lincore.float32, lincore.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("stack", sorted(STACKS))
def test_export_runs_in_onnxruntime_with_lincore_results(stack, dtype, tmp_path, rng):
    if dtype is lincore.float64 and stack in ("gelu", "mixed"):
        pytest.skip("onnxruntime's CPU provider has no double kernels for Gelu and LeakyRelu")
    lincore.manual_seed(5)
    model = STACKS[stack]().to(dtype).eval()
    path = tmp_path / "m.onnx"
    proto = lincore.onnx.export(model, path)
    assert path.read_bytes() == proto.SerializeToString()
    dim = proto.graph.input[0].type.tensor_type.shape.dim
    assert dim[0].dim_param == "batch" and dim[1].dim_value == 10
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    back = lincore.onnx.load(path)
    assert back._only is not None
    np_dtype = np.float32 if dtype is lincore.float32 else np.float64
    for batch in BATCHES:
        x = rng.standard_normal((batch, 10)).astype(np_dtype)
        ours = np.asarray(model(lincore.from_numpy(x)))
        theirs = sess.run(None, {"input": x})[0]
        ref, g, n = chain_reference(model_layers(model), x)
        assert_within_bound(ours, ref, g, n)
        assert_within_bound(theirs, ref, g, n)
        assert np.array_equal(np.asarray(back(x)), ours)


def model_layers(model):
    out = []
    for m in model:
        out.extend(model_layers(m) if isinstance(m, nn.Sequential) else [m])
    return out


def test_export_3d_input_layer_norm_and_flatten(tmp_path, rng):
    model = nn.Sequential(
        nn.Linear(6, 8), nn.LayerNorm(8), nn.ReLU(), nn.Flatten(), nn.Linear(24, 2)
    ).eval()
    proto = lincore.onnx.export(model, input_shape=(3, 6))
    assert [n.op_type for n in proto.graph.node][:3] == ["MatMul", "Add", "LayerNormalization"]
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for batch in BATCHES:
        x = rng.standard_normal((batch, 3, 6)).astype(np.float32)
        ours = np.asarray(model(x))
        theirs = sess.run(None, {"input": x})[0]
        assert ours.shape == theirs.shape
        # LayerNorm is not in the chain reference; the two implementations agree to rounding.
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_export_errors():
    with pytest.raises(ValueError, match="give input_shape"):
        lincore.onnx.export(nn.Sequential(nn.ReLU()))
    with pytest.raises(ValueError, match="has no dim"):
        lincore.onnx.export(nn.Sequential(nn.Linear(2, 2), nn.Softmax()))
    with pytest.raises(ValueError, match="Flatten"):
        lincore.onnx.export(nn.Sequential(nn.Flatten(0)), input_shape=(3,))

    class Mine(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(ValueError, match="Mine"):
        lincore.onnx.export(nn.Sequential(nn.Linear(2, 2), Mine()))
    with pytest.raises(TypeError, match="lincore nn.Module"):
        lincore.onnx.export("model")


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_export_int8_layers_as_onnx_quantized_ops(bias, tmp_path, rng):
    """A quantized layer exports as DynamicQuantizeLinear + MatMulInteger with lincore's codes
    and scales exactly; onnxruntime's result is within the error of its own quantization of x
    (per tensor, ONNX's rule) of the float64 product with the dequantized weights."""
    lincore.manual_seed(3)
    layer = lincore.quantize_dynamic(nn.Linear(40, 24, bias=bias))
    proto = lincore.onnx.export(nn.Sequential(layer, nn.ReLU()), tmp_path / "q.onnx")
    ops = [n.op_type for n in proto.graph.node]
    assert ops[:3] == ["DynamicQuantizeLinear", "MatMulInteger", "Cast"] and ops[-1] == "Relu"
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    np.testing.assert_array_equal(inits["0.weight_int8"], layer.int8_weight().T)
    np.testing.assert_array_equal(inits["0.weight_scale"], layer.scales())
    sess = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"])
    w = layer.dequantized_weight().astype(np.float64)
    b = np.zeros(24) if not bias else layer.bias().astype(np.float64)
    for batch in BATCHES:
        x = rng.standard_normal((batch, 40)).astype(np.float32)
        theirs = sess.run(None, {"input": x})[0]
        ref = np.maximum(x.astype(np.float64) @ w.T + b, 0)
        # ONNX's x step (per tensor, uint8); each x within half a step, plus fp32 rounding
        step = (max(float(x.max()), 0.0) - min(float(x.min()), 0.0)) / 255
        bound = np.abs(w).sum(axis=1) * step / 2 * 1.01 + 1e-5 * (1 + np.abs(ref))
        assert np.all(np.abs(theirs - ref) <= bound)
        ours = np.asarray(layer(lincore.from_numpy(x)))
        assert np.abs(np.maximum(ours, 0) - theirs).max() <= 2 * bound.max()


def test_export_a_quantized_mlp_runs_in_onnxruntime(tmp_path, rng):
    lincore.manual_seed(4)
    fp32 = nn.Sequential(nn.Linear(30, 20), nn.ReLU(), nn.Linear(20, 5), nn.Softmax(dim=1))
    model = lincore.quantize_dynamic(fp32)
    sess = ort.InferenceSession(
        lincore.onnx.export(model).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    x = rng.standard_normal((16, 30)).astype(np.float32)
    theirs = sess.run(None, {"input": x})[0]
    np.testing.assert_allclose(theirs, np.asarray(model(x)), atol=0.02)
    np.testing.assert_allclose(theirs, np.asarray(fp32(x)), atol=0.02)
    with pytest.raises(ValueError, match="int8 layers take float32"):
        lincore.onnx.export(nn.Sequential(nn.Linear(30, 4, dtype=lincore.float64), model[0]))
