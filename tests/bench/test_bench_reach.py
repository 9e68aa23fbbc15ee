from .runbench import run_bench


def test_reach_bench_runs_quick() -> None:
    out = run_bench("reach.py", "--quick")
    assert "all reachable after" in out and "fresh upgrade per connection" in out
