"""The drop-in for PyTorch code, timed: the same torch model run by torch eager, by
lincore.optimize(model), by torch.compile(model) (inductor) and by torch.compile(model,
backend="lincore"), torch tensors in and out, 1 thread, interleaved, medians (and mins: the host
is shared). The same layers as a native lincore Sequential are timed beside them, for the cost
of the swap itself.

    python3 bench/dropin_bench.py            # every case
    python3 bench/dropin_bench.py --quick    # fewer rounds, no inductor (it compiles for minutes)

Cases: the 784-256-128-10 ReLU MLP at batch 1 (no_grad, and with autograd on), 64 and 1024; the
1024x4 MLP (four 1024-wide Linear+ReLU) at 256; the MLP with a BatchNorm1d in the middle (which
lincore leaves to torch) at 64; a training step (forward, CrossEntropyLoss, backward, SGD) of the
MLP at batch 64.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import functools
import platform
import warnings
from typing import Any, Callable

import torch
from timing import interleaved

import lincore

tnn = torch.nn


def mlp(widths: list, batchnorm_after: int | None = None) -> Any:
    torch.manual_seed(0)
    layers: list = []
    for i in range(len(widths) - 1):
        layers.append(tnn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            if batchnorm_after == i:
                layers.append(tnn.BatchNorm1d(widths[i + 1]))
            layers.append(tnn.ReLU())
    return tnn.Sequential(*layers).eval()


def engines(model: Any, inductor: bool) -> dict:
    """The model as each engine runs it (each its own copy: optimize swaps in place)."""
    out = {"torch": model, "optimize": lincore.optimize(model)}
    if inductor:
        out["inductor"] = torch.compile(copy.deepcopy(model))
    out["compile-lincore"] = torch.compile(copy.deepcopy(model), backend="lincore")
    # torch.compile's own per-call cost: the captured graph run as it is.
    out["compile-noop"] = torch.compile(copy.deepcopy(model), backend="eager")
    return out


def forward_case(model: Any, x: Any, grad: bool, inductor: bool, rounds: int) -> dict:
    calls: dict[str, Callable] = {
        name: functools.partial(m, x) for name, m in engines(model, inductor).items()
    }
    if not any(isinstance(m, tnn.BatchNorm1d) for m in model.modules()):
        native = lincore.from_torch(model)
        lx = lincore.from_numpy(x.numpy())
        calls["native lincore"] = lambda: native(lx)
    ctx = contextlib.nullcontext() if grad else torch.no_grad()
    lctx = contextlib.nullcontext() if grad else lincore.no_grad()
    with ctx, lctx:
        for f in calls.values():  # compile outside the timing
            f()
        return interleaved(calls, rounds)


def train_case(model: Any, batch: int, inductor: bool, rounds: int) -> dict:
    torch.manual_seed(1)
    x = torch.randn(batch, 784)
    t = torch.randint(0, 10, (batch,))
    loss_fn = tnn.CrossEntropyLoss()
    calls: dict[str, Callable] = {}
    for name, m in engines(model.train(), inductor).items():
        opt = torch.optim.SGD(m.parameters(), lr=1e-3)

        def step(m: Any = m, opt: Any = opt) -> None:
            opt.zero_grad()
            loss_fn(m(x), t).backward()
            opt.step()

        calls[name] = step
    for f in calls.values():
        f()
    return interleaved(calls, rounds)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds, no inductor")
    p.add_argument("--rounds", type=int, default=None)
    args = p.parse_args()
    rounds = args.rounds or (5 if args.quick else 15)
    inductor = not args.quick
    torch.set_num_threads(1)
    lincore.set_num_threads(1)
    warnings.filterwarnings("ignore")
    print(
        f"# dropin_bench {datetime.datetime.now().isoformat(timespec='seconds')} lincore "
        f"{lincore.__version__} torch {torch.__version__} on {platform.processor() or 'cpu'} "
        f"({lincore.cpu_capability()}), 1 thread, {rounds} rounds, medians (min) in us"
    )
    mlp784 = [784, 256, 128, 10]
    cases = [
        ("784-256-128-10 batch 1 no_grad", lambda: forward_case(
            mlp(mlp784), torch.randn(1, 784), False, inductor, rounds)),
        ("784-256-128-10 batch 1 autograd", lambda: forward_case(
            mlp(mlp784), torch.randn(1, 784), True, inductor, rounds)),
        ("784-256-128-10 batch 64 no_grad", lambda: forward_case(
            mlp(mlp784), torch.randn(64, 784), False, inductor, rounds)),
        ("784-256-128-10 batch 1024 no_grad", lambda: forward_case(
            mlp(mlp784), torch.randn(1024, 784), False, inductor, rounds)),
        ("1024x4 batch 256 no_grad", lambda: forward_case(
            mlp([1024] * 5), torch.randn(256, 1024), False, inductor, rounds)),
        ("784-256(BatchNorm1d)-128-10 batch 64 no_grad", lambda: forward_case(
            mlp(mlp784, batchnorm_after=0), torch.randn(64, 784), False, inductor, rounds)),
        ("train step 784-256-128-10 batch 64", lambda: train_case(
            mlp(mlp784), 64, inductor, rounds)),
    ]  # fmt: skip
    print("| case | engine | median us | min us | vs torch |")
    print("|---|---|---|---|---|")
    for name, run in cases:
        res = run()
        base = res["torch"][0]
        for engine, (median, low) in res.items():
            print(f"| {name} | {engine} | {median:.2f} | {low:.2f} | {base / median:.2f}x |")
        torch._dynamo.reset()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
