from .runbench import ROOT, run_bench


def test_startup_bench_runs_tiny() -> None:
    # The venv's portfwd in both roles: the binary is built and measured by tests/install.
    venv = str(ROOT / ".venv" / "bin" / "portfwd")
    out = run_bench("startup.py", "--binary", venv, "--venv", venv, "--runs", "1")
    assert "binary/venv first paint" in out
