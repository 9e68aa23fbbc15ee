"""Issue 18 §2 and §5 against a real daemon: `up` matches what the daemon runs by what a
forward is, not by name (a same-named forward of another target is a clash, one line; the
same forward under another name is "already in the daemon"), and `portfwd add` with several
ports is all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from portfwd.sandbox.cluster import SandboxCluster
from tests.support.ports import reserved_port

from .conftest import DaemonProcess, Dirs
from .test_cli import active, echo_through, forwards, portfwd, running  # noqa: F401

FAILED, USAGE = 1, 2

pytestmark = pytest.mark.timeout(120)


def _write(dirs: Dirs, kubeconfig: Path, *more: str) -> None:
    """Profile `demo`: api (svc/echo) and web (svc/web) on free ports, then `more` entries."""
    dirs.write_profiles(
        f"""\
profiles:
  demo:
    defaults: {{kubeconfig: "{kubeconfig}", namespace: demo, address: 127.0.0.1}}
    forwards:
      - {{name: api, target: svc/echo, ports: [":80"]}}
      - {{name: web, target: svc/web, ports: [":80"]}}
"""
        + "".join(f"      - {entry}\n" for entry in more)
    )


async def test_up_into_a_daemon_running_a_same_named_forward_of_another_target(
    running: DaemonProcess,  # noqa: F811
    dirs: Dirs,
    sandbox: SandboxCluster,
) -> None:
    _write(dirs, sandbox.kubeconfig_path)
    # The daemon runs `api` for deploy/echo, and svc/web under a name of its own.
    for args in (("--name", "api", "deploy/echo", ":9000"), ("--name", "w", "svc/web", ":80")):
        added = await portfwd("add", "-n", "demo", "--address", "127.0.0.1", *args)
        assert added.code == 0, added
    up = await portfwd("up", "demo")
    assert up.code == FAILED, up
    (clash,) = [line for line in up.err_lines if line.startswith("error:")]
    assert clash.startswith("error: api: the name is already used by forward "), clash
    assert "deploy/echo 9000" in clash and "not svc/echo 80" in clash, clash
    (kept,) = [line for line in up.out_lines if "(already in the daemon)" in line]
    assert "svc/web" in kept, kept
    names = sorted(f["spec"]["name"] for f in await forwards())
    assert names == ["api", "w"], "nothing started twice, nothing started for the clash"
    await echo_through((await active("api"))["local_port"])


async def test_add_with_several_ports_is_all_or_nothing(
    running: DaemonProcess,  # noqa: F811
    sandbox: SandboxCluster,
) -> None:
    a, b = reserved_port(), reserved_port()
    base = ("add", "-n", "demo", "--address", "127.0.0.1", "--name", "multi", "svc/echo")
    added = await portfwd(*base, f"{a}:80", f"{b}:80")
    assert added.code == 0, added
    names = sorted(f["spec"]["name"] for f in await forwards())
    assert names == sorted([f"multi-{a}", f"multi-{b}"])
    for name in (f"multi-{a}", f"multi-{b}"):
        await echo_through((await active(name))["local_port"])
    # Again: the names are used (exit 2, nothing changed); then one port taken: exit 1,
    # neither added.
    again = await portfwd(*base, f"{a}:80", f"{b}:80")
    assert again.code == USAGE, again
    assert len(await forwards()) == 2
    c = reserved_port()
    other = await portfwd(*base[:-2], "m2", "svc/echo", f"{c}:80", f"{a}:80")
    assert other.code == FAILED, other
    assert len(await forwards()) == 2, "the port that could bind was removed again"
    # A name another target's forward carries: exit 2, nothing added.
    clash = await portfwd(*base[:-2], f"multi-{a}", "deploy/echo", ":80")
    assert clash.code == USAGE, clash
    assert len(await forwards()) == 2


async def test_dry_run_says_what_up_into_the_daemon_would_do(
    running: DaemonProcess,  # noqa: F811
    dirs: Dirs,
    sandbox: SandboxCluster,
) -> None:
    """`up --dry-run` beside a daemon: the forward it already runs is "already in the
    daemon", the name another target carries is the clash line, and a fixed port a daemon
    forward holds names that forward (not a bare "in use")."""
    held = reserved_port()
    _write(
        dirs, sandbox.kubeconfig_path, f'{{name: fixed, target: svc/echo, ports: ["{held}:80"]}}'
    )
    for args in (
        ("--name", "api", "deploy/echo", ":9000"),
        ("--name", "w", "svc/web", ":80"),
        ("--name", "holder", "deploy/echo", f"{held}:9000"),
    ):
        added = await portfwd("add", "-n", "demo", "--address", "127.0.0.1", *args)
        assert added.code == 0, added
    dry = await portfwd("up", "demo", "--dry-run")
    assert dry.code == FAILED, dry
    (kept,) = [line for line in dry.out_lines if "already in the daemon" in line]
    assert kept.startswith("w\t") and "svc/web" in kept, kept
    (clash,) = [line for line in dry.err_lines if "the name is already used" in line]
    assert "api" in clash and "deploy/echo 9000" in clash, clash
    (port,) = [line for line in dry.err_lines if line.startswith("fixed:")]
    assert f"port {held} is held by the daemon's forward holder" in port, port
    names = sorted(f["spec"]["name"] for f in await forwards())
    assert names == ["api", "holder", "w"], "a dry run adds nothing"
    # --here: the forwards would run in this process, so the daemon's are only ports.
    here = await portfwd("up", "demo", "--dry-run", "--here")
    assert not any("already in the daemon" in line for line in here.out_lines), here
