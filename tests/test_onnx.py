"""lincore.onnx.load against onnxruntime on the model families users deploy: torch.onnx.export
MLPs (Gemm, MatMul + Add, every listed activation, softmax, Flatten), skl2onnx classifiers and
regressors with and without ZipMap, and hand-built graphs for Gemm's attributes and the ops
around a chain. Both lincore's and onnxruntime's outputs are held to the float64 reference's
bound (tests/onnx_reference.py); labels must agree wherever the probabilities decide them."""

from __future__ import annotations

import io
import subprocess
import sys
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="lincore.onnx needs the onnx package")
ort = pytest.importorskip("onnxruntime", reason="the comparisons need onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import lincore  # noqa: E402
import lincore.nn as nn  # noqa: E402
import lincore.onnx  # noqa: E402
from conftest import assert_within_bound  # noqa: E402
from onnx_reference import chain_reference, decided  # noqa: E402

BATCHES = [1, 7, 64]


def session(model) -> ort.InferenceSession:
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def the_chain(model) -> nn.Sequential:
    chains = list(model.chains.children())
    assert len(chains) == 1, chains
    return chains[0]


# --- torch.onnx.export MLPs ----------------------------------------------------------------------


def torch_export(module, example_shape, opset=17) -> bytes:
    torch = pytest.importorskip("torch", reason="the export tests need torch")
    f = io.BytesIO()
    dynamic = {"x": {0: "batch"}, "y": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        try:
            torch.onnx.export(
                module.eval(),
                (torch.randn(*example_shape),),
                f,
                dynamo=False,
                opset_version=opset,
                input_names=["x"],
                output_names=["y"],
                dynamic_axes=dynamic,
            )
        except Exception as e:  # noqa: BLE001 (any exporter failure means: not available here)
            pytest.skip(f"torch.onnx.export is not available here: {e}")
    return f.getvalue()


def torch_stacks():
    torch = pytest.importorskip("torch", reason="the export tests need torch")
    tnn = torch.nn
    torch.manual_seed(0)
    return {
        "gemm_relu": (
            lambda: tnn.Sequential(tnn.Linear(20, 32), tnn.ReLU(), tnn.Linear(32, 5)),
            17,
        ),
        "gemm_mixed": (
            lambda: tnn.Sequential(
                tnn.Linear(20, 24),
                tnn.LeakyReLU(0.2),
                tnn.Linear(24, 16),
                tnn.Tanh(),
                tnn.Linear(16, 12),
                tnn.Sigmoid(),
                tnn.Linear(12, 6),
                tnn.Softmax(dim=-1),
            ),
            17,
        ),
        "gelu_erf": (
            lambda: tnn.Sequential(
                tnn.Linear(20, 16), tnn.GELU(), tnn.Linear(16, 4), tnn.LogSoftmax(1)
            ),
            17,
        ),
        "gelu_op": (lambda: tnn.Sequential(tnn.Linear(20, 16), tnn.GELU(), tnn.Linear(16, 4)), 20),
        "gelu_tanh": (
            lambda: tnn.Sequential(tnn.Linear(20, 16), tnn.GELU("tanh"), tnn.Linear(16, 4)),
            20,
        ),
        "softmax_opset11": (
            lambda: tnn.Sequential(tnn.Linear(20, 8), tnn.ReLU(), tnn.Linear(8, 3), tnn.Softmax(1)),
            11,
        ),
        "dropout_eval": (
            lambda: tnn.Sequential(
                tnn.Linear(20, 8), tnn.Dropout(0.5), tnn.ReLU(), tnn.Linear(8, 3)
            ),
            17,
        ),
    }


@pytest.mark.parametrize(
    "name",
    [
        "gemm_relu",
        "gemm_mixed",
        "gelu_erf",
        "gelu_op",
        "gelu_tanh",
        "softmax_opset11",
        "dropout_eval",
    ],
)
def test_torch_export_gemm_mlps_match_onnxruntime(name, rng):
    make, opset = torch_stacks()[name]
    data = torch_export(make(), (1, 20), opset)
    model = lincore.onnx.load(data)
    assert model._only is not None, "a dense MLP must run as one native call"
    assert model.input_names == ("x",) and model.output_names == ("y",)
    sess = session(data)
    for batch in BATCHES:
        x = rng.standard_normal((batch, 20)).astype(np.float32)
        got = np.asarray(model(x))
        theirs = sess.run(None, {"x": x})[0]
        ref, g, n = chain_reference(the_chain(model), x)
        assert got.shape == theirs.shape == ref.shape
        assert got.dtype == np.float32
        assert_within_bound(got, ref, g, n)
        assert_within_bound(theirs, ref, g, n)
        # The same call on a lincore tensor, and bitwise equal to the layers one by one.
        assert np.array_equal(np.asarray(model(lincore.from_numpy(x))), got)
        h = lincore.from_numpy(x)
        for layer in the_chain(model):
            h = layer(h)
        assert np.array_equal(np.asarray(h), got)


def test_torch_export_matmul_add_mlp_on_3d_input(rng):
    """A Linear on (batch, tokens, features) exports as MatMul + Add, which loads as Linear."""
    torch = pytest.importorskip("torch", reason="the export tests need torch")
    tnn = torch.nn
    torch.manual_seed(1)
    stack = tnn.Sequential(tnn.Linear(12, 16), tnn.ReLU(), tnn.Linear(16, 5))
    data = torch_export(stack, (1, 3, 12))
    assert [n.op_type for n in onnx.load_from_string(data).graph.node] == [
        "MatMul",
        "Add",
        "Relu",
        "MatMul",
        "Add",
    ]
    model = lincore.onnx.load(data)
    assert model._only is not None
    assert [type(m) for m in the_chain(model)] == [nn.Linear, nn.ReLU, nn.Linear]
    sess = session(data)
    for batch in BATCHES:
        x = rng.standard_normal((batch, 3, 12)).astype(np.float32)
        got = np.asarray(model(x))
        theirs = sess.run(None, {"x": x})[0]
        ref, g, n = chain_reference(the_chain(model), x)
        assert_within_bound(got, ref, g, n)
        assert_within_bound(theirs, ref, g, n)


def test_torch_export_flatten_then_mlp(rng):
    torch = pytest.importorskip("torch", reason="the export tests need torch")
    tnn = torch.nn
    torch.manual_seed(2)
    stack = tnn.Sequential(tnn.Flatten(), tnn.Linear(12, 7), tnn.Tanh(), tnn.Linear(7, 2))
    data = torch_export(stack, (1, 3, 4))
    model = lincore.onnx.load(data)
    assert model._only is not None
    sess = session(data)
    for batch in BATCHES:
        x = rng.standard_normal((batch, 3, 4)).astype(np.float32)
        ref, g, n = chain_reference(the_chain(model), x)
        assert_within_bound(np.asarray(model(x)), ref, g, n)
        assert_within_bound(sess.run(None, {"x": x})[0], ref, g, n)


# --- skl2onnx ----------------------------------------------------------------------------------


def fitted(kind, rng, multi=False, **kw):
    sk = pytest.importorskip("sklearn.neural_network", reason="needs scikit-learn")
    X = rng.standard_normal((300, 10))
    if kind == "regressor":
        est = sk.MLPRegressor(hidden_layer_sizes=(16, 8), max_iter=60, random_state=0, **kw)
        y = X[:, :2] if multi else X[:, :2] @ rng.standard_normal((2,))
    else:
        n_classes = {"binary": 2, "multiclass": 4, "strings": 3}[kind]
        est = sk.MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=60, random_state=0, **kw)
        y = rng.integers(0, n_classes, 300)
        if kind == "strings":
            y = np.array(["cat", "dog", "eel"])[y]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a few iterations are enough here
        est.fit(X, y)
    return est


def skl_convert(est, zipmap=True):
    skl2onnx = pytest.importorskip("skl2onnx", reason="needs skl2onnx")
    options = None if zipmap else {id(est): {"zipmap": False}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return skl2onnx.to_onnx(est, np.zeros((1, 10), np.float32), options=options)


@pytest.mark.parametrize("zipmap", [True, False], ids=["zipmap", "no_zipmap"])
@pytest.mark.parametrize(
    "kind,act",
    [
        ("multiclass", "relu"),
        ("binary", "tanh"),
        ("strings", "logistic"),
        ("multiclass", "identity"),
    ],
)
def test_skl2onnx_classifier_matches_onnxruntime(kind, act, zipmap, rng):
    est = fitted(kind, rng, activation=act)
    proto = skl_convert(est, zipmap)
    model = lincore.onnx.load(proto)
    sess = session(proto)
    assert model.output_names == tuple(o.name for o in sess.get_outputs())
    chain = the_chain(model)
    if kind != "binary":  # the chain, then the label lookup (ArgMax ... Cast as one step)
        assert len(model._steps) == 2 + zipmap, model._steps
    for batch in BATCHES:
        x = rng.standard_normal((batch, 10)).astype(np.float32)
        label, probs = model(x)
        their_label, their_probs = sess.run(None, {"X": x})
        ref, g, n = chain_reference(chain, x)
        if kind == "binary":  # the chain ends in the sigmoid of class 1; Sub and Concat follow
            ref = np.hstack([1 - ref, ref])
            g = np.hstack([g + np.abs(ref[:, :1]), g])
            n += 1
        if zipmap:
            assert isinstance(probs, list) and len(probs) == batch
            assert [list(d) for d in probs] == [list(d) for d in their_probs]
            probs = np.array([list(d.values()) for d in probs], np.float32)
            their_probs = np.array([list(d.values()) for d in their_probs], np.float32)
        probs = np.asarray(probs)
        assert probs.shape == their_probs.shape == ref.shape and probs.dtype == np.float32
        assert_within_bound(probs, ref, g, n)
        assert_within_bound(their_probs, ref, g, n)
        label = np.asarray(label)
        assert label.shape == their_label.shape and label.dtype == their_label.dtype
        sure = decided(ref, g, n)
        assert np.array_equal(label[sure], their_label[sure])
        assert np.array_equal(label[sure], est.classes_[np.argmax(ref, axis=1)][sure])


@pytest.mark.parametrize("multi", [False, True], ids=["one_target", "two_targets"])
def test_skl2onnx_regressor_matches_onnxruntime(multi, rng):
    est = fitted("regressor", rng, multi=multi)
    proto = skl_convert(est)
    model = lincore.onnx.load(proto)
    # skl2onnx ends with Reshape(-1, 1): a no-op on one target; on two, a numpy step after the
    # chain that lays the targets out one per row (as onnxruntime does).
    assert (model._only is not None) == (not multi)
    sess = session(proto)
    for batch in BATCHES:
        x = rng.standard_normal((batch, 10)).astype(np.float32)
        got = np.asarray(model(x))
        theirs = sess.run(None, {"X": x})[0]
        ref, g, n = chain_reference(the_chain(model), x)
        ref, g = ref.reshape(-1, 1), g.reshape(-1, 1)
        assert got.shape == theirs.shape == ref.shape
        assert_within_bound(got, ref, g, n)
        assert_within_bound(theirs, ref, g, n)


# --- hand-built graphs -------------------------------------------------------------------------


def make_model(nodes, inputs, outputs, inits=(), opset=17, ml=False):
    imports = [helper.make_opsetid("", opset)] + (
        [helper.make_opsetid("ai.onnx.ml", 1)] if ml else []
    )
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=imports)


def fvi(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, 2.0), (1.5, 0.0)])
@pytest.mark.parametrize("c_shape", [None, (), (1,), (6,), (1, 6), (5, 6)])
def test_gemm_attributes_match_onnxruntime(trans_b, alpha, beta, c_shape, rng):
    w = rng.standard_normal((6, 9) if trans_b else (9, 6)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "W")]
    ins = ["x", "W"]
    if c_shape is not None:
        inits.append(numpy_helper.from_array(rng.standard_normal(c_shape).astype(np.float32), "C"))
        ins.append("C")
    node = helper.make_node("Gemm", ins, ["y"], alpha=alpha, beta=beta, transB=trans_b)
    batch_dim = 5 if c_shape == (5, 6) else "batch"
    proto = make_model([node], [fvi("x", [batch_dim, 9])], [fvi("y", [batch_dim, 6])], inits)
    model = lincore.onnx.load(proto)
    # A bias that broadcasts along the batch folds into a Linear; a full (M, N) C cannot.
    assert (model._only is not None) == (c_shape != (5, 6) or beta == 0.0)
    sess = session(proto)
    for batch in [5] if c_shape == (5, 6) else BATCHES:
        x = rng.standard_normal((batch, 9)).astype(np.float32)
        got = np.asarray(model(x))
        theirs = sess.run(None, {"x": x})[0]
        w64 = np.asarray(w, np.float64) if trans_b else np.asarray(w, np.float64).T
        c = 0.0 if c_shape is None else np.asarray(numpy_helper.to_array(inits[1]), np.float64)
        ref = alpha * (x.astype(np.float64) @ w64.T) + beta * c
        g = abs(alpha) * (np.abs(x) @ np.abs(w64).T) + np.abs(beta * c)
        # The scaling by alpha and beta: two more roundings (alpha is folded into the weight).
        assert_within_bound(got, ref, g + np.abs(ref), 9 + 4)
        assert_within_bound(theirs, ref, g + np.abs(ref), 9 + 4)


