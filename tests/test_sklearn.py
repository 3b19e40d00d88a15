"""lincore.from_sklearn: fitted MLPClassifier / MLPRegressor as lincore modules. Labels equal
scikit-learn's exactly; probabilities and regression values are within the tolerance rule of the
float64 reference (tests/onnx_reference.py), as are scikit-learn's own."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

sk = pytest.importorskip("sklearn.neural_network", reason="from_sklearn tests need scikit-learn")

import lincore  # noqa: E402
from conftest import assert_within_bound  # noqa: E402
from onnx_reference import chain_reference, decided  # noqa: E402

BATCHES = [1, 7, 64]


def fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a few iterations are enough here
        return est.fit(X, y)


def rounding_of_inputs(model, dtype) -> int:
    """Roundings to add to the float64 reference's n for a float32 model: x and each weight
    rounded to float32 (relative error u on each |x||w| term, so within G)."""
    linears = sum(isinstance(m, lincore.nn.Linear) for m in model.net)
    return 0 if dtype is None else 2 * linears


def targets(kind, rng, n):
    return {
        "binary": lambda: rng.integers(0, 2, n),
        "multiclass": lambda: rng.integers(0, 5, n),
        "strings": lambda: np.array(["ant", "bee", "cat"])[rng.integers(0, 3, n)],
        "multilabel": lambda: rng.integers(0, 2, (n, 3)),
    }[kind]()


@pytest.mark.parametrize("dtype", [None, lincore.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("act", ["relu", "tanh", "logistic", "identity"])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "strings", "multilabel"])
def test_classifier_matches_predict_and_predict_proba(kind, act, dtype, rng):
    X = rng.standard_normal((400, 12))
    est = fit(
        sk.MLPClassifier((24, 10), activation=act, max_iter=40, random_state=1),
        X,
        targets(kind, rng, 400),
    )
    model = lincore.from_sklearn(est, dtype=dtype)
    assert isinstance(model, lincore.nn.Module)
    exact = lincore.from_sklearn(est).net  # scikit-learn's float64 weights, as they are
    for batch in BATCHES:
        x = rng.standard_normal((batch, 12))
        probs, theirs = model.predict_proba(x), est.predict_proba(x)
        assert probs.shape == theirs.shape
        out = np.asarray(model(lincore.tensor(x, dtype=dtype or lincore.float64)))
        ref, g, n = chain_reference(exact, x)
        n += rounding_of_inputs(model, dtype)
        assert_within_bound(out, ref, g, n)
        if kind == "binary":
            ref, g = np.hstack([1 - ref, ref]), np.hstack([g + np.abs(1 - ref), g])
            n += 1
        assert_within_bound(probs, ref, g, n)
        assert_within_bound(theirs, ref, g, n)
        labels = model.predict(x)
        if dtype is None:  # float64, as scikit-learn computes: the same labels
            assert np.array_equal(labels, est.predict(x))
            assert labels.dtype == est.predict(x).dtype
        elif kind != "multilabel":  # float32: the same wherever the probabilities decide
            sure = decided(ref, g, n)
            assert np.array_equal(labels[sure], est.predict(x)[sure])


@pytest.mark.parametrize("dtype", [None, lincore.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("n_targets", [1, 3])
def test_regressor_matches_predict(n_targets, dtype, rng):
    X = rng.standard_normal((300, 8))
    y = X[:, :n_targets] * 2 + 1
    est = fit(
        sk.MLPRegressor(hidden_layer_sizes=(16,), max_iter=50, random_state=0),
        X,
        y.ravel() if n_targets == 1 else y,
    )
    model = lincore.from_sklearn(est, dtype=dtype)
    exact = lincore.from_sklearn(est).net
    for batch in BATCHES:
        x = rng.standard_normal((batch, 8))
        got, theirs = model.predict(x), est.predict(x)
        assert got.shape == theirs.shape
        ref, g, n = chain_reference(exact, x)
        n += rounding_of_inputs(model, dtype)
        ref, g = ref.reshape(theirs.shape), g.reshape(theirs.shape)
        assert_within_bound(got, ref, g, n)
        assert_within_bound(theirs, ref, g, n)
    with pytest.raises(AttributeError, match="regressor"):
        model.predict_proba(x)


def test_one_native_run_and_lincore_tensors_in(rng):
    X = rng.standard_normal((100, 5))
    est = fit(sk.MLPClassifier((8,), max_iter=20, random_state=0), X, rng.integers(0, 3, 100))
    model = lincore.from_sklearn(est)
    assert len(model.net._current_plan().segments) == 1
    x = rng.standard_normal((3, 5))
    assert np.array_equal(model.predict_proba(lincore.tensor(x)), model.predict_proba(x))
    assert np.array_equal(model.predict_proba(x.tolist()), model.predict_proba(x))


def test_errors_are_clear(rng):
    with pytest.raises(ValueError, match="not fitted"):
        lincore.from_sklearn(sk.MLPClassifier())
    lin = pytest.importorskip("sklearn.linear_model")
    with pytest.raises(TypeError, match="MLPClassifier or MLPRegressor.*LogisticRegression"):
        lincore.from_sklearn(lin.LogisticRegression())
    with pytest.raises(TypeError, match="MLPClassifier"):
        lincore.from_sklearn("model")
    X = rng.standard_normal((50, 3))
    est = fit(sk.MLPRegressor(hidden_layer_sizes=(4,), max_iter=5), X, X[:, 0])
    with pytest.raises(TypeError, match="dtype"):
        lincore.from_sklearn(est, dtype=lincore.int64)
