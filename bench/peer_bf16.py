"""peer_bench.py --precision bf16: lincore in bf16 (model.bfloat16(), bf16 in and out) against
PyTorch in bf16 (torch.nn.functional.linear on bf16 tensors, oneDNN), with lincore's fp32 model
as the baseline, on the fp32 cases. All take the same bf16 input and weights (rounded once,
before timing); the ReLU between layers is fused into lincore's kernel and in place
(torch.relu_) for torch. lincore_bgemm is the bare kernel entry (_core._bgemm on weights packed
once): the layer's own cost is the difference. onnxruntime is tried with bf16 MatMul + Add and
reported skipped when its CPU provider has no such kernel.
Each engine's error against the float64 result of the fp32 model is printed side by side
(max |y - ref| / max |ref|); the engines are timed interleaved like the fp32 ones. Called from
peer_bench.main, which passes itself in as `pb` (its helpers and cases)."""

from __future__ import annotations

import copy
import functools
import statistics
import sys

import numpy as np


def _widen(bits):
    """bf16 bits (uint16) -> float32, exactly."""
    return (np.asarray(bits, np.uint16).astype(np.uint32) << 16).view(np.float32)


def _lincore(pb, x, layers):
    """lincore's model in fp32 (the baseline) and in bf16 (model.bfloat16(): nn.Linear packs its
    bf16 weight once, ReLU fused in the Sequential), and the bare kernel entry on the same packed
    weights (_core._bgemm, ReLU fused; what the layer costs on top of the kernel)."""
    lincore, lnn, core = pb.lincore, pb.lnn, pb.lincore._core
    mods = []
    for i, (w, b) in enumerate(layers):
        lin = lnn.Linear(w.shape[1], w.shape[0])
        lin.load_state_dict({"weight": w.copy(), "bias": b.copy()})
        mods.append(lin)
        if i < len(layers) - 1:
            mods.append(lnn.ReLU())
    model = mods[0] if len(mods) == 1 else lnn.Sequential(*mods)
    xl = lincore.from_numpy(x)
    fp32 = pb.Engine("lincore_fp32", functools.partial(model, xl), np.asarray, lincore.no_grad)
    model16 = copy.deepcopy(model).bfloat16()
    x16 = xl.bfloat16()
    bf16 = pb.Engine(
        "lincore_bf16",
        functools.partial(model16, x16),
        lambda y: np.asarray(y.float()),
        lincore.no_grad,
    )
    # The bias in bf16 too, as the bf16 Linear and torch's hold it (then widened exactly).
    packed = [
        core._bgemm_pack(core._floats_to_bf16(w), _widen(core._floats_to_bf16(b)))
        for w, b in layers
    ]
    xb = core._floats_to_bf16(x)
    last = len(packed) - 1
    bgemm = core._bgemm

    def kernel_call():
        h = xb
        for i, pw in enumerate(packed):
            h = bgemm(h, pw, None, "relu" if i < last else "none", True)
        return h

    kernel = pb.Engine("lincore_bgemm", kernel_call, _widen, lincore.no_grad)
    held = sum(pw.nbytes for pw in packed)
    return [fp32, bf16, kernel], held


def _torch(pb, x, layers):
    torch = pb.torch
    linear = torch.nn.functional.linear
    ws = [(torch.from_numpy(w).bfloat16(), torch.from_numpy(b).bfloat16()) for w, b in layers]
    xt = torch.from_numpy(x).bfloat16()
    last = len(ws) - 1

    def call():
        h = xt
        for i, (w, b) in enumerate(ws):
            h = linear(h, w, b)
            if i < last:
                torch.relu_(h)
        return h

    return [pb.Engine("torch_bf16", call, lambda y: y.float().numpy(), torch.no_grad)]


