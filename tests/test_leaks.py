# Leaks (docs/testing.md, "Robustness"): thousands of calls, successful and failing (every
# error path of the bad-input table), leave the process's resident memory flat and every input's
# reference count unchanged.
#
# Method (assert_flat): run the call N/5 times to warm up (caches, pools, arenas settle), collect
# garbage, take the reference counts of the inputs and the resident set size (/proc/self/statm),
# run it N more times, collect, and compare. The outputs are a few KiB each, so a call that leaks
# its result (or any buffer of that size) grows RSS by tens of MiB over N calls; the slack below
# is 2 MiB, i.e. less than ~1 KiB per call. A one-off step (a new malloc arena, a page of allocator
# metadata) is told apart from a leak by measuring up to three rounds: a leak grows every round.
#
# Under AddressSanitizer (.ci/sanitize sets LINCORE_SANITIZED=1), freed memory sits in ASan's
# quarantine (256 MiB by default) before it is reused, so RSS climbs by design: there the loops
# still run (every error path under ASan) and the reference counts are still checked, but RSS is
# not.

import gc
import io
import json
import os
import struct
import sys

import numpy as np
import pytest

import lincore
import lincore.nn as nn

SANITIZED = os.environ.get("LINCORE_SANITIZED") == "1"
PAGE = os.sysconf("SC_PAGESIZE")
SLACK = 2 * 2**20  # bytes of RSS growth allowed over one round of N calls
N = 5000  # calls per round for the cheap scenarios
N_SLOW = 2000  # calls per round for the ones that take ~0.2 ms and more
ROUNDS = 3

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc/self/statm (Linux)"
)


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def refcounts(objs):
    return [sys.getrefcount(o) for o in objs]


