"""lincore's bf16 layers through the public API against its fp32 ones: nn.Linear + ReLU (and the
784-256-128-10 MLP) built in fp32, copied, and converted with model.bfloat16(); both run under
no_grad on the same input (bf16 for the bf16 model), weights packed once, timed interleaved
(bench/timing.py). What this adds to peer_bench.py --precision bf16 (the kernels alone) is the
layer's own path: the pack cache, the dtype checks, the Sequential plan.

    python bench/bf16_layers.py [--threads 1] [--rounds 15]
"""

from __future__ import annotations

import argparse
import copy

from timing import interleaved

import lincore
import lincore.nn as nn

CASES = [  # (name, batch, layer sizes)
    ("1x4096->4096", 1, [4096, 4096]),
    ("8x4096->4096", 8, [4096, 4096]),
    ("256x784->256", 256, [784, 256]),
    ("1024x1024->1024", 1024, [1024, 1024]),
    ("MLP 784-256-128-10, batch 1", 1, [784, 256, 128, 10]),
    ("MLP 784-256-128-10, batch 1024", 1024, [784, 256, 128, 10]),
]


def model_of(sizes: list[int]) -> nn.Module:
    layers: list[nn.Module] = []
    for i, (k, n) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(k, n))
        if i < len(sizes) - 2 or len(sizes) == 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    lincore.set_num_threads(args.threads)
    print(
        f"threads {lincore.get_num_threads()}, fp32 level {lincore.cpu_capability()}, "
        f"bf16 level {lincore.cpu_capability('bf16')}"
    )
    print(f"{'case':32} {'fp32 us':>10} {'bf16 us':>10} {'speed-up':>9}")
    with lincore.no_grad():
        for name, batch, sizes in CASES:
            lincore.manual_seed(0)
            f32 = model_of(sizes)
            b16 = copy.deepcopy(f32).bfloat16()
            x32 = lincore.randn(batch, sizes[0])
            x16 = x32.bfloat16()
            engines = {"fp32": (lambda m=f32, x=x32: m(x)), "bf16": (lambda m=b16, x=x16: m(x))}
            times = interleaved(engines, args.rounds)
            a, b = times["fp32"][0], times["bf16"][0]
            print(f"{name:32} {a:10.1f} {b:10.1f} {a / b:8.2f}x")


if __name__ == "__main__":
    main()
