"""Sequential's whole-stack path (row blocks through every layer in one C++ call) against the
same layers called one by one: bitwise equal, whatever the batch size, blocking or thread
count; and against the float64 reference layer by layer."""

from __future__ import annotations

import numpy as np
import pytest

import lincore
import lincore.nn as nn
from conftest import assert_linear_close, num_threads

STACKS = {
    "mlp-relu": lambda: [
        nn.Linear(33, 64),
        nn.ReLU(),
        nn.Linear(64, 17),
        nn.ReLU(),
        nn.Linear(17, 5),
    ],
    "act-first": lambda: [
        nn.Tanh(),
        nn.Linear(33, 40),
        nn.Identity(),
        nn.GELU(),
        nn.Linear(40, 8),
        nn.Sigmoid(),
    ],
    "leaky-no-bias": lambda: [
        nn.Linear(33, 31, bias=False),
        nn.LeakyReLU(0.3),
        nn.Linear(31, 2, bias=False),
    ],
    "single": lambda: [nn.Linear(33, 7)],
}


def one_by_one(layers, x):
    for layer in layers:
        x = layer(x)
    return x


@pytest.mark.parametrize("dtype", [lincore.float32, lincore.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("rows", [0, 1, 3, 13, 47, 48, 97, 200, 1000])
@pytest.mark.parametrize("stack", STACKS)
def test_sequential_whole_stack_bitwise_equal_to_layers(isa, stack, rows, dtype):
    lincore.manual_seed(rows)
    layers = STACKS[stack]()
    model = nn.Sequential(*layers).to(dtype)
    x = lincore.randn(rows, 33, dtype=dtype)
    expected = np.asarray(one_by_one(list(model), x))
    for threads in (1, 2):
        with num_threads(threads):
            got = np.asarray(model(x))
        assert got.shape == expected.shape
        assert np.array_equal(got, expected, equal_nan=True), (threads, stack, rows)


@pytest.mark.parametrize("dtype", [lincore.float32, lincore.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("rows", [1, 11, 23, 24, 25, 47, 48, 49, 95, 96, 97, 150])
def test_sequential_weights_past_l2_bitwise_equal_to_layers(isa, rows, dtype):
    """Weights of more than 1 MiB (csrc/nn/sequential.cpp, kStackInL2Bytes) take one row block
    per thread at few rows and go layer by layer at many: the rows here cross both thresholds
    for every family's register tile, at 1 and 2 threads."""
    lincore.manual_seed(rows)
    model = nn.Sequential(nn.Linear(700, 400), nn.ReLU(), nn.Linear(400, 9)).to(dtype)
    x = lincore.randn(rows, 700, dtype=dtype)
    with lincore.no_grad():
        expected = np.asarray(one_by_one(list(model), x))
        for threads in (1, 2):
            with num_threads(threads):
                got = np.asarray(model(x))
            assert np.array_equal(got, expected), (threads, rows)


def test_sequential_rows_independent_of_batch(rng):
    model = nn.Sequential(nn.Linear(20, 50), nn.ReLU(), nn.Linear(50, 10))
    x = rng.standard_normal((300, 20)).astype(np.float32)
    whole = np.asarray(model(lincore.tensor(x)))
    for i in (0, 47, 299):
        assert np.array_equal(whole[i], np.asarray(model(lincore.tensor(x[i : i + 1])))[0])


def test_sequential_each_layer_within_tolerance(rng):
    model = nn.Sequential(nn.Linear(64, 96), nn.Linear(96, 80), nn.Linear(80, 3))
    x = rng.standard_normal((150, 64)).astype(np.float32)
    y = np.asarray(model(lincore.tensor(x)))
    h = x
    for layer in model:
        w, b = np.asarray(layer.weight), np.asarray(layer.bias)
        out = np.asarray(layer(lincore.tensor(h)))
        assert_linear_close(out, h, w, b)
        h = out
    assert np.array_equal(y, h)


def test_sequential_batch_shapes_and_flatten():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.ReLU())
    x = lincore.randn(5, 3, 4)
    assert model(x).shape == (5, 4)
    mlp = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    for shape in [(4,), (0, 4), (2, 3, 4), (2, 1, 3, 1, 4)]:
        out = mlp(lincore.randn(*shape))
        assert out.shape == shape[:-1] + (2,)


def test_sequential_sees_new_weights_after_load_state_dict():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = lincore.randn(64, 3)
    before = np.asarray(model(x)).copy()
    state = {k: np.asarray(v) * 2 for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    after = np.asarray(model(x))
    assert not np.array_equal(before, after)
    assert np.array_equal(after, np.asarray(one_by_one(list(model), x)))


def test_sequential_width_mismatch_names_layer():
    model = nn.Sequential(nn.Linear(10, 18), nn.Linear(19, 5))
    with pytest.raises(RuntimeError, match=r"1x18 and 19x5.*layer 1"):
        model(lincore.randn(1, 10))


ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky": lambda: nn.LeakyReLU(0.1),
    "leaky0": lambda: nn.LeakyReLU(0.0),
    "leaky_neg": lambda: nn.LeakyReLU(-0.5),
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
}


@pytest.mark.parametrize("dtype", [lincore.float32, lincore.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_sequential_training_forward_and_grads_bitwise_equal_to_layers(isa, act, dtype):
    """The recorded forward fuses a Linear and the activation after it when the activation's
    derivative follows from its output (csrc/nn/activation.h); it must give the inference
    values, and the gradients of the layers called one by one (z-based backward), bit for bit."""
    lincore.manual_seed(7)
    model = nn.Sequential(
        nn.Linear(11, 9), ACTIVATIONS[act](), nn.Linear(9, 4), ACTIVATIONS[act]()
    ).to(dtype)
    with lincore.no_grad():
        model[0].weight[2] = 0.0  # pre-activations exactly 0 in column 2: relu'(0) = 0
        model[0].bias[2] = 0.0
    x = lincore.randn(37, 11, dtype=dtype)
    g = lincore.randn(37, 4, dtype=dtype)
    with lincore.no_grad():
        inference = np.asarray(model(x))

    def grads(run):
        for p in model.parameters():
            p.grad = None
        xr = x.detach().requires_grad_()
        y = run(xr)
        y.backward(g)
        return np.asarray(y.detach()), [np.asarray(xr.grad)] + [
            np.asarray(p.grad) for p in model.parameters()
        ]

    y_fused, fused = grads(model)
    y_layers, layered = grads(lambda xr: one_by_one(list(model), xr))
    assert np.array_equal(y_fused, inference, equal_nan=True)
    assert np.array_equal(y_layers, inference, equal_nan=True)
    for a, b in zip(fused, layered):
        assert np.array_equal(a, b, equal_nan=True)
