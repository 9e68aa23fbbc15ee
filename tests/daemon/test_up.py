"""`portfwd up PROFILE` with a daemon running hands the profile to it (issue 11): up returns,
the daemon runs the forwards, a second up leaves them as they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from portfwd.sandbox.cluster import SandboxCluster

from .conftest import DaemonProcess, Dirs
from .test_cli import active, echo_through, forwards, portfwd, running  # noqa: F401

FAILED = 1

pytestmark = pytest.mark.timeout(120)


def _write_profiles(dirs: Dirs, kubeconfig: Path) -> None:
    dirs.write_profiles(
        f"""\
profiles:
  pair:
    defaults: {{kubeconfig: "{kubeconfig}", namespace: demo, address: 127.0.0.1}}
    forwards:
      - {{name: echo, target: svc/echo, ports: [":80"]}}
      - {{name: echo-deploy, target: deploy/echo, ports: [":9000"]}}
  mixed:
    defaults: {{kubeconfig: "{kubeconfig}", namespace: demo, address: 127.0.0.1}}
    forwards:
      - {{name: fine, target: svc/echo, ports: [":80"]}}
      - {{name: missing, target: svc/nope, ports: [":80"]}}
"""
    )


async def test_up_hands_the_profile_to_the_daemon_and_a_second_up_keeps_it(
    running: DaemonProcess,  # noqa: F811
    dirs: Dirs,
    sandbox: SandboxCluster,
) -> None:
    _write_profiles(dirs, sandbox.kubeconfig_path)
    up = await portfwd("up", "pair")
    assert up.code == 0, up
    assert f"pid {running.proc.pid}" in up.err, up.err
    for name in ("echo", "echo-deploy"):
        forward = await active(name)
        assert forward["spec"]["context"] == "sandbox", "the context is pinned when handed over"
        await echo_through(forward["local_port"])
    again = await portfwd("up", "pair")
    assert again.code == 0, again
    assert sum("(already in the daemon)" in line for line in again.out_lines) == 2, again.out
    assert sorted(f["spec"]["name"] for f in await forwards()) == ["echo", "echo-deploy"]


async def test_up_in_the_daemon_reports_what_cannot_start_and_keeps_the_rest(
    running: DaemonProcess,  # noqa: F811
    dirs: Dirs,
    sandbox: SandboxCluster,
) -> None:
    _write_profiles(dirs, sandbox.kubeconfig_path)
    up = await portfwd("up", "mixed")
    assert up.code == FAILED, up
    (line,) = [e for e in up.err_lines if e.startswith("error:")]
    assert line.startswith("error: missing: svc/nope 80:") and "not added" in line, line
    assert [f["spec"]["name"] for f in await forwards()] == ["fine"]

    assert (await portfwd("rm", "fine")).code == 0
    up = await portfwd("up", "--all-or-nothing", "mixed")
    assert up.code == FAILED, up
    assert "removed the 1 forwards added before it (--all-or-nothing)" in up.err, up.err
    assert await forwards() == []


async def test_here_and_daemon_contradict(dirs: Dirs) -> None:
    for args in (("--daemon", "up", "--here", "pair"), ("up", "--here", "pair")):
        env = {"PORTFWD_DAEMON": "1"} if len(args) == 3 else None
        up = await portfwd(*args, env=env)
        assert up.code == 2, up
        assert "--here and --daemon" in up.one_error()


async def test_the_daemon_flag_starts_one_for_up(dirs: Dirs, sandbox: SandboxCluster) -> None:
    _write_profiles(dirs, sandbox.kubeconfig_path)
    up = await portfwd("--daemon", "up", "pair")
    try:
        assert up.code == 0, up
        assert sorted(f["spec"]["name"] for f in await forwards()) == ["echo", "echo-deploy"]
    finally:
        assert (await portfwd("daemon", "stop")).code == 0
