"""Hardening (issue 8, item 1): a global option means the same wherever it is written.

`portfwd --kubeconfig X --context Y forward ...` used to ignore both and connect to
$KUBECONFIG's cluster as its admin. Every global option is tried here in every position: before
the command (group level) and after it (for each command that takes it). It either reaches the
command with the same value as when written after it, or it is refused with one `error:` line
and exit 2 before anything starts. The command bodies are replaced by recorders, so nothing
runs; the last tests run the real process against the sandbox, as in the issue.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from portfwd.cli import root as cli
from portfwd.sandbox.cluster import SandboxCluster
from tests.support.cli import run_cli

# Global option -> (how it is written, its value as the command receives it).
GLOBALS: dict[str, tuple[list[str], tuple[str, Any]]] = {
    "kubeconfig": (["--kubeconfig", "/k/other.kubeconfig"], ("kubeconfig", "/k/other.kubeconfig")),
    "context": (["--context", "ctx-a"], ("context", "ctx-a")),
    "namespace": (["-n", "ns-a"], ("namespace", "ns-a")),
    "namespace-long": (["--namespace", "ns-a"], ("namespace", "ns-a")),
    "state": (["--state", "/s/state.yaml"], ("state_file", Path("/s/state.yaml"))),
    "no-restore": (["--no-restore"], ("restore", False)),
    "ping-interval": (["--ping-interval", "7"], ("ping_interval", 7.0)),
}

# The commands and the global options each of them takes.
COMMANDS: dict[str, tuple[list[str], set[str]]] = {
    "forward": (
        ["svc/web", "8080:80"],
        {"kubeconfig", "context", "namespace", "namespace-long", "ping-interval"},
    ),
    "port-forward": (
        ["svc/web", "8080:80"],
        {"kubeconfig", "context", "namespace", "namespace-long", "ping-interval"},
    ),
    "doctor": ([], {"kubeconfig", "context", "namespace", "namespace-long", "state"}),
    "demo": ([], {"ping-interval"}),
    "sandbox": ([], set()),
    "completion": (["bash"], set()),
}

# The body a command runs, where it is another command's (an alias).
BODY = {"port-forward": "forward"}

FLAG_SHOWN = {
    "kubeconfig": "--kubeconfig",
    "context": "--context",
    "namespace": "--namespace",
    "namespace-long": "--namespace",
    "state": "--state",
    "no-restore": "--no-restore",
    "ping-interval": "--ping-interval",
}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Replace every command body by a recorder of the arguments it receives."""
    import portfwd.cli.forward
    import portfwd.demo
    import portfwd.doctor
    import portfwd.sandbox.main
    import portfwd.tui.run

    seen: list[tuple[str, dict[str, Any]]] = []

    def recorder(name: str) -> Any:
        def record(**kwargs: Any) -> int:
            seen.append((name, kwargs))
            return 0

        return record

    monkeypatch.setattr(portfwd.cli.forward, "run_forward", recorder("forward"))
    monkeypatch.setattr(portfwd.demo, "run_demo", recorder("demo"))
    monkeypatch.setattr(portfwd.doctor, "run_doctor", recorder("doctor"))
    monkeypatch.setattr(portfwd.sandbox.main, "serve", recorder("sandbox"))
    monkeypatch.setattr(portfwd.tui.run, "run_tui", recorder("tui"))
    return seen


def invoke(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    """Run the console script in-process: (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["portfwd", *args])
    with pytest.raises(SystemExit) as stopped:
        cli.main()
    code = stopped.value.code
    return (code if isinstance(code, int) else 1), capsys.readouterr().err


def _cases() -> list[tuple[str, str]]:
    return [(opt, cmd) for cmd in COMMANDS for opt in GLOBALS]


@pytest.mark.parametrize("option", list(GLOBALS))
def test_every_global_option_reaches_the_dashboard(
    option: str,
    calls: list[tuple[str, dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    written, (key, value) = GLOBALS[option]
    assert invoke(monkeypatch, capsys, *written) == (0, "")
    assert calls[0][0] == "tui"
    assert calls[0][1][key] == value


@pytest.mark.parametrize("before", [True, False], ids=["before", "after"])
@pytest.mark.parametrize(("option", "command"), _cases())
def test_global_option_in_each_position(
    option: str,
    command: str,
    before: bool,
    calls: list[tuple[str, dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Before or after the command: the command that takes it receives the same value either
    way; one that does not take it refuses it in one line and starts nothing."""
    written, (key, value) = GLOBALS[option]
    rest, takes = COMMANDS[command]
    argv = [*written, command, *rest] if before else [command, *written, *rest]
    code, err = invoke(monkeypatch, capsys, *argv)
    if option in takes:
        assert (code, err) == (0, "")
        assert [name for name, _ in calls] == [BODY.get(command, command)]
        assert calls[0][1][key] == value
        return
    assert calls == []  # nothing started
    assert code == 2
    if before:
        assert err == (
            f"error: {FLAG_SHOWN[option]} does not apply to 'portfwd {command}'; remove it "
            f"(see 'portfwd {command} --help')\n"
        )
    else:
        assert err.count("\n") == 1 and err.startswith("error: No such option")


@pytest.mark.parametrize("option", sorted(COMMANDS["forward"][1]))
def test_conflicting_values_before_and_after_are_refused(
    option: str,
    calls: list[tuple[str, dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    written, _ = GLOBALS[option]
    other = [written[0], "9"] if option == "ping-interval" else [written[0], "other-value"]
    code, err = invoke(monkeypatch, capsys, *written, "forward", *other, "svc/web", "80")
    assert calls == []
    assert code == 2
    flag = FLAG_SHOWN[option]
    assert err.startswith(f"error: {flag} is given twice with different values")
    assert err.endswith("(see 'portfwd forward --help')\n") and err.count("\n") == 1


def test_the_same_value_before_and_after_is_fine(
    calls: list[tuple[str, dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ("--context", "ctx-a", "forward", "--context", "ctx-a", "svc/web", "80")
    assert invoke(monkeypatch, capsys, *args) == (0, "")
    assert calls[0][1]["context"] == "ctx-a"


async def test_missing_kubeconfig_before_the_command_is_an_error(tmp_path: Path) -> None:
    """The issue's `portfwd --kubeconfig /nonexistent forward ...` (it used to run normally)."""
    missing = tmp_path / "nonexistent"
    code, out, err = await run_cli("svc/echo", ":80", prefix=("--kubeconfig", str(missing)))
    assert (code, out) == (1, "")
    assert (
        err == f"error: kubeconfig {missing} (from --kubeconfig) does not exist; check the path\n"
    )


async def test_kubeconfig_and_context_before_the_command_choose_the_cluster(
    sandbox: SandboxCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case: $KUBECONFIG is admin, the options name the user who may do nothing.
    The forward must be refused (403), not run as admin."""
    monkeypatch.setenv("KUBECONFIG", str(sandbox.kubeconfig_path))
    other = tmp_path / "sb2.kubeconfig"
    other.write_bytes(sandbox.kubeconfig_path.read_bytes())
    other.chmod(0o600)
    assert os.environ["KUBECONFIG"] != str(other)
    before = ("--kubeconfig", str(other), "--context", "sandbox-nobody", "-n", "demo")
    code, out, err = await run_cli("svc/echo", ":80", prefix=before)
    assert (code, out) == (1, "")
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "forbidden" in err.lower() and "nobody" in err
