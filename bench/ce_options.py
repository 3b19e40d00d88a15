"""Cross-entropy's options on the training path: forward + backward time of F.cross_entropy for
the plain case (its vectorized 2-D path) and each option (the general C++ path, csrc/nn/loss.cpp),
next to PyTorch's same call when torch is installed.

    python3 bench/ce_options.py [--repeat 50] [--threads 1]

Prints one line per case: `case=... n=... c=... lincore_us=... torch_us=...` (median of the
repeats, each a forward and a backward). Numbers from a shared machine vary; compare within a run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import lincore
import lincore.nn.functional as F


def cases(n, c):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((n, c)).astype(np.float32)
    t = rng.integers(0, c, n)
    q = rng.dirichlet(np.ones(c), n).astype(np.float32)
    w = rng.uniform(0.5, 2, c).astype(np.float32)
    z4 = rng.standard_normal((n // 16, c, 4, 4)).astype(np.float32)
    t4 = rng.integers(0, c, (n // 16, 4, 4))
    return {
        "plain": (z, t, {}),
        "weight": (z, t, {"weight": w}),
        "ignore_index": (z, np.where(t == 0, -100, t), {}),
        "label_smoothing": (z, t, {"label_smoothing": 0.1}),
        "probabilities": (z, q, {}),
        "k_dim_4x4": (z4, t4, {}),
    }


def timed(fn, repeat):
    fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    lincore.set_num_threads(args.threads)
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    for n, c in ((256, 10), (256, 1000)):
        for name, (z, t, kw) in cases(n, c).items():
            lz = lincore.tensor(z).requires_grad_()
            lt = lincore.tensor(t)
            lkw = {k: lincore.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}

            def run_lincore(lz=lz, lt=lt, lkw=lkw):
                lz.grad = None
                F.cross_entropy(lz, lt, **lkw).backward()

            line = f"case={name} n={n} c={c} lincore_us={timed(run_lincore, args.repeat):.1f}"
            if torch is not None:
                tz = torch.tensor(z, requires_grad=True)
                tt = torch.tensor(t)
                tkw = {
                    k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()
                }

                def run_torch(tz=tz, tt=tt, tkw=tkw):
                    tz.grad = None
                    torch.nn.functional.cross_entropy(tz, tt, **tkw).backward()

                line += f" torch_us={timed(run_torch, args.repeat):.1f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
