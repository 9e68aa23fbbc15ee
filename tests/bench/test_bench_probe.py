from .runbench import run_bench


def test_probe_bench_runs_tiny() -> None:
    out = run_bench("probe.py", "--mb", "2", "--requests", "20", "--rounds", "1")
    assert "| no probe |" in out
    assert "| --probe http:/bytes/1TiB, every 1 s |" in out
