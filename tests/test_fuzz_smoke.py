"""How CI runs the fuzz harness (tools/fuzz_harness.py): a short run per target with a fixed
seed must end without a crash or a hang (exit status 0); and the harness itself must notice an
injected crash and hang, exit 1 and leave a reproducer, so that a green run means something.

LINCORE_FUZZ_SECONDS (default 10) sets the time per target. A longer local run:
    python3 tools/fuzz_harness.py --seconds 300 --target all --seed 1
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HARNESS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "fuzz_harness.py"
)
SECONDS = float(os.environ.get("LINCORE_FUZZ_SECONDS", "10"))
SEED = 20240611


def run_harness(*args: str, timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, HARNESS, *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.mark.parametrize("target", ["tensor", "load", "onnx"])
def test_fuzz_short_run_has_no_crash_or_hang(target, tmp_path):
    if target == "onnx":
        pytest.importorskip("onnx", reason="the onnx target fuzzes lincore.onnx.load")
    proc = run_harness(
        "--seconds",
        str(SECONDS),
        "--target",
        target,
        "--seed",
        str(SEED),
        "--out",
        str(tmp_path),
        timeout=4 * SECONDS + 300,
    )
    report = proc.stdout[-8000:] + proc.stderr[-4000:]
    for name in sorted(os.listdir(tmp_path)):
        if name.endswith(".txt") and "-seed" in name:
            with open(tmp_path / name) as f:
                report += f"\n=== {name} ===\n" + f.read()[-4000:]
    assert proc.returncode == 0, report
    assert "OK: no crash, no hang" in proc.stdout, report
    assert f"[{target}] 0 inputs" not in proc.stdout, report  # it did fuzz


@pytest.mark.parametrize("what,signal_name", [("crash", "SIGSEGV"), ("hang", None)])
def test_harness_catches_an_injected_crash_and_hang(what, signal_name, tmp_path):
    env = None
    if os.environ.get("LINCORE_SANITIZED") == "1":
        # ASan's own SEGV handler would turn the injected SIGSEGV into "exit code 1"; this test
        # checks the harness's handling of a death by signal, so ASan leaves SIGSEGV alone here.
        env = {**os.environ, "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":handle_segv=0"}
    proc = run_harness(
        "--seconds",
        "3",
        "--target",
        "load",
        "--seed",
        "1",
        "--timeout",
        "2",
        "--inject",
        f"{what}:5",
        "--out",
        str(tmp_path),
        timeout=120,
        env=env,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert f"{what.upper()} at input 5" in out, out
    report = tmp_path / f"load-{what}-seed1-i5.txt"
    assert report.exists(), sorted(os.listdir(tmp_path))
    text = report.read_text()
    assert {"crash": "crashes alone", "hang": "hangs alone"}[what] in text, text
    if signal_name:
        assert signal_name in text, text
    assert (tmp_path / "load-{}-seed1-i5.safetensors".format(what)).exists()
    assert "python3 tools/fuzz_harness.py --replay load:1:5" in text
