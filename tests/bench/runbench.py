"""Run one bench script in its tiny mode, as the suite does, so a bench cannot silently break.

The figures are not checked (speed is never asserted in tests): only that the script runs to
its end and prints the table the issue that asked for it reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_bench(script: str, *args: str, timeout: float = 240) -> str:
    """stdout of `python bench/SCRIPT ARGS...`; fails the test on a non-zero exit."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"{script} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc.stdout
