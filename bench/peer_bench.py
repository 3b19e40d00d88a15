#!/usr/bin/env python3
"""Peer benchmark: lincore's nn.Linear / nn.Sequential called from Python against numpy, PyTorch
and onnxruntime, with the same weights, in one process. Every engine's output is first checked
against a float64 numpy reference under docs/testing.md's error bound; then the engines are timed
interleaved (a balanced order each round) and the medians over rounds are reported, one greppable
line per (case, threads, engine). See bench/README.md, "Peer benchmark (Python)"."""

import os
import sys

# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE may be set on this machine for old OpenBLAS builds; they
# slow a current numpy down. OpenBLAS reads them when it is loaded, so drop them (for this
# process only) before numpy is imported.
_UNSET_ENV = {
    v: os.environ.pop(v) for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if v in os.environ
}
_NUMPY_PRELOADED = "numpy" in sys.modules

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime  # noqa: E402
import functools  # noqa: E402
import gc  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

try:  # the only way to set numpy's BLAS threads per thread count inside one process
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:
    sys.exit("peer_bench.py needs threadpoolctl: pip install threadpoolctl")

import lincore  # noqa: E402
import lincore.nn as lnn  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
HARNESS = REPO / "build" / "bench" / "bench" / "lincore_bench"
MIN_MEASUREMENT_S = 0.020  # one timed measurement lasts at least this long
WARMUP_S = 0.1  # per engine, (case, threads); at least 2 calls


# -- cases ------------------------------------------------------------------------------------
@dataclass
class Case:
    """A Linear (widths = [k, n]) or a ReLU MLP (widths = [k, n1, n2, ...]) at batch m."""

    dtype: Any
    m: int
    widths: list
    big: bool = False  # skipped by --quick

    @property
    def is_mlp(self) -> bool:
        return len(self.widths) > 2

    @property
    def name(self) -> str:
        d = "f32" if self.dtype == np.float32 else "f64"
        if self.is_mlp:
            return f"{d}-mlp{'-'.join(map(str, self.widths))}-m{self.m}"
        return f"{d}-m{self.m}-n{self.widths[1]}-k{self.widths[0]}"

    @property
    def layer_shapes(self) -> list:
        """(k, n) per Linear layer."""
        return list(zip(self.widths[:-1], self.widths[1:]))

    @property
    def flops(self) -> int:
        return sum(2 * self.m * n * k for k, n in self.layer_shapes)

    @property
    def param_bytes(self) -> int:
        return sum((n * k + n) * np.dtype(self.dtype).itemsize for k, n in self.layer_shapes)


def linear(dtype, m, k, n, big=False):
    # Given as (batch, in, out), stored as widths [in, out].
    return Case(dtype, m, [k, n], big)


CASES = [
    linear(np.float32, 1, 3, 2),
    linear(np.float32, 1, 784, 128),
    linear(np.float32, 64, 784, 128),
    linear(np.float32, 256, 512, 512),
    linear(np.float32, 1024, 1024, 1024),
    linear(np.float32, 2048, 2048, 2048, big=True),
    linear(np.float32, 1, 4096, 4096),
    linear(np.float32, 8, 4096, 4096),
    linear(np.float32, 4096, 4096, 4096, big=True),
    Case(np.float32, 1, [784, 256, 128, 10]),
    Case(np.float32, 64, [784, 256, 128, 10]),
    Case(np.float32, 1024, [784, 256, 128, 10]),
    Case(np.float32, 256, [1024, 1024, 1024, 1024]),
    linear(np.float64, 64, 784, 128),
    linear(np.float64, 256, 512, 512),
    linear(np.float64, 1024, 1024, 1024),
]


