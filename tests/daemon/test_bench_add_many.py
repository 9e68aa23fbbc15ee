"""bench/add_many.py keeps working: its tiny mode runs in the suite (the figures are not
checked here: speed is the bench's to report, not a test's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(180)

BENCH = Path(__file__).resolve().parents[2] / "bench" / "add_many.py"


def test_add_many_bench_runs_in_tiny_mode() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--tiny"],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["forwards"] == 6
    for run in ("concurrent", "sequential"):
        assert report[run]["ms_per_forward"], report
