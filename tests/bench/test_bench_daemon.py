from .runbench import run_bench


def test_daemon_bench_runs_tiny() -> None:
    out = run_bench("daemon.py", "--forwards", "2", "--idle", "1", "--listed", "5", "--runs", "2")
    assert "portfwd ls (5 forwards)" in out and "kubectl get pods" in out
