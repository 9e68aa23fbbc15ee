"""One presentation of a forward: its kubectl command (pasted into a shell, it runs), its
local and remote sides and its uptime, the same for the TUI, `ls`, export and the log."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from portfwd.cli.listing import table
from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState
from portfwd.engine.present import (
    kubectl_command,
    local_compact,
    local_side,
    remote_compact,
    remote_side,
    uptime,
)
from portfwd.tui.format import local_text, remote_text, uptime_text

SPEC = ForwardSpec(target="svc/web", remote_port=80, namespace="demo", context="prod")


def snap(**changes: object) -> ForwardSnapshot:
    base = ForwardSnapshot(id="a1", spec=SPEC, state=ForwardState.ACTIVE)
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_kubeconfig_path_with_a_space_pastes_and_runs(tmp_path: Path) -> None:
    """The dashboard's `y` once copied `--kubeconfig /home/u/my config`: two words."""
    calls = tmp_path / "calls"
    fake = tmp_path / "bin" / "kubectl"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "[%s]" "$a"; done > "$CALLS"\n')
    fake.chmod(0o755)
    spec = replace(SPEC, kubeconfig="/home/u/my config", namespace="it's")
    command = kubectl_command(spec, snap(spec=spec, bound=(("127.0.0.1", 43121),)))
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin", "CALLS": str(calls)}
    run = subprocess.run(["sh", "-c", command], env=env, capture_output=True, timeout=20)
    assert run.returncode == 0, run.stderr
    assert calls.read_text() == (
        "[--kubeconfig][/home/u/my config][--context][prod][-n][it's][port-forward][svc/web]"
        "[--address][127.0.0.1][43121:80]"  # the port a `:80` forward bound
    )


def test_the_command_keeps_the_port_the_spec_asked_for() -> None:
    spec = replace(SPEC, local_port=8080, addresses=("localhost",))
    running = snap(spec=spec, bound=(("127.0.0.1", 8080), ("::1", 8080)))
    assert kubectl_command(spec, running) == kubectl_command(spec)
    assert kubectl_command(spec) == "kubectl --context prod -n demo port-forward svc/web 8080:80"


def test_sides_and_uptime() -> None:
    both = snap(bound=(("127.0.0.1", 8080), ("::1", 8080)), remote_port=9000, port_name="echo")
    assert (local_side(both), local_compact(both)) == ("localhost:8080", "8080")
    assert (remote_side(both), remote_compact(both)) == ("80 → 9000 (echo)", "80→9000")
    anywhere = snap(bound=(("0.0.0.0", 8080), ("::", 8080)))
    assert local_side(anywhere) == local_compact(anywhere) == "0.0.0.0:8080, [::]:8080"
    waiting = snap(state=ForwardState.STARTING, spec=replace(SPEC, addresses=("::1",)))
    assert (local_side(waiting), remote_side(waiting)) == ("[::1]:auto", "80")
    assert uptime(snap(started_at=100.0), 3825.0) == "1h02m"
    assert uptime(snap(state=ForwardState.RECONNECTING, started_at=100.0), 3825.0) == "-"


def test_ls_and_the_dashboard_say_the_same() -> None:
    """`portfwd ls` once said `localhost:8080` for 0.0.0.0 and :: (every host it did not
    single out), and `80(9000)` where the dashboard said `80 → 9000`."""
    shown = snap(
        bound=(("0.0.0.0", 8080), ("::", 8080)), remote_port=9000, started_at=100.0, pod="web-1"
    )
    row = table([shown], wide=True, now=3825.0).splitlines()[1]
    assert f"{local_text(shown)}->{remote_compact(shown)}" in row
    assert remote_text(shown) == "80 → 9000"
    assert uptime_text(shown, 3825.0) in row.split()


@pytest.mark.parametrize(
    "addresses", [("localhost",), ("LocalHost",), ("127.0.0.1", "::1"), ("::1", "127.0.0.1")]
)
def test_the_copied_command_leaves_out_kubectls_default_address(
    addresses: tuple[str, ...],
) -> None:
    """Issue 18: `y` copied `--address localhost`, which kubectl does without."""
    assert "--address" not in kubectl_command(replace(SPEC, local_port=8080, addresses=addresses))
    assert "--address 127.0.0.1 " in kubectl_command(
        replace(SPEC, local_port=8080, addresses=("127.0.0.1",))
    )
