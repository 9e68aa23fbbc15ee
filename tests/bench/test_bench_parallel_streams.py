from .runbench import run_bench


def test_parallel_streams_bench_runs_tiny() -> None:
    out = run_bench("parallel_streams.py", "--streams", "2", "--mb", "1", "--rounds", "1")
    assert "portfwd-x2" in out and "MB/s each way" in out
