from .runbench import run_bench


def test_profile_up_bench_runs_tiny() -> None:
    out = run_bench("profile_up.py", "--forwards", "2", "--clusters", "1", "--runs", "1")
    assert "portfwd up, to all active" in out
