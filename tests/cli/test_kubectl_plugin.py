"""`kubectl portfwd ...` through the installed kubectl, against the sandbox.

kubectl execs `kubectl-portfwd` (on PATH: this venv's bin, where the install put it) with the
words after `portfwd` and its environment; it passes none of its own flags (it refuses flags
before a plugin's name). So `--context`, `-n` and `--kubeconfig` after `portfwd`, and
KUBECONFIG, must choose the cluster and the identity.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from portfwd.cli.durations import parse_duration
from portfwd.cli.kubectl_plugin import completions, plugin_args
from portfwd.sandbox.cluster import SandboxCluster
from tests.install.helpers import forward_moves_bytes, run
from tests.support.cli import run_cli

BIN = Path(sys.executable).parent

needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl missing")


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["svc/web", "8080:80"], ["forward", "svc/web", "8080:80"]),
        (["-n", "demo", "svc/web", "80"], ["forward", "-n", "demo", "svc/web", "80"]),
        (["--context=prod", "svc/web", "80"], ["forward", "--context=prod", "svc/web", "80"]),
        (
            ["--address", "0.0.0.0", "pod/x", "80"],
            ["forward", "--address", "0.0.0.0", "pod/x", "80"],
        ),
        (["--no-reconnect", "pod/x", "80"], ["forward", "--no-reconnect", "pod/x", "80"]),
        (["--", "weird-pod", "80"], ["forward", "--", "weird-pod", "80"]),
        (["port-forward", "svc/web", "80"], ["port-forward", "svc/web", "80"]),
        (["doctor", "--context", "x"], ["doctor", "--context", "x"]),
        (["--context", "x", "doctor"], ["--context", "x", "doctor"]),
        ([], []),  # the dashboard
        (["--context", "prod"], ["--context", "prod"]),  # the dashboard on that context
        (["--help"], ["--help"]),
    ],
)
def test_the_first_word_chooses_the_command(words: list[str], expected: list[str]) -> None:
    assert plugin_args(words) == expected


def _env(sandbox: SandboxCluster, **extra: str) -> dict[str, str]:
    env = {**os.environ, "KUBECONFIG": str(sandbox.kubeconfig_path), **extra}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    return env


@needs_kubectl
async def test_kubectl_portfwd_moves_bytes(sandbox: SandboxCluster) -> None:
    out = await forward_moves_bytes(
        ["kubectl", "portfwd", "svc/echo", ":80", "-n", "demo"], _env(sandbox)
    )
    assert "-> 9000" in out


@needs_kubectl
async def test_port_forward_alias_and_kubectl_flags(sandbox: SandboxCluster) -> None:
    """A kubectl port-forward command line with portfwd put in: --address and
    --pod-running-timeout are taken, and only the address asked for is bound."""
    out = await forward_moves_bytes(
        [
            *("kubectl", "portfwd", "port-forward", "--address", "127.0.0.1"),
            *("--pod-running-timeout", "1m30s", "svc/echo", ":80"),
        ],
        _env(sandbox),
    )
    assert "[::1]" not in out


@needs_kubectl
async def test_context_after_portfwd_chooses_the_identity(sandbox: SandboxCluster) -> None:
    """KUBECONFIG's current context is admin; --context after `portfwd` must win: nobody
    may do nothing, so the forward is refused (403) instead of running as admin."""
    code, out, err = await run(
        "kubectl", "portfwd", "--context", "sandbox-nobody", "svc/echo", ":80", env=_env(sandbox)
    )
    assert (code, out) == (1, "")
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "nobody" in err and "forbidden" in err.lower()


@needs_kubectl
async def test_kubeconfig_after_portfwd_beats_the_environment(
    sandbox: SandboxCluster, tmp_path: Path
) -> None:
    env = _env(sandbox, KUBECONFIG=str(tmp_path / "missing"))
    await forward_moves_bytes(
        ["kubectl", "portfwd", "--kubeconfig", str(sandbox.kubeconfig_path), "svc/echo", ":80"],
        env,
    )
    code, _, err = await run("kubectl", "portfwd", "svc/echo", ":80", env=env)
    assert code == 1 and "none of the files in KUBECONFIG" in err


@needs_kubectl
async def test_kubectl_refuses_flags_before_the_plugin(sandbox: SandboxCluster) -> None:
    """kubectl's rule, not portfwd's: its global flags never reach a plugin."""
    code, _, err = await run(
        "kubectl", "--context", "sandbox", "portfwd", "svc/echo", ":80", env=_env(sandbox)
    )
    assert code == 1
    assert "flags cannot be placed before plugin name" in err


@needs_kubectl
async def test_kubectl_portfwd_doctor(sandbox: SandboxCluster) -> None:
    code, out, err = await run(
        "kubectl", "portfwd", "doctor", "--context", "sandbox-viewer", env=_env(sandbox)
    )
    assert (code, err) == (1, "")
    assert any(line.startswith("✗ port-forward") for line in out.splitlines())


@needs_kubectl
async def test_kubectl_completes_the_plugin_through_its_hook(sandbox: SandboxCluster) -> None:
    """`kubectl portfwd <TAB>`: kubectl asks kubectl_complete-portfwd (Cobra's protocol)."""
    env = _env(sandbox)
    code, out, _ = await run("kubectl", "__complete", "portfwd", "", env=env)
    values = [line.split("\t")[0] for line in out.splitlines()]
    assert code == 0
    assert {"forward", "doctor", "svc/echo", "deploy/web"} <= set(values)
    assert values[-1] == ":4"  # ShellCompDirectiveNoFileComp
    code, out, _ = await run("kubectl", "__complete", "portfwd", "svc/echo", "", env=env)
    assert [line.split("\t")[0] for line in out.splitlines()] == ["80", "tcp", ":4"]


def test_completion_hook_without_a_cluster_offers_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    items, directive = completions(["do"])
    assert [i.value for i in items] == ["doctor"]
    assert directive == 4


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30.0), ("1m30s", 90.0), ("1.5h", 5400.0), ("250ms", 0.25)]
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["30", "0s", "-5s", "1x", "", "s"])
async def test_bad_pod_running_timeout_is_a_usage_error(text: str) -> None:
    code, out, err = await run_cli("--pod-running-timeout", text, "svc/echo", ":80")
    assert (code, out) == (2, "")
    assert err.startswith("error: Invalid value for '--pod-running-timeout'")
    assert err.count("\n") == 1


async def test_pod_running_timeout_waits_then_names_the_reason(sandbox: SandboxCluster) -> None:
    """crashy's only pod never becomes Ready: portfwd waits the time given, then says why."""
    args = ("--kubeconfig", str(sandbox.kubeconfig_path), "--pod-running-timeout", "1s")
    code, out, err = await run_cli(*args, "svc/crashy", ":80")
    assert (code, out) == (1, "")
    waiting, error = err.splitlines()  # issue 18: it says once that it waits, and for what
    assert waiting.startswith(
        "waiting up to 1s (--pod-running-timeout) for a Ready pod of svc/crashy to take port 80: "
    ), waiting
    assert error.startswith("error: ") and "crashy" in error and "Ready" in error
