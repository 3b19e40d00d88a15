"""Training-step benchmark: lincore against PyTorch in one process, the two engines interleaved,
medians over rounds, at 1 and 2 threads. A step is forward, cross-entropy loss, backward and an
SGD update (momentum 0.9) of an MLP with ReLU; both engines start from the same weights and
data, and the first step's losses are checked to agree before anything is timed.

    pip install ".[bench]"
    python3 bench/train_bench.py                 # all cases, 1 and 2 threads
    python3 bench/train_bench.py --rounds 5 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

import numpy as np
import torch

import lincore
import lincore.nn as lnn

CASES = {  # name: (layer widths, batch)
    "mlp784-256-128-10-b64": ((784, 256, 128, 10), 64),
    "mlp1024x4-b256": ((1024, 1024, 1024, 1024), 256),
}


def build(widths: tuple, rng: np.random.Generator) -> tuple:
    """The same MLP (Linear + ReLU between) in both libraries, with the same weights."""
    tlayers, llayers = [], []
    for i, (fan_in, fan_out) in enumerate(zip(widths, widths[1:])):
        bound = 1 / np.sqrt(fan_in)
        w = rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32)
        b = rng.uniform(-bound, bound, fan_out).astype(np.float32)
        t, l_ = torch.nn.Linear(fan_in, fan_out), lnn.Linear(fan_in, fan_out)
        with torch.no_grad():
            t.weight.copy_(torch.from_numpy(w))
            t.bias.copy_(torch.from_numpy(b))
        l_.load_state_dict({"weight": w, "bias": b})
        tlayers.append(t)
        llayers.append(l_)
        if i + 2 < len(widths):
            tlayers.append(torch.nn.ReLU())
            llayers.append(lnn.ReLU())
    return torch.nn.Sequential(*tlayers), lnn.Sequential(*llayers)


def make_steps(widths: tuple, batch: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    tmodel, lmodel = build(widths, rng)
    x = rng.standard_normal((batch, widths[0])).astype(np.float32)
    y = rng.integers(0, widths[-1], batch)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    lx, ly = lincore.tensor(x), lincore.tensor(y)
    topt = torch.optim.SGD(tmodel.parameters(), lr=1e-3, momentum=0.9)
    lopt = lincore.optim.SGD(lmodel.parameters(), lr=1e-3, momentum=0.9)
    tloss, lloss = torch.nn.CrossEntropyLoss(), lnn.CrossEntropyLoss()

    def torch_step() -> float:
        topt.zero_grad()
        loss = tloss(tmodel(tx), ty)
        loss.backward()
        topt.step()
        return loss.item()

    def lincore_step() -> float:
        lopt.zero_grad()
        loss = lloss(lmodel(lx), ly)
        loss.backward()
        lopt.step()
        return loss.item()

    first_t, first_l = torch_step(), lincore_step()
    # Both start from identical weights and data: the first losses agree to float32 rounding of
    # a few thousand-term dot products (a loose, stated bound: 1e-4 relative).
    if abs(first_t - first_l) > 1e-4 * max(1.0, abs(first_t)):
        raise SystemExit(f"first-step losses disagree: torch {first_t} lincore {first_l}")
    return {"torch": torch_step, "lincore": lincore_step}


def time_engine(step, min_seconds: float) -> float:
    """Seconds per step over a run of back-to-back steps lasting at least min_seconds."""
    reps, elapsed = 1, 0.0
    while True:
        start = time.perf_counter()
        for _ in range(reps):
            step()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / reps
        reps *= 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--filter", default="")
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(
        f"# lincore training-step benchmark  commit={commit} lincore={lincore.__version__} "
        f"torch={torch.__version__} isa={lincore.cpu_capability()}"
    )
    print(
        "# step = zero_grad + forward + CrossEntropyLoss + backward + SGD(momentum=0.9); "
        "engines interleaved, median over rounds"
    )
    for threads in [int(t) for t in args.threads.split(",")]:
        lincore.set_num_threads(threads)
        torch.set_num_threads(threads)
        for name, (widths, batch) in CASES.items():
            if args.filter not in name:
                continue
            steps = make_steps(widths, batch, seed=0)
            for step in steps.values():  # warm up
                time_engine(step, 0.1)
            samples: dict[str, list[float]] = {k: [] for k in steps}
            for r in range(args.rounds):
                for engine in list(steps) if r % 2 == 0 else list(reversed(steps)):
                    samples[engine].append(time_engine(steps[engine], 0.05))
            med = {k: statistics.median(v) * 1e6 for k, v in samples.items()}
            for engine, us in med.items():
                print(
                    f"case={name} threads={threads} engine={engine} median_us={us:.1f} "
                    f"min_us={min(samples[engine]) * 1e6:.1f}"
                )
            print(
                f"case={name} threads={threads} speedup_vs_torch="
                f"{med['torch'] / med['lincore']:.3f}"
            )


if __name__ == "__main__":
    main()
