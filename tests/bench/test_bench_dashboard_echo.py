import shutil

import pytest

from .runbench import run_bench


@pytest.mark.skipif(shutil.which("tmux") is None, reason="the dashboard runs in tmux")
def test_dashboard_echo_bench_runs_tiny() -> None:
    out = run_bench(
        "dashboard_echo.py", "--forwards", "2", "--seconds", "1", "--rounds", "1", "--thread"
    )
    assert "against headless" in out and "dashboard " in out and "dashboard@thread" in out