def make_data(case: Case, seed: int = 0):
    """x in [-1, 1); each layer's W [n, k] and b [n] uniform in +-1/sqrt(k) (PyTorch's init
    range, so that activations stay O(1) through an MLP). The one numpy source of the weights."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (case.m, case.widths[0])).astype(case.dtype)
    layers = []
    for k, n in case.layer_shapes:
        bound = 1 / math.sqrt(k)
        w = rng.uniform(-bound, bound, (n, k)).astype(case.dtype)
        b = rng.uniform(-bound, bound, n).astype(case.dtype)
        layers.append((w, b))
    return x, layers


# -- the reference and the error bound -------------------------------------------------------
def gamma(n: int, u: float) -> float:
    return n * u / (1 - n * u)


def reference_and_bound(x, layers, dtype):
    """The float64 chain and a bound on |y - ref| that no correct engine can exceed.

    One layer is docs/testing.md's rule exactly: c*gamma(K+2)*G + (K+1)*smallest_subnormal with
    G = |b| + |x|@|W|^T, c = 1 for float32 (against a float64 reference), c = 2 for float64.
    Through an MLP: with A_l = |b_l| + A_{l-1}@|W_l|^T (A_0 = |x|; ReLU is 1-Lipschitz and only
    shrinks |h|), the layer-l error is at most ((1+gamma(K_1+2))...(1+gamma(K_l+2)) - 1)*A_l
    <= gamma(sum_l (K_l+2))*A_l, since each layer adds its own rounding to the propagated
    error |W_l|@e_{l-1}. The subnormal terms are propagated the same way (D_l)."""
    f32 = dtype == np.float32
    u, c = (2.0**-24, 1.0) if f32 else (2.0**-53, 2.0)
    eta = float(np.finfo(dtype).smallest_subnormal)
    h = x.astype(np.float64)
    a = np.abs(h)
    d = np.zeros(1)  # broadcasts; stays a scalar until a layer gives it a shape
    n_sum = 0
    for i, (w, b) in enumerate(layers):
        w64, b64 = w.astype(np.float64), b.astype(np.float64)
        k = w.shape[1]
        aw = np.abs(w64)
        h = h @ w64.T + b64
        a = np.abs(b64) + a @ aw.T
        d_prop = (1 + gamma(k + 2, u)) * (d @ aw.T) if d.ndim == 2 else 0.0
        d = d_prop + (k + 1) * eta + np.zeros_like(a)
        n_sum += k + 2
        if i < len(layers) - 1:
            h = np.maximum(h, 0)
    return h, c * gamma(n_sum, u) * a + d


def check(case_name, engine_name, y, ref, bound) -> float:
    """Aborts the run when any element is outside the bound; returns max |y - ref| / bound."""
    y = np.asarray(y)
    if y.shape != ref.shape:
        sys.exit(
            f"FAIL case={case_name} engine={engine_name}: shape {y.shape}, expected {ref.shape}"
        )
    err = np.abs(y.astype(np.float64) - ref)
    bad = ~(err <= bound)  # NaN counts as bad
    if bad.any():
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        sys.exit(
            f"FAIL case={case_name} engine={engine_name}: element {i} = {float(y[i])!r}, "
            f"reference {float(ref[i])!r}, |diff| {err[i]:.3g} > bound {bound[i]:.3g} "
            f"({int(bad.sum())} elements out of bound)"
        )
    return float((err / bound).max()) if err.size else 0.0


# -- engines ----------------------------------------------------------------------------------
@dataclass
class Engine:
    name: str
    call: Callable[[], Any]  # one forward on the pre-built input
    to_numpy: Callable[[Any], Any]  # its output as a numpy array, for the check
    mode: Callable[[], Any] = contextlib.nullcontext  # entered around a run of calls


PEERS = ("numpy", "torch", "torch_no_grad", "ort")


def build_lincore(case, x, layers):
    dt = lincore.float32 if case.dtype == np.float32 else lincore.float64
    mods = []
    for i, (w, b) in enumerate(layers):
        lin = lnn.Linear(w.shape[1], w.shape[0], dtype=dt)
        lin.load_state_dict({"weight": w.copy(), "bias": b.copy()})
        mods.append(lin)
        if i < len(layers) - 1:
            mods.append(lnn.ReLU())
    model = mods[0] if len(mods) == 1 else lnn.Sequential(*mods)
    linears = [m for m in mods if isinstance(m, lnn.Linear)]
    xl = lincore.from_numpy(x)  # zero-copy, made once
    call = functools.partial(model, xl)
    return [
        Engine("lincore", call, np.asarray),
        Engine("lincore_no_grad", call, np.asarray, lincore.no_grad),
    ], linears


def lincore_memory(case, linears) -> dict:
    """Bytes lincore holds for the layers (weight + bias + packed copy) over the parameter
    bytes; read after at least one call, when the packed weight exists."""
    try:
        packed = sum(int(lin._pack.packed_bytes) for lin in linears)
    except AttributeError:
        return {"mem_ratio": "na"}
    held = case.param_bytes + packed
    return {
        "lincore_bytes": held,
        "param_bytes": case.param_bytes,
        "mem_ratio": f"{held / case.param_bytes:.3f}",
    }


def build_numpy(x, layers):
    # The fastest plain-numpy spelling of x @ W.T + b (and np.maximum(., 0)): in place after
    # the matmul, so each layer allocates one array, like the other engines.
    wts = [(w.copy().T, b.copy()) for w, b in layers]
    last = len(wts) - 1

    def call():
        h = x
        for i, (wt, b) in enumerate(wts):
            h = h @ wt
            h += b
            if i < last:
                np.maximum(h, 0, out=h)
        return h

    return [Engine("numpy", call, lambda y: y)]


def build_torch(case, x, layers):
    dt = torch.float32 if case.dtype == np.float32 else torch.float64
    mods = []
    for i, (w, b) in enumerate(layers):
        lin = torch.nn.Linear(w.shape[1], w.shape[0], dtype=dt)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
        mods.append(lin)
        if i < len(layers) - 1:
            mods.append(torch.nn.ReLU())
    model = mods[0] if len(mods) == 1 else torch.nn.Sequential(*mods)
    call = functools.partial(model, torch.from_numpy(x))
    to_np = lambda y: y.detach().numpy()  # noqa: E731
    return [Engine("torch", call, to_np), Engine("torch_no_grad", call, to_np, torch.no_grad)]


def onnx_model(case, layers, matmul=False, elem_type=None, initializer=None) -> bytes:
    """One layer per (W, b), Relu between layers: Gemm(transB=1) with W [n, k] and b as
    initializers, or (matmul=True) MatMul with W^T [k, n] then Add, the form onnxruntime's
    dynamic quantizer rewrites (peer_int8.py). elem_type: x's and y's ONNX type (the case's
    float dtype by default); initializer(array, name) makes each initializer (numpy_helper's
    from_array by default; peer_bf16.py passes one that stores bf16)."""
    et = elem_type or (TensorProto.FLOAT if case.dtype == np.float32 else TensorProto.DOUBLE)
    init = initializer or numpy_helper.from_array
    inits, nodes, prev = [], [], "x"
    for i, (w, b) in enumerate(layers):
        out = "y" if i == len(layers) - 1 else f"g{i}"
        if matmul:
            inits += [init(np.ascontiguousarray(w.T), f"wt{i}"), init(b, f"b{i}")]
            nodes.append(helper.make_node("MatMul", [prev, f"wt{i}"], [f"mm{i}"]))
            nodes.append(helper.make_node("Add", [f"mm{i}", f"b{i}"], [out]))
        else:
            inits += [init(w, f"w{i}"), init(b, f"b{i}")]
            nodes.append(helper.make_node("Gemm", [prev, f"w{i}", f"b{i}"], [out], transB=1))
        if out != "y":
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"]))
            out = f"r{i}"
        prev = out
    graph = helper.make_graph(
        nodes,
        case.name,
        [helper.make_tensor_value_info("x", et, [case.m, case.widths[0]])],
        [helper.make_tensor_value_info("y", et, [case.m, case.widths[-1]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def build_ort(model_bytes, x, threads):
    """An InferenceSession with `threads` intra-op threads, run through IOBinding: the input
    bound once as an OrtValue, the output bound by name (ORT allocates it each run, as the
    other engines do). That is ~2 us/call faster than session.run(None, feed) at batch 1 and
    the same for large cases, so it is the fastest documented way."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    x_value = ort.OrtValue.ortvalue_from_numpy(x)  # points into x: both kept alive by call
    binding = sess.io_binding()
    binding.bind_ortvalue_input("x", x_value)
    binding.bind_output("y")

    def call():
        sess.run_with_iobinding(binding)
        return binding

    call.keep_alive = (x, x_value)

    return Engine("ort", call, lambda bnd: bnd.get_outputs()[0].numpy())