def _ort(pb, case, layers, x, threads):
    """MatMul (W^T) + Add per layer in bf16, Relu between: an Engine, or the reason there is
    none (onnxruntime 1.32's CPU provider has no bf16 MatMul or Gemm)."""
    helper, TensorProto, core = pb.helper, pb.TensorProto, pb.lincore._core
    bf = TensorProto.BFLOAT16

    def init(a, name):
        bits = core._floats_to_bf16(np.ascontiguousarray(a, np.float32))
        return helper.make_tensor(name, bf, a.shape, vals=bits.tobytes(), raw=True)

    model = pb.onnx_model(case, layers, matmul=True, elem_type=bf, initializer=init)
    try:
        ort = pb.ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    except Exception as e:  # no bf16 kernel: say so, time nothing
        return None, f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
    # Should a later onnxruntime run it: bf16 bits in, timed only (no error column: na).
    xv = pb.ort.OrtValue.ortvalue_from_numpy(core._floats_to_bf16(x))
    return pb.Engine("ort_bf16", lambda: sess.run_with_ortvalues(None, {"x": xv}), None), ""


def main(pb, args, threads_list, cases) -> None:
    cases = [c for c in cases if c.dtype == np.float32]
    print(
        "# bf16: lincore (model.bfloat16(), bf16 in/out, ReLU fused; lincore_bgemm: the bare "
        "kernel entry on the same packed weights) vs torch bf16 (F.linear on bf16 tensors, "
        "torch.relu_ between layers); lincore_fp32 is lincore's fp32 model; err = max|y - ref| "
        "/ max|ref| against the float64 result of the fp32 model"
    )
    for case in cases:
        x, layers = pb.make_data(case)
        ref, _ = pb.reference_and_bound(x, layers, np.float32)  # the float64 chain
        scale = float(np.abs(ref).max()) or 1.0
        base, held = _lincore(pb, x, layers)
        base += _torch(pb, x, layers)
        bf16_bytes = sum(2 * (w.size + b.size) for w, b in layers)
        for t in threads_list:
            with pb.set_threads(t):
                engines = list(base)
                ort_engine, why = _ort(pb, case, layers, x, t)
                if ort_engine is None:
                    print(f"# case={case.name} threads={t} ort_bf16 skipped: {why}")
                else:
                    engines.append(ort_engine)
                err = pb.relative_errors(engines, ref, scale)
                samples, _, others = pb.time_engines(engines, args.rounds)
            med = {n: statistics.median(s) for n, s in samples.items()}
            for e in engines:
                fields = {
                    "case": case.name,
                    "precision": "fp32" if e.name.endswith("fp32") else "bf16",
                    "threads": t,
                    "engine": e.name,
                    "median_us": f"{med[e.name] * 1e6:.3f}",
                    "min_us": f"{min(samples[e.name]) * 1e6:.3f}",
                    "gflops": f"{case.flops / med[e.name] / 1e9:.2f}",
                    "err_vs_f64": f"{err[e.name]:.3g}" if e.name in err else "na",
                }
                if case.m <= 8:
                    fields["gbps"] = f"{bf16_bytes / med[e.name] / 1e9:.2f}"
                if e.name == "lincore_bgemm":
                    fields["packed_over_bf16_params"] = f"{held / bf16_bytes:.3f}"
                print(pb.fmt_line(fields))
            peers = {n: med[n] for n in ("torch_bf16", "ort_bf16") if n in med}
            best = min(peers, key=peers.get)
            print(
                pb.fmt_line(
                    {
                        "case": case.name,
                        "threads": t,
                        "best_bf16_peer": best,
                        "lincore_bf16_us": f"{med['lincore_bf16'] * 1e6:.3f}",
                        "peer_us": f"{peers[best] * 1e6:.3f}",
                        "ratio": f"{peers[best] / med['lincore_bf16']:.3f}",
                        "speedup_vs_lincore_fp32": (
                            f"{med['lincore_fp32'] / med['lincore_bf16']:.2f}"
                        ),
                        "others_cpu_pct": others,
                    }
                )
            )
            sys.stdout.flush()
            del engines, samples
