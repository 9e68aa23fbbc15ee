import shutil

import pytest

from .runbench import run_bench


@pytest.mark.skipif(shutil.which("tmux") is None, reason="the dashboard bench drives tmux")
def test_tui_bench_runs_tiny() -> None:
    out = run_bench("tui.py", "--runs", "1", "--idle", "1", "--many", "60")
    assert "seeded forwards" in out and "dashboard, 20 active forwards" in out
    assert "dashboard, 60 active forwards" in out  # more rows than the pane shows
