from .runbench import run_bench


def test_http_log_bench_runs_tiny() -> None:
    out = run_bench("httplog.py", "--mb", "2", "--requests", "20", "--rounds", "1")
    assert "| portfwd forward --http-log on |" in out
    assert "| portfwd forward --http-log off |" in out
