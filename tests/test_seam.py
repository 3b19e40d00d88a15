# The seam between Python and the C++ core (csrc/bindings): state the core reads is typed fields
# it owns (a tensor's autograd state, a Linear's weight, bias and pack cache, the grad-mode flag,
# the load counter), never a Python object's __dict__; and the load rule (load_guard.h) holds
# for every forward path: F.linear, Linear, a Sequential that is one native run, and one with a
# Python module between runs.

import gc
import threading
import weakref

import numpy as np
import pytest

import lincore
import lincore.nn as nn
import lincore.nn.functional as F

WAIT = 30.0  # seconds; a hang is a failure, never a stuck suite


def test_autograd_state_is_typed_and_grad_fn_read_only():
    x = lincore.randn(2, 3).requires_grad_()
    y = nn.Linear(3, 4)(x)
    assert type(y.grad_fn).__name__ == "AddmmBackward0" and y.requires_grad
    assert vars(y) == {} and vars(x) == {}
    with pytest.raises(AttributeError):
        y.grad_fn = None  # as torch: grad_fn is set by the op that made the tensor
    d = y.detach()  # a new object starts with no autograd state
    assert d.grad_fn is None and not d.requires_grad and d._grad is None


def test_autograd_fields_are_seen_by_the_garbage_collector():
    a = lincore.randn(3).requires_grad_()
    a.grad = a  # a cycle through a typed field
    ref = weakref.ref(a)
    del a
    gc.collect()
    assert ref() is None


def test_linear_state_is_typed_fields_with_torchs_behaviour():
    layer = nn.Linear(3, 2)
    assert "weight" not in vars(layer) and "bias" not in vars(layer)  # as in torch
    assert layer.weight is layer._parameters["weight"]
    x = lincore.randn(4, 3)
    new = nn.Parameter(lincore.zeros(2, 3))
    layer.weight = new
    assert layer.weight is new and layer._parameters["weight"] is new
    assert np.array_equal(np.asarray(layer(x).detach()), np.broadcast_to(layer.bias, (4, 2)))
    layer.bias = None
    assert np.array_equal(np.asarray(layer(x).detach()), np.zeros((4, 2), np.float32))
    del layer.weight
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'weight'"):
        _ = layer.weight
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'weight'"):
        layer(x)


def _models():
    class Double(nn.Module):
        def forward(self, x):
            return x * 2

    lin = nn.Linear(3, 3)
    one_run = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 3))
    segments = nn.Sequential(nn.Linear(3, 3), Double(), nn.Linear(3, 3))
    return {"Linear": lin, "Sequential": one_run, "Sequential with a Python module": segments}


@pytest.mark.parametrize("name", list(_models()))
def test_a_forward_during_a_load_waits_for_it_and_sees_the_new_weights(name):
    model = _models()[name]
    x = lincore.randn(2, 3)
    new_state = {k: lincore.zeros(*v.shape) for k, v in model.state_dict().items()}
    got, started = {}, threading.Event()

    def forward():
        started.set()
        with lincore.no_grad():
            got["y"] = np.asarray(model(x))

    with lincore._core.parameter_load():
        assert lincore._core._load_epoch() % 2 == 1
        # The load writes the parameters while a forward in another thread runs into it.
        for k, v in model.state_dict().items():
            v._copy_from(new_state[k])
        t = threading.Thread(target=forward)
        t.start()
        assert started.wait(WAIT)
        t.join(0.2)
        assert t.is_alive(), "the forward did not wait for the load"
        # The loading thread's own forwards run (the lock is reentrant), on the new weights.
        with lincore.no_grad():
            assert not np.asarray(model(x)).any()
    t.join(WAIT)
    assert not t.is_alive()
    assert lincore._core._load_epoch() % 2 == 0
    assert not got["y"].any()


def test_functional_linear_does_not_take_the_load_lock():
    # F.linear has no module whose weights a load could be writing: it never waits.
    w, x = lincore.randn(2, 3), lincore.randn(4, 3)
    done = []
    with lincore._core.parameter_load():
        t = threading.Thread(target=lambda: done.append(F.linear(x, w)))
        t.start()
        t.join(WAIT)
        assert done and tuple(done[0].shape) == (4, 2)


def test_grad_mode_is_the_cores_and_per_thread():
    seen = {}

    def other():
        seen["other"] = lincore.is_grad_enabled()

    with lincore.no_grad():
        assert not lincore._core.is_grad_enabled()
        t = threading.Thread(target=other)
        t.start()
        t.join(WAIT)
    assert seen == {"other": True} and lincore.is_grad_enabled()
