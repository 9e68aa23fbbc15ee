import shutil

import pytest

from .runbench import run_bench


@pytest.mark.skipif(shutil.which("tmux") is None, reason="the dashboard runs in tmux")
def test_traffic_bench_runs_tiny() -> None:
    out = run_bench(
        "traffic.py",
        *("--mb", "2", "--requests", "20", "--rounds", "1", "--forwards", "2"),
        *("--idle", "1", "--seconds", "2", "--keys", "2"),
    )
    assert "| portfwd forward --http-log on |" in out
    assert "| portfwd forward --http-log off |" in out
    assert "| dashboard, 2 active forwards |" in out
    assert "| 2 forwards moving |" in out and "| idle (baseline) |" in out