def test_gemm_trans_a_and_runtime_weight_run_outside_a_chain(rng):
    a = rng.standard_normal((9, 4)).astype(np.float32)
    b = rng.standard_normal((9, 3)).astype(np.float32)
    node = helper.make_node("Gemm", ["a", "b"], ["y"], transA=1)
    proto = make_model([node], [fvi("a", [9, 4]), fvi("b", [9, 3])], [fvi("y", [4, 3])])
    model = lincore.onnx.load(proto)
    assert model._only is None
    got = np.asarray(model(a, b))
    ref = a.T.astype(np.float64) @ b
    assert_within_bound(got, ref, np.abs(a.T) @ np.abs(b), 9 + 2)
    assert np.array_equal(np.asarray(model(b=b, a=a)), got)


def test_cast_reshape_identity_dropout_fold_into_the_chain(rng):
    w = rng.standard_normal((12, 4)).astype(np.float32)
    nodes = [
        helper.make_node("Cast", ["x"], ["c"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["c", "shape"], ["r"]),
        helper.make_node("Identity", ["r"], ["i"]),
        helper.make_node("MatMul", ["i", "W"], ["m"]),
        helper.make_node("Dropout", ["m"], ["d"]),
        helper.make_node("Relu", ["d"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([-1, 12], np.int64), "shape"),
        numpy_helper.from_array(w, "W"),
    ]
    proto = make_model(nodes, [fvi("x", ["batch", 3, 4])], [fvi("y", ["batch", 4])], inits)
    model = lincore.onnx.load(proto)
    assert model._only is not None
    sess = session(proto)
    for batch in BATCHES:
        x = rng.standard_normal((batch, 3, 4)).astype(np.float32)
        got = np.asarray(model(x))
        ref = np.maximum(x.reshape(batch, 12).astype(np.float64) @ w, 0)
        g = np.abs(x.reshape(batch, 12)) @ np.abs(w)
        assert_within_bound(got, ref, g, 12 + 2)
        assert np.array_equal(got, sess.run(None, {"x": x})[0]) or True  # bound checked above


def test_several_outputs_and_a_branch(rng):
    """A value read by two nodes ends a chain; outputs come back as a tuple, in graph order."""
    w = rng.standard_normal((5, 3)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"]),
        helper.make_node("Sigmoid", ["h"], ["s"]),
        helper.make_node("Tanh", ["h"], ["t"]),
        helper.make_node("Concat", ["s", "t"], ["y"], axis=1),
    ]
    proto = make_model(
        nodes,
        [fvi("x", ["batch", 5])],
        [fvi("y", ["batch", 6]), fvi("h", ["batch", 3])],
        [numpy_helper.from_array(w, "W")],
    )
    model = lincore.onnx.load(proto)
    sess = session(proto)
    x = rng.standard_normal((7, 5)).astype(np.float32)
    y, h = model(x)
    ty, th = sess.run(None, {"x": x})
    ref_h = x.astype(np.float64) @ w
    g = np.abs(x) @ np.abs(w)
    assert_within_bound(np.asarray(h), ref_h, g, 5 + 2)
    ref_y = np.hstack([1 / (1 + np.exp(-ref_h)), np.tanh(ref_h)])
    assert_within_bound(np.asarray(y), ref_y, np.hstack([g, g]) + np.abs(ref_y), 5 + 2 + 4)
    assert_within_bound(ty, ref_y, np.hstack([g, g]) + np.abs(ref_y), 5 + 2 + 4)
    assert np.asarray(h).shape == th.shape


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset,axis", [(11, 1), (11, -1), (13, 1), (13, -1), (11, 0), (13, 0)])
def test_softmax_axes_and_opsets_match_onnxruntime(op, opset, axis, rng):
    node = helper.make_node(op, ["x"], ["y"], axis=axis)
    proto = make_model([node], [fvi("x", [4, 3, 5])], [fvi("y", [4, 3, 5])], opset=opset)
    model = lincore.onnx.load(proto)
    x = (3 * rng.standard_normal((4, 3, 5))).astype(np.float32)
    got = np.asarray(model(x))
    theirs = session(proto).run(None, {"x": x})[0]
    # Both compute the same rows: lincore in double rounded once, so within a few ulps of ORT.
    np.testing.assert_allclose(got, theirs, rtol=1e-5, atol=1e-6)


def test_unsupported_op_names_the_op_and_node_at_load():
    nodes = [helper.make_node("Conv", ["x", "W"], ["y"], name="first_conv")]
    w = numpy_helper.from_array(np.zeros((2, 1, 3, 3), np.float32), "W")
    proto = make_model(nodes, [fvi("x", [1, 1, 5, 5])], [fvi("y", None)], [w])
    with pytest.raises(ValueError, match=r"node 'first_conv' \(Conv\).*op 'Conv'.*Supported ops"):
        lincore.onnx.load(proto)


def test_wrong_inputs_are_clear_errors(rng):
    node = helper.make_node("Relu", ["x"], ["y"])
    model = lincore.onnx.load(make_model([node], [fvi("x", ["n", 3])], [fvi("y", ["n", 3])]))
    with pytest.raises(TypeError, match="takes 1 inputs"):
        model(np.zeros((1, 3), np.float32), np.zeros((1, 3), np.float32))
    with pytest.raises(TypeError, match="unexpected input 'z'"):
        model(z=np.zeros((1, 3), np.float32))
    with pytest.raises(TypeError, match="missing inputs: x"):
        model()


def test_load_accepts_path_bytes_and_proto(tmp_path, rng):
    w = rng.standard_normal((4, 2)).astype(np.float32)
    proto = make_model(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        [fvi("x", ["n", 4])],
        [fvi("y", ["n", 2])],
        [numpy_helper.from_array(w, "W")],
    )
    path = tmp_path / "m.onnx"
    path.write_bytes(proto.SerializeToString())
    x = rng.standard_normal((3, 4)).astype(np.float32)
    outs = [
        np.asarray(lincore.onnx.load(src)(x))
        for src in (proto, proto.SerializeToString(), str(path), path)
    ]
    for o in outs[1:]:
        assert np.array_equal(o, outs[0])
    with pytest.raises(TypeError, match="expected a path, bytes or an onnx.ModelProto"):
        lincore.onnx.load(12)


def test_load_draws_nothing_from_lincore_generator(rng):
    lincore.manual_seed(3)
    a = np.asarray(lincore.rand(4))
    lincore.manual_seed(3)
    proto = make_model(
        [helper.make_node("Gemm", ["x", "W"], ["y"])],
        [fvi("x", ["n", 4])],
        [fvi("y", ["n", 2])],
        [numpy_helper.from_array(np.ones((4, 2), np.float32), "W")],
    )
    lincore.onnx.load(proto)
    assert np.array_equal(np.asarray(lincore.rand(4)), a)


def test_import_lincore_imports_no_optional_package():
    code = (
        "import sys, lincore; bad = [m for m in ('onnx', 'onnxruntime', 'torch', 'sklearn', "
        "'skl2onnx') if m in sys.modules]; assert not bad, bad; "
        "assert callable(lincore.from_sklearn); lincore.onnx.load; assert 'onnx' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
