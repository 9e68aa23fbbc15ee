"""bench/memory_after_load.py keeps working: its tiny mode runs in the suite (the figures
are the bench's to report, not a test's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(180)

BENCH = Path(__file__).resolve().parents[2] / "bench" / "memory_after_load.py"


def test_memory_bench_runs_in_tiny_mode() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--tiny"],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["failed"] == 0 and report["transfers"] > 0, report
    assert report["start_mib"] > 0 and report["peak_mib"] >= report["start_mib"]