def assert_flat(step, inputs=(), n=N):
    """Runs step() n // 5 times to warm up, then n times per round: the inputs' reference counts
    must be the same after every round and RSS must grow by less than SLACK in some round."""
    inputs = list(inputs)
    for _ in range(max(n // 5, 50)):
        step()
    gc.collect()
    refs = refcounts(inputs)
    growth = []
    for _ in range(ROUNDS):
        before = rss()
        for _ in range(n):
            step()
        gc.collect()
        growth.append(rss() - before)
        assert refcounts(inputs) == refs, "an input's reference count changed"
        if SANITIZED or growth[-1] < SLACK:
            return
    pytest.fail(
        f"RSS grew by {[g // 1024 for g in growth]} KiB in {ROUNDS} rounds of {n} calls "
        f"(allowed: {SLACK // 1024} KiB in one round)"
    )


def raises(exc, fn, *args, **kwargs):
    """A step that must raise exc (and nothing else)."""

    def step():
        try:
            fn(*args, **kwargs)
        except exc:
            return
        raise AssertionError(f"{fn!r} did not raise {exc.__name__}")

    return step


def seeded(*layers):
    lincore.manual_seed(11)
    return layers[0]() if len(layers) == 1 else nn.Sequential(*(make() for make in layers))


# --- successful calls ----------------------------------------------------------------------------


def test_leaks_linear_forward_no_grad():
    layer = seeded(lambda: nn.Linear(64, 32))
    x = lincore.randn(16, 64)

    def step():
        with lincore.no_grad():
            y = layer(x)
        assert y.shape == (16, 32)

    assert_flat(step, [layer, layer.weight, layer.bias, x])


def test_leaks_linear_forward_recorded():
    layer = seeded(lambda: nn.Linear(64, 32))
    x = lincore.randn(16, 64, requires_grad=True)

    def step():
        y = layer(x)
        assert y.grad_fn is not None

    assert_flat(step, [layer, layer.weight, layer.bias, x])


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_leaks_linear_backward_and_optimizer_step(optimizer):
    layer = seeded(lambda: nn.Linear(64, 32))
    x = lincore.randn(16, 64)
    opt = getattr(lincore.optim, optimizer)(layer.parameters(), lr=1e-4)

    def step():
        opt.zero_grad()
        layer(x).sum().backward()
        opt.step()

    assert_flat(step, [layer, layer.weight, layer.bias, x, opt], n=N_SLOW)


def test_leaks_sequential_forward_backward():
    model = seeded(lambda: nn.Linear(64, 32), nn.ReLU, lambda: nn.Linear(32, 16), nn.Tanh)
    x = lincore.randn(16, 64, requires_grad=True)
    params = list(model.parameters())
    loss_fn = nn.MSELoss()
    target = lincore.zeros(16, 16)

    def step():
        model.zero_grad()
        x.grad = None
        loss_fn(model(x), target).backward()
        with lincore.no_grad():
            assert model(x).shape == (16, 16)

    assert_flat(step, [model, x, target, *params], n=N_SLOW)


@pytest.mark.parametrize(
    "op",
    [
        "add",
        "sub",
        "rsub",
        "mul",
        "truediv",
        "pow",
        "matmul",
        "neg",
        "sum",
        "index",
        "relu",
        "tanh",
        "mse",
    ],
)
def test_leaks_recorded_ops_without_backward(op):
    # A graph that is recorded but never backpropagated (a metric computed outside no_grad) must
    # be freed with its output.
    x = lincore.randn(32, 64, requires_grad=True)
    w = lincore.randn(16, 64, requires_grad=True)
    target = lincore.zeros(32, 16)
    f = {
        "add": lambda: x + x,
        "sub": lambda: x - 1.0,
        "rsub": lambda: 1.0 - x,
        "mul": lambda: x * 2.0,
        "truediv": lambda: x / w[0],
        "pow": lambda: x**2,
        "matmul": lambda: x @ w.T,
        "neg": lambda: -x,
        "sum": lambda: x.sum(dim=1),
        "index": lambda: x[1:9],
        "relu": lambda: nn.functional.relu(x),
        "tanh": lambda: nn.Tanh()(x),
        "mse": lambda: nn.MSELoss()(x @ w.T, target),
    }[op]

    def step():
        assert f().grad_fn is not None

    assert_flat(step, [x, w, target], n=N_SLOW)


def test_leaks_tensor_from_lists():
    floats = np.random.default_rng(0).standard_normal((8, 16)).tolist()
    ints = [[2**40 + i * j for j in range(16)] for i in range(8)]
    flags = [[bool(i & j) for j in range(16)] for i in range(8)]
    # (small ints, True and False are shared by the whole interpreter: their counts move anyway)
    inputs = [floats, ints, flags, *floats, *ints, *flags, *floats[0], *ints[3]]

    def step():
        assert lincore.tensor(floats).dtype is lincore.float32
        assert lincore.tensor(ints).dtype is lincore.int64
        assert lincore.tensor(flags).dtype is lincore.bool
        assert lincore.tensor(floats, dtype=lincore.float64).tolist()[0][0] == floats[0][0]

    assert_flat(step, inputs, n=N_SLOW)


def test_leaks_tensor_from_numpy_any_layout():
    values = np.random.default_rng(1).standard_normal((32, 48))
    raw = np.zeros(values.astype(np.float32).nbytes + 1, np.uint8)
    misaligned = raw[1:].view(np.float32).reshape(values.shape)
    misaligned[...] = values
    arrays = [
        values,
        values.astype(np.float32),
        np.asfortranarray(values),
        np.zeros((64, 96))[::2, ::-2],
        values.astype(">f8"),
        np.frombuffer(values.tobytes(), np.float64).reshape(32, 48),
        np.broadcast_to(values[0], (32, 48)),
        misaligned,
        np.arange(96, dtype=np.int64),
        np.ones(10, np.bool_),
    ]
    layer = seeded(lambda: nn.Linear(48, 8, dtype=lincore.float64))

    def step():
        for a in arrays:
            lincore.tensor(a)
            lincore.as_tensor(a)
        shared = lincore.from_numpy(arrays[0])  # zero-copy: holds the array while alive
        assert np.asarray(shared).shape == (32, 48)
        del shared
        for a in arrays[:8]:  # numpy straight into a layer
            layer(a if a.dtype == np.float64 else a.astype(np.float64))

    assert_flat(step, [*arrays, raw, layer], n=N_SLOW)


def test_leaks_tensor_to_numpy_and_back():
    t = lincore.randn(64, 64)

    def step():
        a = t.numpy()
        b = np.asarray(t)
        c = np.from_dlpack(t)
        assert a.shape == b.shape == c.shape
        lincore.from_dlpack(a)
        t.tolist()

    assert_flat(step, [t], n=N_SLOW)


def test_leaks_printing():
    model = seeded(lambda: nn.Linear(8, 4), nn.ReLU)
    big = lincore.randn(40, 40)
    small = lincore.tensor([[1.5, -2.0], [3.25, 1e-8]], requires_grad=True)

    def step():
        repr(big)
        str(small)
        repr(model[0].weight)
        repr(model)
        repr(small.sum())

    assert_flat(step, [model, big, small, model[0].weight], n=N_SLOW)


def test_leaks_state_dict_round_trip():
    model = seeded(lambda: nn.Linear(32, 16), nn.ReLU, lambda: nn.Linear(16, 8))
    other = seeded(lambda: nn.Linear(32, 16), nn.ReLU, lambda: nn.Linear(16, 8))
    params = list(model.parameters()) + list(other.parameters())

    def step():
        state = model.state_dict()
        other.load_state_dict(state)
        other.load_state_dict({k: v.clone() for k, v in state.items()})

    assert_flat(step, [model, other, *params])


def test_leaks_save_and_load(tmp_path):
    model = seeded(lambda: nn.Linear(32, 16), nn.ReLU, lambda: nn.Linear(16, 8))
    path = tmp_path / "m.safetensors"
    params = list(model.parameters())

    def step():
        buffer = io.BytesIO()
        lincore.save(model, buffer)
        buffer.seek(0)
        model.load_state_dict(lincore.load(buffer))
        lincore.save(model.state_dict(), path)
        model.load_state_dict(lincore.load(path))

    assert_flat(step, [model, *params], n=N_SLOW)


# --- failing calls: the bad-input table ----------------------------------------------------------


def _linear():
    return seeded(lambda: nn.Linear(3, 2))


def _craft(header, data=b"", length=None):
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


F32x4 = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}
CORRUPT_FILES = [
    b"",
    b"\x10\x00\x00",
    _craft({"a": F32x4}, bytes(16), length=4096),
    _craft({"a": F32x4}, bytes(8)),
    _craft(b'{"a": {"dtype": "F32",'),
    _craft({"a": {"dtype": "F32", "shape": [4], "data_offsets": [1000, 1016]}}, bytes(16)),
    _craft({"a": F32x4, "b": F32x4}, bytes(16)),
    _craft(
        {"a": {"dtype": "F32", "shape": [2**62, 2**62, 16], "data_offsets": [0, 16]}}, bytes(16)
    ),
    _craft({"a": {"dtype": "X99", "shape": [4], "data_offsets": [0, 16]}}, bytes(16)),
]

# name -> a function making fresh (step, inputs); every step raises on every call.
ERROR_CASES = {}


def case(name, n=N):
    def register(make):
        ERROR_CASES[name] = (make, n)
        return make

    return register


@case("linear-wrong-in-features")
def _():
    layer, x = _linear(), lincore.ones(5, 4)
    return raises(RuntimeError, layer, x), [layer, layer.weight, layer.bias, x]


@case("linear-wrong-dtype")
def _():
    layer, x = _linear(), lincore.ones(5, 3, dtype=lincore.int64)
    return raises(RuntimeError, layer, x), [layer, layer.weight, x]


@case("linear-0d-input")
def _():
    layer, x = _linear(), lincore.tensor(1.0)
    return raises(RuntimeError, layer, x), [layer, x]


@case("linear-numpy-wrong-shape")
def _():
    layer, a = _linear(), np.ones((5, 4), np.float32)
    return raises(RuntimeError, layer, a), [layer, a]


@case("linear-recorded-wrong-shape")
def _():
    layer, x = _linear(), lincore.ones(5, 4, requires_grad=True)
    return raises(RuntimeError, layer, x), [layer, x]


@case("sequential-widths-do-not-chain", n=N_SLOW)
def _():
    model = seeded(lambda: nn.Linear(10, 18), nn.ReLU, lambda: nn.Linear(19, 5))
    x = lincore.ones(2, 10)
    return raises(RuntimeError, model, x), [model, x, *model.parameters()]


@case("sequential-wrong-input")
def _():
    model = seeded(lambda: nn.Linear(10, 18), nn.ReLU)
    x = lincore.ones(2, 11, requires_grad=True)
    return raises(RuntimeError, model, x), [model, x, *model.parameters()]


@case("ragged-list")
def _():
    data = [[1.0, 2.0], [3.0]]
    return raises(ValueError, lincore.tensor, data), [data, *data]


@case("ragged-list-deep")
def _():
    data = [[[1], [2]], [[3]]]
    return raises(ValueError, lincore.tensor, data), [data, *data]


@case("non-numeric-element")
def _():
    data = [[1.0, "a"]]
    return raises(TypeError, lincore.tensor, data), [data, data[0], data[0][1]]


@case("none-element")
def _():
    data = [1.0, None]
    return raises(TypeError, lincore.tensor, data), [data]


@case("int-too-big")
def _():
    data = [[1, 2**63]]
    return raises(ValueError, lincore.tensor, data), [data, data[0], data[0][1]]


@case("tensor-bad-dtype")
def _():
    data = [1.0, 2.0]
    return raises(TypeError, lincore.tensor, data, dtype="float"), [data]


@case("numpy-unsupported-dtype")
def _():
    a = np.ones(8, np.float16)
    return raises(TypeError, lincore.from_numpy, a), [a]


@case("linear-negative-features")
def _():
    return raises(ValueError, nn.Linear, -1, 4), []


@case("linear-non-int-features")
def _():
    return raises(TypeError, nn.Linear, 2.5, 3), []


@case("linear-bad-dtype")
def _():
    return raises(TypeError, nn.Linear, 3, 2, dtype="float"), []


@case("factory-numel-overflows-int64")
def _():
    return raises(ValueError, lincore.zeros, 2**40, 2**40), []


@case("factory-negative-dim")
def _():
    return raises(ValueError, lincore.ones, 2, -3), []


@case("factory-bad-dtype")
def _():
    return raises(TypeError, lincore.zeros, 2, 3, dtype=np.float32), []


@case("empty-exceeds-memory")
def _():
    return raises(MemoryError, lincore.empty, 2**40, 2**10), []


@case("zeros-bytes-overflow")
def _():
    return raises(MemoryError, lincore.zeros, 2**31, 2**31, dtype=lincore.float64), []


@case("linear-weights-exceed-memory")
def _():
    return raises(MemoryError, nn.Linear, 2**20, 2**30), []


@case("reshape-incompatible")
def _():
    t = lincore.arange(6)
    return raises(RuntimeError, t.reshape, 4, 2), [t]


@case("index-out-of-range")
def _():
    t = lincore.ones(2, 3)
    return raises(IndexError, t.__getitem__, (0, 3)), [t]


@case("item-not-one-element")
def _():
    t = lincore.ones(2, 3)
    return raises(RuntimeError, t.item), [t]


@case("requires-grad-on-int")
def _():
    t = lincore.ones(2, dtype=lincore.int64)
    return raises(RuntimeError, t.requires_grad_), [t]


@case("parameter-from-list")
def _():
    data = [1.0, 2.0]
    return raises(TypeError, nn.Parameter, data), [data]


@case("assign-non-parameter")
def _():
    layer, t = _linear(), lincore.zeros(2, 3)
    return raises(TypeError, setattr, layer, "weight", t), [layer, layer.weight, t]


@case("backward-twice", n=N_SLOW)
def _():
    layer, x = _linear(), lincore.ones(4, 3)
    return _backward_twice(layer, x), [layer, layer.weight, x]


@case("load-state-dict-bad-keys")
def _():
    model = seeded(lambda: nn.Linear(3, 4), nn.ReLU, lambda: nn.Linear(4, 2))
    state = {
        "0.weight": lincore.full((4, 3), 9.0),
        "0.bias": lincore.zeros(5),
        "extra.weight": lincore.zeros(1),
    }
    return (
        raises(RuntimeError, model.load_state_dict, state),
        [model, state, *state.values(), *model.parameters()],
    )


@case("load-state-dict-non-tensor")
def _():
    layer = _linear()
    state = {"weight": "abc", "bias": lincore.zeros(2)}
    return raises(RuntimeError, layer.load_state_dict, state), [layer, state, state["bias"]]


@case("load-state-dict-non-mapping")
def _():
    layer, state = _linear(), [1, 2]
    return raises(TypeError, layer.load_state_dict, state), [layer, state]


@case("save-bad-value")
def _():
    state = {"a": [1.0, 2.0]}
    return raises(TypeError, lincore.save, state, io.BytesIO()), [state, state["a"]]


@case("load-corrupt-safetensors", n=N_SLOW)
def _():
    files = list(CORRUPT_FILES)
    return _load_each_corrupt(files), [files, *files]


def _backward_twice(layer, x):
    def step():
        loss = layer(x).sum()
        loss.backward()
        try:
            loss.backward()
        except RuntimeError:
            return
        raise AssertionError("second backward did not raise")

    return step


def _load_each_corrupt(files):
    def step():
        for data in files:
            try:
                lincore.load(io.BytesIO(data))
            except ValueError:
                continue
            raise AssertionError(f"{data[:40]!r} loaded")

    return step


@pytest.mark.parametrize("name", list(ERROR_CASES))
def test_leaks_error_path(name):
    make, n = ERROR_CASES[name]
    step, inputs = make()
    assert_flat(step, inputs, n=n)


def test_leaks_every_error_path_leaves_lincore_usable():
    layer = _linear()
    x = lincore.ones(4, 3)
    expected = np.asarray(layer(x)).tobytes()
    before = np.asarray(layer.weight).tobytes()
    for make, _ in ERROR_CASES.values():
        step, _ = make()
        step()
    assert np.asarray(layer(x)).tobytes() == expected
    assert np.asarray(layer.weight).tobytes() == before
    assert list(layer.state_dict()) == ["weight", "bias"]
