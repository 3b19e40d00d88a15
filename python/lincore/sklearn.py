"""lincore.from_sklearn: a fitted scikit-learn MLPClassifier or MLPRegressor as a lincore module
that computes what the estimator's predict_proba / predict do, as one native call. scikit-learn
is imported only when from_sklearn is called."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core, nn
from ._creation import as_tensor, tensor
from ._dtype import float32, float64
from ._interop import _linear
from .nn.module import Module
from .nn.parameter import Parameter

# scikit-learn's activation names (MLP*.activation, out_activation_) as lincore layers.
_ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "logistic": nn.Sigmoid,
    "identity": None,
    "softmax": lambda: nn.Softmax(dim=-1),
}


def from_sklearn(estimator: Any, dtype: Any = None) -> SklearnMLP:
    """A fitted sklearn.neural_network.MLPClassifier or MLPRegressor as a lincore module.

    Calling it gives the network's output activation (the classifier's class probabilities as a
    (N, n_outputs) tensor; the regressor's predictions); `predict_proba(X)` and `predict(X)`
    return numpy arrays equal to the estimator's (labels exactly; probabilities within
    lincore's tolerance rule). dtype: lincore.float64 (the default when the estimator's weights
    are float64, as scikit-learn fits them from float64 data) or lincore.float32."""
    try:
        from sklearn.neural_network import MLPClassifier, MLPRegressor
    except ImportError:  # no scikit-learn: the estimator cannot be one of its models
        MLPClassifier = MLPRegressor = ()  # noqa: N806
    if not isinstance(estimator, (MLPClassifier, MLPRegressor)):
        raise TypeError(
            "from_sklearn: expected a fitted sklearn.neural_network.MLPClassifier or "
            f"MLPRegressor, but got {type(estimator).__module__}.{type(estimator).__name__}"
        )
    coefs = getattr(estimator, "coefs_", None)
    if coefs is None:
        raise ValueError(
            f"from_sklearn: this {type(estimator).__name__} is not fitted yet; call fit first"
        )
    if dtype is None:
        dtype = float32 if coefs[0].dtype == np.float32 else float64
    if dtype not in (float32, float64):
        raise TypeError(f"from_sklearn: dtype must be lincore.float32 or float64, got {dtype}")
    return SklearnMLP(estimator, dtype)


class SklearnMLP(Module):
    """A scikit-learn MLP run by lincore (see lincore.from_sklearn). `net` is the nn.Sequential
    of its layers; `classes_` the classifier's labels (None for a regressor)."""

    def __init__(self, estimator: Any, dtype: Any) -> None:
        super().__init__()
        np_dtype = np.dtype(np.float32 if dtype is float32 else np.float64)
        hidden = _ACTIVATIONS.get(estimator.activation)
        out_act = estimator.out_activation_
        if estimator.activation not in _ACTIVATIONS or out_act not in _ACTIVATIONS:
            raise ValueError(
                f"from_sklearn: activation {estimator.activation!r} / {out_act!r} is not one of "
                f"{sorted(_ACTIVATIONS)}"
            )
        layers: list = []
        last = len(estimator.coefs_) - 1
        for i, (w, b) in enumerate(zip(estimator.coefs_, estimator.intercepts_)):
            weight = Parameter(tensor(np.asarray(w, np_dtype).T), requires_grad=False)
            bias = Parameter(tensor(np.asarray(b, np_dtype)), requires_grad=False)
            layers.append(_linear(weight, bias))
            act = _ACTIVATIONS[out_act] if i == last else hidden
            if act is not None:
                layers.append(act())
        self.net = nn.Sequential(*layers)
        self.eval()
        is_classifier = hasattr(estimator, "classes_")
        object.__setattr__(self, "_dtype", np_dtype)
        object.__setattr__(self, "classes_", estimator.classes_ if is_classifier else None)
        multilabel = is_classifier and estimator._label_binarizer.y_type_ == "multilabel-indicator"
        object.__setattr__(self, "_multilabel", multilabel)
        object.__setattr__(
            self, "_binary", is_classifier and out_act == "logistic" and not multilabel
        )
        object.__setattr__(self, "n_features_in_", int(estimator.n_features_in_))

    def forward(self, input: Any) -> Any:
        return self.net(input)

    def _out(self, X: Any) -> np.ndarray:
        x = X if isinstance(X, _core.Tensor) else as_tensor(np.asarray(X, self._dtype))
        return np.asarray(self.net(x))

    def predict_proba(self, X: Any) -> np.ndarray:
        """As the classifier's predict_proba: (N, n_classes) probabilities."""
        if self.classes_ is None:
            raise AttributeError("predict_proba: this model is a regressor; use predict")
        p = self._out(X)
        if self._binary:
            return np.hstack([1 - p, p])
        return p

    def predict(self, X: Any) -> np.ndarray:
        """As the estimator's predict: class labels, or the regressor's values."""
        y = self._out(X)
        if self.classes_ is None:
            return y.ravel() if y.shape[1] == 1 else y
        if self._multilabel:
            return (y > 0.5).astype(int)
        if self._binary:
            return self.classes_[(y.ravel() > 0.5).astype(int)]
        return self.classes_[np.argmax(y, axis=1)]
