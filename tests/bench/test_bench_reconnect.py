from .runbench import run_bench


def test_reconnect_bench_runs_quick() -> None:
    out = run_bench("reconnect.py", "--quick")
    assert "a request through each forward afterwards" in out
