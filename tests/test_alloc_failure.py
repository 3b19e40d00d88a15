# Allocation failure (docs/testing.md, "Robustness"): in a child process whose address
# space is capped with setrlimit(RLIMIT_AS), a tensor too large to allocate raises MemoryError,
# the process goes on working, repeated failures leak nothing, and a Linear whose weights cannot
# be allocated raises MemoryError without leaving a half-built module behind.
#
# The cap is the child's current address-space size plus HEADROOM, set after a warm-up (thread
# pool started, every code path used once), so "too large" means a few GiB: sizes a real machine
# could map, which fail only because of the cap. A child keeps a crash or a hang (timeout) from
# taking the suite down, and keeps the cap away from the test process.
#
# Under AddressSanitizer (.ci/sanitize sets LINCORE_SANITIZED=1) the child runs too: ASan's shadow
# and allocator regions are reserved at start-up, before the cap, and with
# allocator_may_return_null=1 a large allocation that hits the cap returns NULL like malloc does.
# Only the RSS comparison is skipped there: ASan's quarantine holds freed memory by design.

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc/self/statm are Linux's"
)

SANITIZED = os.environ.get("LINCORE_SANITIZED") == "1"
HEADROOM = 1 << 30  # bytes of address space the child may still map after the warm-up
TOO_LARGE = 4 << 30  # bytes the child tries to allocate: > HEADROOM, a plain size without the cap
SLACK = 2 << 20  # RSS growth allowed over the repeated failures

PRELUDE = textwrap.dedent(f"""
    import gc, json, resource, sys
    import numpy as np
    import lincore
    import lincore.nn as nn

    PAGE = resource.getpagesize()
    HEADROOM, TOO_LARGE = {HEADROOM}, {TOO_LARGE}

    def statm(field):
        with open("/proc/self/statm") as f:
            return int(f.read().split()[field]) * PAGE

    def train_step(seed=0):
        lincore.manual_seed(seed)
        model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
        opt = lincore.optim.Adam(model.parameters(), lr=1e-3)
        x = lincore.randn(256, 64)
        loss = nn.CrossEntropyLoss()(model(x), lincore.tensor([i % 10 for i in range(256)]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        with lincore.no_grad():
            y = model(x)
        return loss.item(), np.asarray(y).tobytes(), model

    def cap():
        reference = train_step()   # warm-up: pool threads, arenas, every path once
        limit = statm(0) + HEADROOM
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        return reference

    def outcome(fn):
        try:
            fn()
        except MemoryError as e:
            return ["MemoryError", str(e)]
        except Exception as e:
            return [type(e).__name__, str(e)]
        return ["ok", ""]

    result = {{}}
""")


