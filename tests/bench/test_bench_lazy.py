from .runbench import run_bench


def test_lazy_bench_runs_tiny() -> None:
    out = run_bench("lazy.py", "--tiny")
    assert "eager" in out and "lazy" in out
    assert "first conn p50 ms" in out and "watches open" in out
