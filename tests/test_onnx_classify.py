"""lincore.onnx's one-call path for the common classifier graph (csrc/bindings/classify.cpp): a
dense chain to the probabilities, then the label of each row's arg-max and optionally ZipMap's
dicts, as skl2onnx writes scikit-learn's MLPClassifier. Its results must be exactly those of the
general step-by-step path (the same chain, numpy's argmax and take), which test_onnx.py holds to
onnxruntime and the float64 reference; here: both paths agree on int and string labels, with and
without ZipMap, at batch 0 to 300, on NaN, after the chain's weights or members change, and on
bad input."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("onnx", reason="lincore.onnx needs the onnx package")
skl2onnx = pytest.importorskip("skl2onnx", reason="needs skl2onnx")
sk = pytest.importorskip("sklearn.neural_network", reason="needs scikit-learn")

import lincore  # noqa: E402
import lincore.nn as nn  # noqa: E402
import lincore.onnx  # noqa: E402

LABELS = {
    "ints": np.array([3, 7, 11, 20]),
    "strings": np.array(["cat", "dog", "eel", "fox"]),
}


def classifier(labels: str, zipmap: bool, rng):
    X = rng.standard_normal((200, 10))
    y = LABELS[labels][rng.integers(0, 4, 200)]
    est = sk.MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=40, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a few iterations are enough here
        est.fit(X, y)
        options = None if zipmap else {id(est): {"zipmap": False}}
        proto = skl2onnx.to_onnx(est, np.zeros((1, 10), np.float32), options=options)
    return est, lincore.onnx.load(proto)


def general(model, x):
    """The step-by-step path the fast one replaces."""
    return model._run(model._bind((x,), {}))


def assert_same(got, want) -> None:
    assert len(got) == len(want) == 2
    for g, w in zip(got, want):
        assert type(g) is type(w)
        if isinstance(w, list):  # ZipMap: the same dicts, keys in the same order
            assert [list(d.items()) for d in g] == [list(d.items()) for d in w]
        else:
            gn, wn = np.asarray(g), np.asarray(w)
            assert gn.dtype == wn.dtype and gn.shape == wn.shape
            assert np.array_equal(gn, wn, equal_nan=gn.dtype.kind == "f")


@pytest.mark.parametrize("zipmap", [False, True], ids=["no_zipmap", "zipmap"])
@pytest.mark.parametrize("labels", ["ints", "strings"])
def test_fast_path_equals_the_general_path(labels, zipmap, rng):
    est, model = classifier(labels, zipmap, rng)
    assert isinstance(model._only, lincore._core.ChainRun)
    for batch in (0, 1, 2, 7, 64, 300):
        x = rng.standard_normal((batch, 10)).astype(np.float32)
        got = model(x)
        assert_same(got, general(model, x))
        assert_same(model(lincore.from_numpy(x)), got)
        label = np.asarray(got[0])
        assert label.shape == (batch,)
        if labels == "ints":
            assert isinstance(got[0], lincore.Tensor) and label.dtype == np.int64
        else:
            assert isinstance(got[0], np.ndarray) and label.dtype == object
        assert set(label.tolist()) <= set(est.classes_.tolist())
        if zipmap:
            assert isinstance(got[1], list) and len(got[1]) == batch
            assert all(list(d) == est.classes_.tolist() for d in got[1])
            assert all(type(v) is float for d in got[1] for v in d.values())


def test_nan_rows_take_numpy_s_argmax(rng):
    _, model = classifier("ints", False, rng)
    x = rng.standard_normal((3, 10)).astype(np.float32)
    x[1, 4] = np.nan  # the whole row of probabilities is NaN: numpy's argmax says 0
    got = model(x)
    assert np.isnan(np.asarray(got[1])[1]).all()
    assert_same(got, general(model, x))


def test_labels_do_not_leak_references(rng):
    _, model = classifier("strings", True, rng)
    x = rng.standard_normal((5, 10)).astype(np.float32)
    label = str(np.asarray(model(x)[0])[0])
    before = sys.getrefcount(label)
    for _ in range(200):
        out = model(x)
    del out
    assert sys.getrefcount(label) == before


def test_new_weights_and_members_are_seen(rng):
    _, model = classifier("ints", True, rng)
    x = rng.standard_normal((9, 10)).astype(np.float32)
    before = model(x)
    chain = next(model.chains.children())
    state = {k: v * 0.5 for k, v in model.state_dict().items()}
    model.load_state_dict(state)  # in place: the same plan, new weights
    after = model(x)
    assert_same(after, general(model, x))
    assert not np.array_equal(np.asarray(before[0]), np.asarray(after[0])) or any(
        a != b for a, b in zip(before[1], after[1])
    )

    class Twice(nn.Module):  # a Python module: the chain is no longer one native run
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, v):
            return self.inner(v) * 2.0

    linear_at = next(i for i, m in enumerate(chain) if isinstance(m, nn.Linear))
    chain[linear_at] = Twice(chain[linear_at])
    assert model._only(x) is NotImplemented
    assert_same(model(x), general(model, x))


def test_bad_input_is_a_clear_error(rng):
    _, model = classifier("strings", True, rng)
    wrong_rank = r"input 'X': expected a 2-D tensor \(batch, features\), got shape \[10\]"
    with pytest.raises(ValueError, match=wrong_rank):
        model(np.zeros(10, np.float32))
    with pytest.raises(ValueError, match=r"got shape \[1, 2, 10\]"):
        model(np.zeros((1, 2, 10), np.float32))
    with pytest.raises(RuntimeError, match=r"cannot be multiplied \(2x9 and 10x16\)"):
        model(np.zeros((2, 9), np.float32))
    with pytest.raises(RuntimeError, match="must have the same dtype"):
        model(np.zeros((2, 10), np.float64))
    with pytest.raises(TypeError, match="takes 1 inputs"):
        model(np.zeros((2, 10), np.float32), np.zeros((2, 10), np.float32))


def test_other_graphs_keep_the_general_path(rng):
    X = rng.standard_normal((100, 10))
    est = sk.MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, rng.integers(0, 2, 100))  # binary: a sigmoid, then Sub and Concat
        proto = skl2onnx.to_onnx(est, np.zeros((1, 10), np.float32))
    model = lincore.onnx.load(proto)
    assert model._only is None


def test_a_plain_chain_is_one_call_too(rng):
    from onnx import TensorProto, helper, numpy_helper

    w = rng.standard_normal((6, 4)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", ["x", "W", "B"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 6])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    model = lincore.onnx.load(helper.make_model(graph))
    assert isinstance(model._only, lincore._core.ChainRun)
    chain = next(model.chains.children())
    for batch in (0, 1, 5):
        x = rng.standard_normal((batch, 4)).astype(np.float32)
        got = model(x)
        assert isinstance(got, lincore.Tensor)
        assert np.array_equal(np.asarray(got), np.asarray(chain(x)))
        assert np.array_equal(np.asarray(model.forward(lincore.from_numpy(x))), np.asarray(got))
    chain[1] = nn.Sigmoid()  # another native layer: a new plan, seen at the next call
    x = rng.standard_normal((3, 4)).astype(np.float32)
    assert np.array_equal(np.asarray(model(x)), np.asarray(chain(x)))
    assert np.all(np.asarray(model(x)) > 0)
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        model(np.zeros((2, 5), np.float32))


def test_threads_share_one_run(rng):
    import threading

    _, model = classifier("strings", True, rng)
    x = rng.standard_normal((16, 10)).astype(np.float32)
    want = general(model, x)
    chain = next(model.chains.children())
    errors = []

    def call():
        try:
            for _ in range(50):
                assert_same(model(x), want)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(20):  # plans rebuilt meanwhile: each call holds the plan it runs
        chain[0] = nn.Identity()
    for t in threads:
        t.join()
    assert not errors, errors


@pytest.mark.parametrize("labels", ["ints", "strings"])
def test_a_copy_runs_its_own_chain(labels, rng):
    import copy

    _, model = classifier(labels, True, rng)
    x = rng.standard_normal((6, 10)).astype(np.float32)
    twin = copy.deepcopy(model)
    assert isinstance(twin._only, lincore._core.ChainRun) and twin._only is not model._only
    assert_same(twin(x), model(x))
    twin.load_state_dict({k: v * 0.0 for k, v in twin.state_dict().items()})
    assert_same(model(x), general(model, x))  # the original keeps its weights
    probs = np.array([list(d.values()) for d in twin(x)[1]])
    assert np.allclose(probs, 1 / len(LABELS[labels]))  # zero weights: uniform
