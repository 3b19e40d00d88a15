"""The main job: examples/seed_notebook.py replays the seed notebook with lincore, and prints
what PyTorch prints for the same cells (numbers aside: the random generators differ)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "seed_notebook.py"


def run(backend: str) -> str:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--backend", backend],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def test_notebook_replays_with_lincore():
    out = run("lincore")
    assert "tensor([[1, 2, 3],\n        [4, 5, 6]])" in out
    assert "lincore.Size([2, 3])" in out and "lincore.int64" in out
    assert "tensor([[ 0.3471,  0.4547, -0.2356]])" in out
    assert "RuntimeError: mat1 and mat2 must have the same dtype, but got Long and Float" in out
    assert out.count("Parameter containing:") == 2
    assert out.rstrip().endswith("\n46")
    assert "torch" not in out


def _shape_of(text: str) -> str:
    """The output with every number replaced, so two runs with different random weights
    compare equal when they print the same things in the same layout."""
    # Padding depends on the values' signs and widths, so it goes with the numbers.
    return re.sub(r" *-?\d+\.\d+(e[+-]\d+)?", " <num>", text)


def test_notebook_prints_what_pytorch_prints():
    pytest.importorskip("torch")
    ours = run("lincore")
    theirs = run("torch").replace("torch", "lincore")
    assert _shape_of(ours) == _shape_of(theirs)
