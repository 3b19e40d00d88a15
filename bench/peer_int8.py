"""peer_bench.py --precision int8: lincore.quantize_dynamic against PyTorch's
torch.ao.quantization.quantize_dynamic (per-channel qconfig, fbgemm) and onnxruntime's
quantize_dynamic (per_channel=True, QInt8 weights, on the MatMul + Add form), with lincore's
fp32 model as the baseline, on the fp32 cases. Each engine's error against the float64 result is
printed side by side (max |y - ref| / max |ref|); the int8 engines are timed interleaved like the
fp32 ones. Called from peer_bench.main, which passes itself in as `pb` (its helpers and cases)."""

from __future__ import annotations

import functools
import os
import statistics
import sys
import tempfile

import numpy as np


def _lincore(pb, x, layers):
    lincore, lnn = pb.lincore, pb.lnn
    mods = []
    for i, (w, b) in enumerate(layers):
        lin = lnn.Linear(w.shape[1], w.shape[0])
        lin.load_state_dict({"weight": w.copy(), "bias": b.copy()})
        mods.append(lin)
        if i < len(layers) - 1:
            mods.append(lnn.ReLU())
    model = mods[0] if len(mods) == 1 else lnn.Sequential(*mods)
    q = lincore.quantize_dynamic(model)
    qlayers = (
        [q]
        if isinstance(q, lnn.DynamicQuantizedLinear)
        else [m for m in q if isinstance(m, lnn.DynamicQuantizedLinear)]
    )
    xl = lincore.from_numpy(x)
    return [
        pb.Engine("lincore_fp32", functools.partial(model, xl), np.asarray, lincore.no_grad),
        pb.Engine("lincore_int8", functools.partial(q, xl), np.asarray, lincore.no_grad),
    ], qlayers


def _torch(pb, x, layers):
    torch = pb.torch
    mods = []
    for i, (w, b) in enumerate(layers):
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
        mods.append(lin)
        if i < len(layers) - 1:
            mods.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*mods)
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    q = quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
    call = functools.partial(q, torch.from_numpy(x))
    return [pb.Engine("torch_int8", call, lambda y: y.numpy(), torch.no_grad)]


def _ort(pb, case, layers, x, threads):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "f32.onnx"), os.path.join(d, "int8.onnx")
        with open(src, "wb") as f:
            f.write(pb.onnx_model(case, layers, matmul=True))
        quantize_dynamic(src, dst, per_channel=True, weight_type=QuantType.QInt8)
        with open(dst, "rb") as f:
            qbytes = f.read()
    e = pb.build_ort(qbytes, x, threads)
    e.name = "ort_int8"
    return [e]


def main(pb, args, threads_list, cases) -> None:
    cases = [c for c in cases if c.dtype == np.float32]
    print(
        "# int8 dynamic quantization: lincore (per-row symmetric x, per-channel symmetric W), "
        "torch.ao quantize_dynamic (per_channel_dynamic_qconfig, fbgemm: per-tensor asymmetric "
        "u8 x), onnxruntime quantize_dynamic (per_channel, QInt8 W, u8 x); err = max|y - ref| / "
        "max|ref| against float64"
    )
    for case in cases:
        x, layers = pb.make_data(case)
        ref, _ = pb.reference_and_bound(x, layers, np.float32)  # the float64 chain
        scale = float(np.abs(ref).max()) or 1.0
        base, qlayers = _lincore(pb, x, layers)
        base += _torch(pb, x, layers)
        int8_bytes = sum(w.size for w, _ in layers)
        held = sum(q.nbytes for q in qlayers)
        for t in threads_list:
            with pb.set_threads(t):
                engines = base + _ort(pb, case, layers, x, t)
                err = pb.relative_errors(engines, ref, scale)
                samples, _, others = pb.time_engines(engines, args.rounds)
            med = {n: statistics.median(s) for n, s in samples.items()}
            for e in engines:
                fields = {
                    "case": case.name,
                    "precision": "int8" if e.name.endswith("int8") else "fp32",
                    "threads": t,
                    "engine": e.name,
                    "median_us": f"{med[e.name] * 1e6:.3f}",
                    "min_us": f"{min(samples[e.name]) * 1e6:.3f}",
                    "gops": f"{case.flops / med[e.name] / 1e9:.2f}",
                    "err_vs_f64": f"{err[e.name]:.3g}",
                }
                if e.name == "lincore_int8":
                    fields["bytes_over_int8_weights"] = f"{held / int8_bytes:.3f}"
                print(pb.fmt_line(fields))
            peers = {n: med[n] for n in ("torch_int8", "ort_int8")}
            best = min(peers, key=peers.get)
            speedup = med["lincore_fp32"] / med["lincore_int8"]
            print(
                pb.fmt_line(
                    {
                        "case": case.name,
                        "threads": t,
                        "best_int8_peer": best,
                        "lincore_int8_us": f"{med['lincore_int8'] * 1e6:.3f}",
                        "peer_us": f"{peers[best] * 1e6:.3f}",
                        "ratio": f"{peers[best] / med['lincore_int8']:.3f}",
                        "speedup_vs_lincore_fp32": f"{speedup:.2f}",
                        "others_cpu_pct": others,
                    }
                )
            )
            sys.stdout.flush()
            del engines, samples
