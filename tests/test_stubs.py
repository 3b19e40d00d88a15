"""The type stubs: lincore/_core.pyi matches the compiled module (mypy.stubtest), and code
using lincore type-checks with mypy."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mypy")
HERE = Path(__file__).resolve().parent


def test_stubs_match_the_compiled_module():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy.stubtest",
            "lincore._core",
            "--allowlist",
            str(HERE / "stubtest_allowlist.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_stubs_type_check_user_code(tmp_path):
    user = tmp_path / "user.py"
    user.write_text(
        textwrap.dedent("""
        import lincore
        import lincore.nn as nn

        t: lincore.Tensor = lincore.tensor([[1.0, 2.0, 3.0]])
        n: int = t.numel() + t.dim()
        layer = nn.Linear(3, 2)
        y = layer(t)
        s: lincore.Size = t.shape
        r: float = float(t.sum())
        capability: str = lincore.cpu_capability()
    """)
    )
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", str(user)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
