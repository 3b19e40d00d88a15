"""What the batch-inference examples share (batch_inference_ray.py, batch_inference_dask.py,
bench/scaleout_bench.py): the models, the synthetic rows, scoring one batch, and how many lincore
threads a worker gets. Engine-free: it imports neither Ray nor Dask."""

from __future__ import annotations

import os

import numpy as np

import lincore
from lincore import nn

# name -> layer widths, input first. "mnist" is the 784-256-128-10 classifier; "mlp1024x4" the
# 1024-wide stack of bench/peer_bench.py and bench/train_bench.py.
MODELS = {"mnist": (784, 256, 128, 10), "mlp1024x4": (1024, 1024, 1024, 1024)}


def make_model(name: str = "mnist", seed: int = 0) -> nn.Sequential:
    """The MLP `name` (Linear + ReLU between layers), seeded, in eval mode."""
    widths = MODELS[name]
    lincore.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (k, n) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(k, n))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).eval()


def features(ids: np.ndarray, width: int) -> np.ndarray:
    """Row i's features, a function of i alone (so any split into blocks, shards or batches gives
    the same rows): float32 values in [-1, 1] from a fixed formula, computed in float64."""
    ids = np.asarray(ids, dtype=np.float64).reshape(-1, 1)
    cols = np.arange(width, dtype=np.float64)
    return np.sin(ids * (0.0137 + cols * 1e-4) + cols * 0.71).astype(np.float32)


def score(model: nn.Module, batch: np.ndarray) -> np.ndarray:
    """The model's outputs for a (rows, features) float32 batch. No copy in (lincore.from_numpy
    shares the batch's memory, a read-only or misaligned block included) and none out (the
    returned array views the output tensor). Grad mode off: no autograd graph per batch."""
    with lincore.no_grad():
        return np.asarray(model(lincore.from_numpy(batch)))


def threads_for(cpus: float) -> int:
    """lincore threads for a worker given `cpus` CPUs: one per whole CPU, at least one, so that
    workers x threads never exceeds the cores the engine hands out."""
    return max(1, int(cpus))


def one_process(model: nn.Module, ids: np.ndarray, width: int, batch_rows: int) -> np.ndarray:
    """The reference: the same model over the same rows in this process, batch by batch."""
    parts = [
        score(model, features(ids[i : i + batch_rows], width))
        for i in range(0, len(ids), batch_rows)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, model[-1].out_features), np.float32)


def cores() -> int:
    """The CPUs this process may run on (affinity mask), as lincore's default thread count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
