#!/usr/bin/env python3
"""ONNX and scikit-learn benchmark: the same .onnx file run by lincore.onnx.load and by
onnxruntime (CPUExecutionProvider; plain `run` and `run_with_iobinding`), and a fitted
scikit-learn MLPClassifier's predict_proba against lincore.from_sklearn, all on 1 thread.
Engines are timed interleaved (a rotated order each round) and medians over rounds reported,
one greppable line per (case, engine). See bench/README.md, "ONNX and scikit-learn".

    python3 bench/onnx_bench.py            # about a minute
    python3 bench/onnx_bench.py --quick    # a few seconds, fewer rounds
"""

from __future__ import annotations

import argparse
import datetime
import warnings
from typing import Any, Callable

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from threadpoolctl import threadpool_limits

import lincore
import lincore.onnx
from timing import interleaved


def mlp_onnx(widths: list[int], softmax: bool = False, seed: int = 0) -> bytes:
    """A ReLU MLP as torch.onnx.export writes it (Gemm with transB=1), dynamic batch."""
    rng = np.random.default_rng(seed)
    nodes, inits, cur = [], [], "input"
    for i, (k, n) in enumerate(zip(widths[:-1], widths[1:])):
        bound = 1 / np.sqrt(k)
        inits.append(
            numpy_helper.from_array(rng.uniform(-bound, bound, (n, k)).astype(np.float32), f"w{i}")
        )
        inits.append(
            numpy_helper.from_array(rng.uniform(-bound, bound, n).astype(np.float32), f"b{i}")
        )
        nodes.append(helper.make_node("Gemm", [cur, f"w{i}", f"b{i}"], [f"g{i}"], transB=1))
        cur = f"g{i}"
        if i < len(widths) - 2:
            nodes.append(helper.make_node("Relu", [cur], [f"r{i}"]))
            cur = f"r{i}"
    if softmax:
        nodes.append(helper.make_node("Softmax", [cur], ["sm"], axis=-1))
        cur = "sm"
    nodes.append(helper.make_node("Identity", [cur], ["output"]))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", widths[0]])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", widths[-1]])],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def sklearn_mlp(seed: int = 0):
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((2000, 64))
    y = (X[:, :4] @ rng.standard_normal((4, 5))).argmax(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: timing does not need convergence
        return MLPClassifier((128, 64), max_iter=20, random_state=seed).fit(X, y)


def skl2onnx_bytes(est, zipmap: bool) -> bytes:
    from skl2onnx import to_onnx

    options = None if zipmap else {id(est): {"zipmap": False}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return to_onnx(est, np.zeros((1, 64), np.float32), options=options).SerializeToString()


# -- engines --------------------------------------------------------------------------------


def ort_session(data: bytes) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def onnx_engines(data: bytes, x: np.ndarray) -> dict[str, Callable[[], Any]]:
    sess = ort_session(data)
    name = sess.get_inputs()[0].name
    binding = sess.io_binding()
    binding.bind_cpu_input(name, x)
    for o in sess.get_outputs():
        binding.bind_output(o.name, "cpu")
    feed = {name: x}
    model = lincore.onnx.load(data)
    t = lincore.from_numpy(x)
    # Sanity only (the tests hold both to the tolerance rule): the first outputs agree.
    ours = model(t)
    ours = ours[0] if isinstance(ours, tuple) else ours
    theirs = sess.run(None, feed)[0]
    if isinstance(theirs, np.ndarray) and theirs.dtype.kind == "f":
        np.testing.assert_allclose(np.asarray(ours), theirs, rtol=1e-4, atol=1e-5)
    return {
        "lincore": lambda: model(t),
        "ort_run": lambda: sess.run(None, feed),
        "ort_iobinding": lambda: sess.run_with_iobinding(binding),
    }


def sklearn_engines(est, x: np.ndarray) -> dict[str, Callable[[], Any]]:
    model = lincore.from_sklearn(est)
    np.testing.assert_allclose(model.predict_proba(x), est.predict_proba(x), rtol=1e-12, atol=1e-12)
    return {"lincore": lambda: model.predict_proba(x), "sklearn": lambda: est.predict_proba(x)}


# -- timing ---------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds (a few seconds)")
    p.add_argument("--rounds", type=int, default=None)
    args = p.parse_args()
    rounds = args.rounds or (5 if args.quick else 21)
    lincore.set_num_threads(1)
    rng = np.random.default_rng(0)
    est = sklearn_mlp()
    mlp_small = mlp_onnx([784, 256, 128, 10])
    mlp_wide = mlp_onnx([1024, 1024, 1024, 1024, 1024])
    skl = skl2onnx_bytes(est, zipmap=False)
    skl_zip = skl2onnx_bytes(est, zipmap=True)
    cases = [
        ("mlp784-256-128-10", mlp_small, 784, 1),
        ("mlp784-256-128-10", mlp_small, 784, 64),
        ("mlp784-256-128-10", mlp_small, 784, 1024),
        ("mlp1024x4", mlp_wide, 1024, 256),
        ("skl2onnx-mlp64-128-64-5", skl, 64, 1),
        ("skl2onnx-mlp64-128-64-5", skl, 64, 1024),
        ("skl2onnx-mlp64-128-64-5-zipmap", skl_zip, 64, 1),
    ]
    print(
        f"# onnx_bench {datetime.datetime.now().isoformat(timespec='seconds')} lincore "
        f"{lincore.__version__} onnxruntime {ort.__version__} onnx {onnx.__version__} "
        f"isa={lincore.cpu_capability()} threads=1 rounds={rounds}"
    )
    rows = []
    with threadpool_limits(limits=1):
        for name, data, k, batch in cases:
            x = rng.standard_normal((batch, k)).astype(np.float32)
            us = interleaved(onnx_engines(data, x), rounds)
            best = min(us["ort_run"][0], us["ort_iobinding"][0])
            rows.append((f"{name}-b{batch}", us, best / us["lincore"][0], "onnxruntime"))
        for batch in (1, 1024):
            x = rng.standard_normal((batch, 64))
            us = interleaved(sklearn_engines(est, x), rounds)
            rows.append(
                (
                    f"sklearn-predict_proba-b{batch}",
                    us,
                    us["sklearn"][0] / us["lincore"][0],
                    "scikit-learn",
                )
            )
    for case, us, speedup, peer in rows:
        times = " ".join(f"{k}_us={med:.2f} {k}_min_us={low:.2f}" for k, (med, low) in us.items())
        print(f"case={case} {times} speedup_vs_{peer.replace('-', '')}={speedup:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
