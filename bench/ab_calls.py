"""A/B of lincore's per-call cost between two installs (e.g. the previous commit and this one).

Each install is a Python interpreter that imports its own lincore (a venv). Cases: a 1x3->2
Linear and a 784-256-128-10 MLP at batch 1, each under no_grad and recorded, and an SGD
training step of that MLP at batch 64; one thread.

    python3 bench/ab_calls.py --a OLD/bin/python --b NEW/bin/python             # wall clock
    python3 bench/ab_calls.py --a OLD/bin/python --b NEW/bin/python --callgrind # instructions

Wall clock: ROUNDS rounds, each running A then B in fresh processes; a process reports the
median of 9 timeit repeats; the table gives the median over rounds and B/A. The host is noisy:
read the per-round values too. Callgrind: instructions per call from the difference of two
runs of N1 and N2 calls (deterministic for the same binaries; valgrind has no AVX-512, so the
kernels run their AVX2 family there).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

CASES = ["lin_nograd", "lin_rec", "mlp_nograd", "mlp_rec", "train"]

# The code each process runs: build the case, then time it or run it `count` times.
CHILD = r"""
import statistics, sys, timeit
import numpy as np
import lincore
import lincore.nn as nn

case, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
lincore.set_num_threads(1)
lincore.manual_seed(0)
if case.startswith("lin"):
    model, x = nn.Linear(3, 2), lincore.randn(1, 3)
else:
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                          nn.Linear(128, 10))
    x = lincore.randn(1, 784)
# Calls are made 100 to a Python loop (one for the training step), so that timeit's own call
# and the no_grad context are spread over them, as in a user's loop.
per = 1 if case == "train" else 100
if case == "train":
    x, y = lincore.randn(64, 784), lincore.tensor(np.arange(64) % 10)
    opt = lincore.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def some():
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
elif case.endswith("nograd"):
    def some():
        with lincore.no_grad():
            for _ in range(100):
                model(x)
else:
    def some():
        for _ in range(100):
            model(x)

if mode == "run":
    for _ in range(count // per):
        some()
else:
    times = timeit.repeat(some, number=count // per, repeat=9)
    print(statistics.median(times) / count * 1e6)
"""

TIMED_CALLS = {
    "lin_nograd": 20000,
    "lin_rec": 20000,
    "mlp_nograd": 2000,
    "mlp_rec": 2000,
    "train": 50,
}
CALLGRIND_CALLS = {"train": (5, 15)}  # others: (2000, 6000)


def _env() -> dict:
    env = dict(os.environ, LINCORE_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONHASHSEED="0")
    return env


def wall(python: str, case: str) -> float:
    out = subprocess.run(
        [python, "-c", CHILD, case, "time", str(TIMED_CALLS[case])],
        capture_output=True,
        text=True,
        env=_env(),
        check=True,
        timeout=600,
    )
    return float(out.stdout.strip())


def instructions(python: str, case: str, count: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out_file = os.path.join(tmp, "callgrind.out")
        subprocess.run(
            [
                "setarch",
                "-R",
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out_file}",
                python,
                "-c",
                CHILD,
                case,
                "run",
                str(count),
            ],
            capture_output=True,
            env=_env(),
            check=True,
            timeout=1800,
        )
        with open(out_file) as f:
            total = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M)
    assert total, "callgrind wrote no total"
    return int(total.group(1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--a", required=True, help="the baseline install's python")
    p.add_argument("--b", required=True, help="the install under test's python")
    p.add_argument("--cases", nargs="+", default=CASES, choices=CASES)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--callgrind", action="store_true", help="count instructions instead")
    args = p.parse_args()
    for case in args.cases:
        if args.callgrind:
            n1, n2 = CALLGRIND_CALLS.get(case, (2000, 6000))
            a, b = (
                (instructions(py, case, n2) - instructions(py, case, n1)) / (n2 - n1)
                for py in (args.a, args.b)
            )
            print(f"{case:11s} A {a:12.0f}  B {b:12.0f}  instructions per call   B/A {b / a:.4f}")
            continue
        ra, rb = [], []
        for _ in range(args.rounds):
            ra.append(wall(args.a, case))
            rb.append(wall(args.b, case))
        a, b = statistics.median(ra), statistics.median(rb)
        print(
            f"{case:11s} A {a:9.3f} us  B {b:9.3f} us  B/A {b / a:.3f}   "
            f"A {[round(v, 3) for v in ra]}  B {[round(v, 3) for v in rb]}"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
