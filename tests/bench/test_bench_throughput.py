from .runbench import run_bench


def test_throughput_bench_runs_tiny() -> None:
    out = run_bench("throughput.py", "--mb", "1", "--connections", "5")
    assert "VmRSS after traffic" in out


def test_kubectl_vs_portfwd_bench_runs_tiny() -> None:
    out = run_bench("kubectl_vs_portfwd.py", "--mb", "1", "--connections", "5")
    assert "portfwd forward" in out and "kubectl (plain SPDY)" in out