def run_child(body: str, timeout: int = 300) -> dict:
    code = PRELUDE + textwrap.dedent(body) + "\nprint('RESULT ' + json.dumps(result))\n"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (
        f"child exited with {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
        f"\n--- stderr\n{proc.stderr[-8000:]}"
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"no result from the child\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
    return json.loads(lines[-1][len("RESULT ") :])


def test_alloc_failure_too_large_tensor_raises_memory_error_and_process_goes_on():
    result = run_child("""
        reference = cap()
        n = TOO_LARGE // 4
        result["empty"] = outcome(lambda: lincore.empty(n // 1024, 1024))
        result["zeros"] = outcome(lambda: lincore.zeros(n, dtype=lincore.float32))
        result["ones"] = outcome(lambda: lincore.ones(1024, n // 1024))
        result["full"] = outcome(lambda: lincore.full((n // 2,), 1.5, dtype=lincore.float64))
        result["rand"] = outcome(lambda: lincore.rand(4, n // 4))
        result["randn"] = outcome(lambda: lincore.randn(n))
        result["int64"] = outcome(lambda: lincore.zeros(n // 2, dtype=lincore.int64))
        # ... and the process goes on working: the same training step gives the same numbers.
        again = train_step()
        result["same_after"] = again[:2] == reference[:2]
        result["small_ok"] = lincore.zeros(1000, 1000).sum().item() == 0.0
    """)
    names = ["empty", "zeros", "ones", "full", "rand", "randn", "int64"]
    for name in names:
        kind, message = result[name]
        assert kind == "MemoryError", (name, kind, message)
        assert str(TOO_LARGE) in message, (name, message)  # says how much was asked for
    assert result["same_after"], "a training step gave other numbers after the failures"
    assert result["small_ok"]


def test_alloc_failure_linear_weights_raise_memory_error_without_a_half_built_module():
    result = run_child("""
        reference = cap()

        def count(cls):
            gc.collect()
            return sum(1 for o in gc.get_objects() if isinstance(o, cls))

        layers, params = count(nn.Linear), count(nn.Parameter)
        side = int((TOO_LARGE // 4) ** 0.5)                 # weights: side x side float32
        result["linear"] = outcome(lambda: nn.Linear(side, side))
        result["linear_f64"] = outcome(lambda: nn.Linear(side // 2, side, dtype=lincore.float64))
        result["no_bias"] = outcome(lambda: nn.Linear(side, side, bias=False))
        holder = {}

        def build():
            holder["model"] = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(side, side))
        result["sequential"] = outcome(build)
        result["assigned"] = "model" in holder
        result["layers_left"] = count(nn.Linear) - layers
        result["params_left"] = count(nn.Parameter) - params
        # A layer whose output cannot be allocated: MemoryError, the layer unchanged and usable.
        lincore.manual_seed(1)
        wide = nn.Linear(4, 1 << 14)
        w = np.asarray(wide.weight).tobytes()
        x = lincore.ones(TOO_LARGE // 4 // (1 << 14), 4)
        result["forward"] = outcome(lambda: wide(x))
        with lincore.no_grad():
            result["forward_no_grad"] = outcome(lambda: wide(x))
        result["weight_same"] = np.asarray(wide.weight).tobytes() == w
        y = wide(lincore.ones(3, 4))
        result["wide_ok"] = y.shape == (3, 1 << 14)
        result["same_after"] = train_step()[:2] == reference[:2]
    """)
    for name in ["linear", "linear_f64", "no_bias", "sequential", "forward", "forward_no_grad"]:
        kind, message = result[name]
        assert kind == "MemoryError", (name, kind, message)
    assert not result["assigned"]
    assert result["layers_left"] == 0, "a Linear that failed to allocate is still alive"
    assert result["params_left"] == 0, "a Parameter of a Linear that failed is still alive"
    assert result["weight_same"] and result["wide_ok"] and result["same_after"]


def test_alloc_failure_repeated_failures_leak_nothing():
    result = run_child(
        """
        cap()
        n = TOO_LARGE // 4
        lincore.manual_seed(0)
        x = lincore.randn(16, 64)
        layer = nn.Linear(64, 32)
        big_in = nn.Linear(4, 1 << 14)
        wide_x = lincore.ones(n // (1 << 14), 4)

        def fail_all():
            for fn in (lambda: lincore.empty(n), lambda: lincore.zeros(1024, n // 1024),
                       lambda: lincore.randn(n), lambda: nn.Linear(1 << 15, n >> 15),
                       lambda: big_in(wide_x)):
                try:
                    fn()
                except MemoryError:
                    continue
                raise AssertionError("no MemoryError")
            with lincore.no_grad():
                layer(x)

        for _ in range(100):
            fail_all()
        gc.collect()
        refs = [sys.getrefcount(o) for o in (x, layer, layer.weight, big_in, wide_x)]
        growth = []
        for _ in range(3):   # a leak grows every round; a one-off step does not
            before = statm(1)
            for _ in range(1000):
                fail_all()
            gc.collect()
            growth.append(statm(1) - before)
            if growth[-1] < %d:
                break
        result["growth"] = growth
        result["refs_same"] = refs == [sys.getrefcount(o)
                                       for o in (x, layer, layer.weight, big_in, wide_x)]
    """
        % SLACK
    )
    assert result["refs_same"], "an input's reference count changed"
    if not SANITIZED:
        assert min(result["growth"]) < SLACK, (
            f"RSS grew by {[g // 1024 for g in result['growth']]} KiB per 1000 rounds of failures"
        )
