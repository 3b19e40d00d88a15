"""PyTorch's function forms (lincore.add, ..., lincore.softmax) and the arguments issue #25 found
missing (add/sub alpha, div rounding_mode), against float64 numpy references; and the fixes it
found (transpose of a 0-d tensor records its node, relu passes the gradient at NaN). PyTorch's
own samples check the same against torch in tests/test_torch_samples.py."""

from __future__ import annotations

import numpy as np
import pytest

import lincore


def leaf(a):
    return lincore.tensor(np.asarray(a, np.float64)).requires_grad_()


@pytest.mark.parametrize("name,sign", [("add", 1), ("sub", -1)])
@pytest.mark.parametrize("alpha", [1, 2, -3.125])
def test_add_sub_alpha(rng, name, sign, alpha):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal(4)
    la, lb = leaf(a), leaf(b)
    for out in (getattr(lincore, name)(la, lb, alpha=alpha), getattr(la, name)(lb, alpha=alpha)):
        assert np.array_equal(np.asarray(out.detach()), a + sign * alpha * b)
        la.grad = lb.grad = None
        out.sum().backward()
        assert np.array_equal(np.asarray(la.grad), np.ones((3, 4)))
        assert np.array_equal(np.asarray(lb.grad), np.full(4, 3.0 * sign * alpha))


def test_alpha_float_with_integer_tensors_is_refused():
    with pytest.raises(RuntimeError, match="alpha must not be a floating point number"):
        lincore.add(lincore.tensor([1, 2]), lincore.tensor([3, 4]), alpha=0.5)
    assert lincore.add(lincore.tensor([1, 2]), lincore.tensor([3, 4]), alpha=2).tolist() == [7, 10]


@pytest.mark.parametrize("mode,ref", [("trunc", np.trunc), ("floor", np.floor)])
def test_div_rounding_mode(rng, mode, ref):
    a, b = rng.standard_normal((5, 3)) * 10, rng.standard_normal(3)
    la, lb = leaf(a), leaf(b)
    out = lincore.div(la, lb, rounding_mode=mode)
    assert np.array_equal(np.asarray(out.detach()), ref(a / b))
    assert out.requires_grad and out.grad_fn.name() == "DivBackward2"
    out.sum().backward()  # piecewise constant: zero gradients, as PyTorch's
    assert not np.asarray(la.grad).any() and not np.asarray(lb.grad).any()
    assert lincore.tensor([7, -7]).div(2, rounding_mode="floor").tolist() == [3, -4]
    big = 2**62 + 1  # exact: not through a float quotient
    assert lincore.tensor([big, -7]).div(-2, rounding_mode="trunc").tolist() == [-(big // 2), 3]
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        lincore.tensor([1, 2]).div(0, rounding_mode="floor")
    with pytest.raises(TypeError, match="must be Tensor or Number"):
        lincore.add(la, "a", alpha=2)
    with pytest.raises(RuntimeError, match="rounding_mode to be one of None, 'trunc', or 'floor'"):
        lincore.div(la, lb, rounding_mode="round")


def test_function_forms_are_the_methods(rng):
    a = rng.standard_normal((2, 3, 4))
    x = lincore.tensor(a)
    same = [
        (lincore.mul(x, 2), x * 2),
        (lincore.div(x, 2), x / 2),
        (lincore.sum(x, 1, True), x.sum(1, True)),
        (lincore.mean(x, (0, 2)), x.mean((0, 2))),
        (lincore.reshape(x, (6, 4)), x.reshape(6, 4)),
        (lincore.flatten(x, 1), x.flatten(1)),
        (lincore.transpose(x, 0, 2), x.transpose(0, 2)),
        (lincore.sigmoid(x), lincore.nn.functional.sigmoid(x)),
        (lincore.tanh(x), x.tanh()),
        (lincore.softmax(x, 1), lincore.nn.functional.softmax(x, 1)),
        (lincore.log_softmax(x, -1), x.log_softmax(-1)),
    ]
    for got, want in same:
        assert got.shape == want.shape and np.array_equal(np.asarray(got), np.asarray(want))
    assert np.allclose(np.asarray(x.sigmoid()), 1 / (1 + np.exp(-a)), rtol=1e-6)
    assert np.allclose(np.asarray(x.tanh()), np.tanh(a), rtol=1e-6)
    assert x.softmax(1, dtype=lincore.float64).dtype is lincore.float64


def test_transpose_of_a_scalar_keeps_autograd():
    x = lincore.tensor(1.5, requires_grad=True)
    y = x.transpose(0, 0)
    assert y.requires_grad and y.grad_fn.name() == "TransposeBackward0"
    (y * 3).backward()
    assert float(x.grad) == 3.0


def test_relu_passes_the_gradient_at_nan():
    x = lincore.tensor([float("nan"), -1.0, 0.0, 2.0], requires_grad=True)
    lincore.nn.functional.relu(x).sum().backward()
    assert np.asarray(x.grad).tolist() == [1.0, 0.0, 0.0, 1.0]  # PyTorch's threshold_backward