# -- threads ----------------------------------------------------------------------------------
def set_threads(n: int):
    """lincore and torch globally; numpy's OpenBLAS through the returned threadpoolctl context;
    onnxruntime per session (build_ort)."""
    lincore.set_num_threads(n)
    torch.set_num_threads(n)
    return threadpool_limits(limits=n, user_api="blas")


# -- timing -----------------------------------------------------------------------------------
def timed(engine: Engine, reps: int) -> float:
    """Seconds per call over `reps` back-to-back calls, inside the engine's mode."""
    call = engine.call
    with engine.mode():
        t0 = time.perf_counter()
        for _ in range(reps):
            call()
        return (time.perf_counter() - t0) / reps


def warm_up_and_calibrate(engine: Engine) -> int:
    """Runs >= WARMUP_S (>= 2 calls); returns the reps that make one measurement >=
    MIN_MEASUREMENT_S."""
    calls, start = 0, time.perf_counter()
    with engine.mode():
        while calls < 2 or time.perf_counter() - start < WARMUP_S:
            engine.call()
            calls += 1
    per_call = timed(engine, max(1, calls // 2))
    return max(1, math.ceil(MIN_MEASUREMENT_S / per_call))


def balanced_orders(n: int) -> list:
    """A Williams design: orders of range(n) (the first with r added mod n) in which every
    engine follows every other one equally often (n orders for even n, 2n for odd). A thread
    pool keeps spinning for a while after its call (OpenBLAS's for up to ~0.1 s), which slows
    whatever runs next: a plain rotation would make that always the same engine."""
    first, lo, hi = [0], 1, n - 1
    while len(first) < n:
        first.append(lo)
        lo += 1
        if len(first) < n:
            first.append(hi)
            hi -= 1
    orders = [[(v + r) % n for v in first] for r in range(n)]
    return orders if n % 2 == 0 else orders + [o[::-1] for o in orders]


# Thread pools keep spinning for a while after a call, waiting for the next one: onnxruntime's
# for ~0.1 s, OpenBLAS's and OpenMP's (numpy, torch) for up to a few ms or more, lincore's for
# ~0.1 ms. That helps an engine's own back-to-back calls (kept: a measurement is back-to-back
# calls), but on 2 cores it takes a core from whichever engine is timed next (measured here:
# lincore 256x512x512 on 2 threads, 845 us right after ort, 430 us after a pause). So after
# each engine's measurement, the next one waits until no other thread of this process has used
# the CPU for SETTLE_QUIET_S (at most SETTLE_MAX_S): every engine starts on idle cores, as in a
# process of its own.
SETTLE_QUIET_S = 0.005
SETTLE_MAX_S = 0.5


def others_cpu_s() -> float:
    """CPU seconds used so far by this process's threads other than the calling one."""
    return time.process_time() - time.thread_time()


def settle() -> float:
    """Waits until the other threads of this process have been idle for SETTLE_QUIET_S (they
    used under 10% of one CPU over that window); returns the seconds waited."""
    start = time.perf_counter()
    quiet_since, last = start, others_cpu_s()
    while True:
        time.sleep(0.001)
        now, used = time.perf_counter(), others_cpu_s()
        if used - last > 0.1 * (now - quiet_since) + 1e-4:
            quiet_since, last = now, used
        if now - quiet_since >= SETTLE_QUIET_S or now - start >= SETTLE_MAX_S:
            return now - start


def run_rounds(engines, reps, rounds) -> dict:
    """Each round times every engine once, in the next order of balanced_orders, each after
    settle(); gc is off while timing, as in timeit."""
    samples = {e.name: [] for e in engines}
    orders = balanced_orders(len(engines))
    for r in range(rounds):
        order = [engines[i] for i in orders[r % len(orders)]]
        gc.collect()
        gc.disable()
        try:
            for e in order:
                settle()
                samples[e.name].append(timed(e, reps[e.name]))
        finally:
            gc.enable()
    return samples


def time_engines(engines, rounds) -> tuple[dict, dict, float]:
    """Each engine calibrated, then timed interleaved for `rounds` rounds: (samples per engine,
    calls per sample per engine, the % of the CPUs the rest of the machine used meanwhile)."""
    reps = {e.name: warm_up_and_calibrate(e) for e in engines}
    monitor = CpuMonitor()
    samples = run_rounds(engines, reps, rounds)
    return samples, reps, monitor.others_pct()


def relative_errors(engines, ref, scale) -> dict:
    """max|y - ref| / scale per engine, each run in the mode it is timed in (engines with no
    numpy view of their output are skipped): the low-precision benchmarks' error column."""
    err = {}
    for e in engines:
        if e.to_numpy is None:
            continue
        with e.mode():
            y = np.asarray(e.to_numpy(e.call()), np.float64)
        err[e.name] = float(np.abs(y - ref).max()) / scale
    return err


class CpuMonitor:
    """CPU time the rest of the machine used since creation: busy time from /proc/stat (steal
    included: another VM's use) minus this process's own, as a % of all CPUs over the wall
    time. Anything well above 0 means the timings were shared with someone else."""

    def __init__(self):
        self.start = self._read()

    @staticmethod
    def _read():
        try:
            with open("/proc/stat") as f:
                v = [int(t) for t in f.readline().split()[1:9]]  # guest time is inside user
        except (OSError, ValueError):
            return None
        busy = (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait
        t = os.times()
        own = t.user + t.system + t.children_user + t.children_system
        return busy, own, time.perf_counter()

    def others_pct(self) -> str:
        end = self._read()
        if self.start is None or end is None:
            return "na"
        busy, own, wall = (e - s for e, s in zip(end, self.start))
        ncpu = os.cpu_count() or 1
        return f"{max(0.0, 100 * (busy - own) / (wall * ncpu)):.0f}"


# -- peak -------------------------------------------------------------------------------------
def measure_peaks(threads_list, peak_arg):
    """{threads: {"f32": GFLOP/s, "f64": GFLOP/s}} and a note saying where they came from."""
    if peak_arg:
        return (
            {t: {"f32": peak_arg * t, "f64": peak_arg * t / 2} for t in threads_list},
            f"--peak-gflops {peak_arg} (fp32 per thread; fp64 = half; x threads)",
            [],
        )
    if HARNESS.exists():
        peaks, warnings = {}, []
        for t in sorted(set(threads_list), reverse=True):
            if t in peaks:
                continue
            # The peak is a property of the hardware: while the harness says another process
            # took CPU time from its loop, try again (3 tries) and keep the best of each.
            for _ in range(3):
                # One tiny case is needed for the harness to run at all; only peak lines are read.
                try:
                    out = subprocess.run(
                        [str(HARNESS), "--quick", "--filter", "f32-m1-n2-k3", "--threads", str(t)],
                        capture_output=True,
                        text=True,
                        timeout=60,
                    ).stdout
                except (OSError, subprocess.SubprocessError):  # e.g. being rebuilt right now
                    out = ""
                warned = [ln for ln in out.splitlines() if ln.startswith("# warning")]
                for line in out.splitlines():
                    mt = re.match(
                        r"peak .*threads=(\d+) f32_gflops=([\d.]+) .*f64_gflops=([\d.]+)", line
                    )
                    if mt:
                        old = peaks.get(int(mt[1]), {"f32": 0.0, "f64": 0.0})
                        peaks[int(mt[1])] = {
                            "f32": max(old["f32"], float(mt[2])),
                            "f64": max(old["f64"], float(mt[3])),
                        }
                if not warned:
                    break
            warnings += warned  # those of the last try: the best may still be too low
        if all(t in peaks for t in threads_list):
            return peaks, f"measured by {HARNESS.relative_to(REPO)} (FMA loop)", warnings
    # Neither: a large lincore matmul gives a lower bound on the peak, so pct_peak is overstated.
    peaks = {}
    for t in threads_list:
        lincore.set_num_threads(t)
        peaks[t] = {}
        for key, dt, size in (("f32", lincore.float32, 2048), ("f64", lincore.float64, 1536)):
            lin = lnn.Linear(size, size, dtype=dt)
            xl = lincore.randn(size, size, dtype=dt)
            lin(xl)
            best = min(timed(Engine("peak", functools.partial(lin, xl), None), 1) for _ in range(3))
            peaks[t][key] = 2 * size**3 / best / 1e9
    return (
        peaks,
        (
            "ESTIMATED from a large lincore matmul (no harness built, no --peak-gflops):"
            " a lower bound, so pct_peak reads high"
        ),
        [],
    )


# -- output -----------------------------------------------------------------------------------
def header(args, threads_list, peaks, peak_note, peak_warnings):
    def git(*a):
        try:
            return subprocess.run(
                ["git", "-C", str(REPO), *a], capture_output=True, text=True
            ).stdout.strip()
        except OSError:
            return ""

    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    dirty = (
        " (with uncommitted changes)"
        if git("status", "--porcelain", "--untracked-files=no")
        else ""
    )
    libs = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    blas = (
        ", ".join(
            f"{i.get('internal_api')} {i.get('version')} arch={i.get('architecture', '?')}"
            for i in libs
        )
        or "none found"
    )
    torch_blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    p = print
    p("# lincore peer benchmark (bench/peer_bench.py)")
    p(
        f"# date={datetime.datetime.now().astimezone().isoformat(timespec='seconds')} "
        f"host={platform.node()} loadavg={' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    p(
        f"# cpu='{cpu}' cpus_available={len(os.sched_getaffinity(0))} "
        f"lincore.cpu_capability={lincore.cpu_capability()}"
    )
    p(f"# git={git('rev-parse', '--short', 'HEAD') or 'unknown'}{dirty}")
    p(
        f"# python={platform.python_version()} lincore={lincore.__version__} numpy={np.__version__}"
        f" torch={torch.__version__} onnxruntime={ort.__version__} onnx={onnx.__version__}"
    )
    p(f"# numpy BLAS: {blas}; torch BLAS: {torch_blas[1] if torch_blas else '?'}")
    unset = " ".join(f"{k}={v}" for k, v in _UNSET_ENV.items()) or "neither was set"
    p(
        f"# env: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for this process before numpy was "
        f"imported ({unset})" + ("; WARNING numpy was already imported" if _NUMPY_PRELOADED else "")
    )
    if max(threads_list) > len(os.sched_getaffinity(0)):
        p("# WARNING: more threads than CPUs available: those numbers measure oversubscription")
    p(
        f"# threads={','.join(map(str, threads_list))}: lincore.set_num_threads, "
        f"torch.set_num_threads, threadpoolctl (numpy's BLAS), ort intra_op_num_threads "
        f"(inter_op 1); before each measurement the process's other threads are let go idle "
        f"(no CPU use for {SETTLE_QUIET_S * 1e3:.0f} ms, at most {SETTLE_MAX_S} s): no engine "
        f"runs beside another's spinning pool"
    )
    p(
        "# ort: Gemm(transB=1) [+Relu] graph, weights as initializers, CPUExecutionProvider, "
        "run_with_iobinding (input bound once; output allocated by ORT each run)"
    )
    p("# numpy: h = x @ W.T; h += b; np.maximum(h, 0, out=h) between MLP layers")
    p("# no_grad engines: the mode is entered once around each run of timed calls")
    p(
        f"# rounds={args.rounds} quick={int(args.quick)} min_measurement_ms="
        f"{MIN_MEASUREMENT_S * 1e3:.0f}; engines interleaved, each round in the next order of a "
        "Williams design (each engine follows each other equally often); "
        "median and min over rounds of the time per call"
    )
    p(
        "# check: every engine vs the float64 numpy chain, |y-ref| <= c*gamma(sum(K+2))*G_chain + "
        "D (c=1 f32, c=2 f64; one layer = docs/testing.md's rule); err_over_tol = max |y-ref|/bound"
    )
    p(
        "# others_cpu_pct (summary lines) = CPU time used by other processes while that case was"
        " timed, % of all CPUs; > ~10 means the numbers are disturbed"
    )
    p(f"# peak: {peak_note}")
    for t in threads_list:
        p(f"peak threads={t} f32_gflops={peaks[t]['f32']:.1f} f64_gflops={peaks[t]['f64']:.1f}")
    for w in peak_warnings:
        p(f"# harness {w.lstrip('# ')}")
    sys.stdout.flush()


def fmt_line(fields: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in fields.items())


def markdown(rows):
    print()
    print(
        "| case | threads | lincore µs | numpy µs | torch µs | ort µs | best peer | ratio "
        "| % peak |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['threads']} | {r['lincore']:.2f} | {r['numpy']:.2f} | "
            f"{r['torch']:.2f} | {r['ort']} | {r['best_peer']} | {r['ratio']:.2f} | "
            f"{r['pct_peak']:.1f} |"
        )
    print()
    print(
        "lincore µs: plain call (no no_grad); torch µs: the better of plain and no_grad; "
        "ratio = best peer µs / lincore µs (> 1: lincore faster); % peak: lincore's."
    )


# -- main -------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (1,2)")
    ap.add_argument("--filter", default="", help="only cases whose name contains SUBSTR")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds (15; --quick: 5)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="5 rounds, and no f32-m2048-n2048-k2048 / f32-m4096-n4096-k4096",
    )
    ap.add_argument("--markdown", action="store_true", help="also print a markdown table")
    ap.add_argument(
        "--precision",
        choices=("fp32", "int8", "bf16"),
        default="fp32",
        help="int8: lincore.quantize_dynamic vs torch and onnxruntime int8 (bench/peer_int8.py); "
        "bf16: lincore's bf16 kernels vs torch bf16 (bench/peer_bf16.py)",
    )
    ap.add_argument(
        "--peak-gflops",
        type=float,
        default=None,
        help="fp32 GFLOP/s of ONE thread (fp64: half); overrides the harness",
    )
    args = ap.parse_args()
    if args.rounds is None:
        args.rounds = 5 if args.quick else 15
    threads_list = [int(t) for t in args.threads.split(",") if t.strip()]
    cases = [c for c in CASES if args.filter in c.name and not (args.quick and c.big)]
    if not cases:
        sys.exit(f"no case matches --filter {args.filter!r}: " + ", ".join(c.name for c in CASES))

    if args.precision == "int8":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import peer_int8

        peer_int8.main(sys.modules[__name__], args, threads_list, cases)
        return
    if args.precision == "bf16":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import peer_bf16

        peer_bf16.main(sys.modules[__name__], args, threads_list, cases)
        return
    start, whole_run = time.perf_counter(), CpuMonitor()
    peaks, peak_note, peak_warnings = measure_peaks(threads_list, args.peak_gflops)
    header(args, threads_list, peaks, peak_note, peak_warnings)
    md_rows = []

    for case in cases:
        x, layers = make_data(case)
        with set_threads(max(threads_list)):
            ref, bound = reference_and_bound(x, layers, case.dtype)
        base, linears = build_lincore(case, x, layers)
        base += build_numpy(x, layers) + build_torch(case, x, layers)
        model_bytes = onnx_model(case, layers)
        key = "f32" if case.dtype == np.float32 else "f64"
        small_m = case.m <= 8  # bandwidth-bound: judge by GB/s of weights read

        for t in threads_list:
            with set_threads(t):
                engines = list(base)
                try:
                    engines.append(build_ort(model_bytes, x, t))
                except Exception as e:  # float64 Gemm is optional for onnxruntime
                    if case.dtype == np.float32:
                        raise
                    print(f"# case={case.name} ort skipped: {type(e).__name__}: {e}")
                err = {}
                for e in engines:  # each engine checked in the mode it is timed in
                    with e.mode():
                        err[e.name] = check(case.name, e.name, e.to_numpy(e.call()), ref, bound)
                samples, reps, others = time_engines(engines, args.rounds)

            med = {n: statistics.median(s) for n, s in samples.items()}
            mem = lincore_memory(case, linears)
            for e in engines:
                fields = {
                    "case": case.name,
                    "threads": t,
                    "engine": e.name,
                    "median_us": f"{med[e.name] * 1e6:.3f}",
                    "min_us": f"{min(samples[e.name]) * 1e6:.3f}",
                    "gflops": f"{case.flops / med[e.name] / 1e9:.2f}",
                    "pct_peak": f"{100 * case.flops / med[e.name] / 1e9 / peaks[t][key]:.1f}",
                }
                if small_m:
                    fields["gbps"] = f"{case.param_bytes / med[e.name] / 1e9:.2f}"
                fields["err_over_tol"] = f"{err[e.name]:.3g}"
                fields["reps"] = reps[e.name]
                if e.name.startswith("lincore"):
                    fields.update(mem)
                print(fmt_line(fields))
            peers = {n: med[n] for n in PEERS if n in med}
            best = min(peers, key=peers.get)
            for lc in ("lincore", "lincore_no_grad"):
                print(
                    fmt_line(
                        {
                            "case": case.name,
                            "threads": t,
                            "best_peer": best,
                            "lincore_call": "plain" if lc == "lincore" else "no_grad",
                            "lincore_us": f"{med[lc] * 1e6:.3f}",
                            "peer_us": f"{peers[best] * 1e6:.3f}",
                            "ratio": f"{peers[best] / med[lc]:.3f}",
                            "others_cpu_pct": others,
                        }
                    )
                )
            sys.stdout.flush()
            md_rows.append(
                {
                    "case": case.name,
                    "threads": t,
                    "lincore": med["lincore"] * 1e6,
                    "numpy": med["numpy"] * 1e6,
                    "torch": min(med["torch"], med["torch_no_grad"]) * 1e6,
                    "ort": f"{med['ort'] * 1e6:.2f}" if "ort" in med else "–",
                    "best_peer": best,
                    "ratio": peers[best] / med["lincore"],
                    "pct_peak": 100 * case.flops / med["lincore"] / 1e9 / peaks[t][key],
                }
            )
            del engines, samples
        del base, linears, ref, bound, x, layers

    others = whole_run.others_pct()
    print(
        f"# done in {time.perf_counter() - start:.0f} s; loadavg="
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}; other processes used {others}% of "
        "the CPUs during the run"
        + (
            " -- WARNING: timings shared the machine; rerun on a quiet one"
            if others != "na" and int(others) > 10
            else ""
        )
    )
    if args.markdown:
        markdown(md_rows)


if __name__ == "__main__":
    main()
