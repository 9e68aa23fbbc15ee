"""`portfwd daemon` itself as a real process: --detach, status, stop, one per user, the saved
session and its restore (also after kill -9), the stale socket, and what it keeps private
(runtime dir, socket, log)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from portfwd.daemon.lock import lock_holder
from portfwd.engine.model import ForwardSpec
from portfwd.sandbox.cluster import SandboxCluster

from .conftest import Dirs, daemon_process
from .test_cli import active, add_echo, echo_through, forwards, portfwd, until

pytestmark = pytest.mark.timeout(120)

NOT_RUNNING = 3


@pytest.fixture
def kube(sandbox: SandboxCluster, monkeypatch: pytest.MonkeyPatch) -> SandboxCluster:
    """Every child of the test (daemons, clients) sees the sandbox's kubeconfig."""
    monkeypatch.setenv("KUBECONFIG", str(sandbox.kubeconfig_path))
    return sandbox


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def saved(dirs: Dirs) -> dict[str, Any]:
    doc = yaml.safe_load((dirs.config / "state.yaml").read_text())
    assert isinstance(doc, dict) and doc["version"] == 1, doc
    return doc


def saved_running(dirs: Dirs) -> dict[str, bool]:
    """name -> running, as the session file remembers them."""
    return {f.get("name") or f["id"]: f["running"] for f in saved(dirs)["forwards"]}


def saved_names(dirs: Dirs) -> list[str]:
    """The names in the session file so far (none while it is not written yet)."""
    try:
        return list(saved_running(dirs))
    except FileNotFoundError:
        return []


async def gone(dirs: Dirs) -> None:
    """Until no daemon holds the lock (bounded)."""

    async def free() -> bool:
        return lock_holder(dirs.paths) is None

    await until(free, limit=60)


@contextlib.asynccontextmanager
async def detached(dirs: Dirs) -> AsyncIterator[int]:
    """`portfwd daemon --detach`; yields the daemon's pid, kills it (by that pid) at the end."""
    dirs.config.mkdir(parents=True, exist_ok=True, mode=0o700)
    started = await portfwd("daemon", "--detach")
    found = re.search(r"\(pid (\d+)\)", started.out)
    pid = int(found.group(1)) if found else None
    try:
        assert started.code == 0, started
        assert started.err == ""
        assert pid is not None, started.out
        assert started.out_lines == [
            f"portfwd daemon started (pid {pid}); socket {dirs.paths.socket},"
            f" log {dirs.config / 'daemon.log'}"
        ]
        yield pid
    finally:
        if pid is not None and lock_holder(dirs.paths) == pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            await gone(dirs)


async def test_detach_status_stop(dirs: Dirs, kube: SandboxCluster) -> None:
    async with detached(dirs) as pid:
        status = await portfwd("daemon", "status")
        assert status.code == 0, status.err
        assert status.out_lines[0].startswith(f"portfwd daemon: running (pid {pid},")
        assert f"  socket:   {dirs.paths.socket}" in status.out_lines

        as_json = await portfwd("daemon", "status", "-o", "json")
        assert as_json.code == 0, as_json.err
        data = json.loads(as_json.out)
        assert data["running"] is True
        assert data["pid"] == pid
        assert data["socket"] == str(dirs.paths.socket)

        stop = await portfwd("daemon", "stop")
        assert stop.code == 0, stop.err
        assert stop.out.startswith("portfwd daemon stopped"), stop.out
        assert lock_holder(dirs.paths) is None  # stop returns once the daemon is gone
        assert not dirs.paths.socket.exists()

        after = await portfwd("daemon", "status")
        assert after.code == NOT_RUNNING, after
        again = await portfwd("daemon", "stop")
        assert (again.code, again.out_lines) == (0, ["no portfwd daemon is running"])


async def test_status_and_stop_when_none_runs(dirs: Dirs) -> None:
    status = await portfwd("daemon", "status")
    assert status.code == NOT_RUNNING, status
    assert status.out_lines == [f"portfwd daemon: not running (socket {dirs.paths.socket})"]
    assert status.err == ""
    as_json = await portfwd("daemon", "status", "-o", "json")
    assert as_json.code == NOT_RUNNING, as_json
    assert json.loads(as_json.out) == {"running": False, "socket": str(dirs.paths.socket)}
    stop = await portfwd("daemon", "stop")
    assert (stop.code, stop.out_lines, stop.err) == (0, ["no portfwd daemon is running"], "")


async def test_a_second_daemon_is_refused(dirs: Dirs, kube: SandboxCluster) -> None:
    async with daemon_process(dirs) as first:
        for args in (("daemon",), ("daemon", "--detach")):
            second = await portfwd(*args, limit=40)
            assert second.code == 1, (args, second)
            line = second.one_error()
            assert "already running" in line, line
            assert f"pid {first.proc.pid}" in line, line
            assert str(dirs.paths.socket) in line, line
        assert first.proc.returncode is None
        status = await portfwd("daemon", "status", "-o", "json")
        assert json.loads(status.out)["pid"] == first.proc.pid


async def test_stop_saves_the_session_and_the_next_daemon_restores_it(
    dirs: Dirs, kube: SandboxCluster
) -> None:
    async with daemon_process(dirs) as first:
        for name in ("s1", "s2"):
            add = await portfwd(*add_echo("--name", name))
            assert add.code == 0, add.err
        add = await portfwd(*add_echo("--name", "s3", "--no-start"))
        assert add.code == 0, add.err
        await echo_through((await active("s1"))["local_port"])

        stop = await portfwd("daemon", "stop")
        assert stop.code == 0, stop.err
        assert "3 forward(s)" in stop.out, stop.out
        async with asyncio.timeout(60):
            assert await first.proc.wait() == 0
    assert not dirs.paths.socket.exists()
    status = await portfwd("daemon", "status")
    assert status.code == NOT_RUNNING, status
    assert saved_running(dirs) == {"s1": True, "s2": True, "s3": False}

    async with daemon_process(dirs):
        for name in ("s1", "s2"):
            await echo_through((await active(name))["local_port"])
        states = {f["spec"]["name"]: f["state"] for f in await forwards()}
        assert states == {"s1": "active", "s2": "active", "s3": "stopped"}


async def test_a_stale_socket_is_replaced(dirs: Dirs, kube: SandboxCluster) -> None:
    dirs.paths.directory.mkdir(parents=True, mode=0o700)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(dirs.paths.socket))  # closed without unlinking: a dead daemon's
    assert stat.S_ISSOCK(os.lstat(dirs.paths.socket).st_mode)

    ls = await portfwd("ls")
    assert ls.code == NOT_RUNNING, ls
    assert "portfwd daemon --detach" in ls.one_error()

    async with daemon_process(dirs) as proc:  # it answers: the fixture said hello
        status = await portfwd("daemon", "status", "-o", "json")
        assert status.code == 0, status.err
        assert json.loads(status.out)["pid"] == proc.proc.pid
        add = await portfwd(*add_echo("--name", "after"))
        assert add.code == 0, add.err
        await echo_through((await active("after"))["local_port"])
        assert "replacing the stale socket" in (dirs.config / "daemon.log").read_text()


async def test_kill_9_during_adds_leaves_a_loadable_session(
    dirs: Dirs, kube: SandboxCluster
) -> None:
    added: list[str] = []
    two_added = asyncio.Event()

    async def keep_adding() -> int:
        for n in range(100):
            result = await portfwd(*add_echo("--name", f"k{n}"))
            if result.code != 0:
                return result.code
            added.append(f"k{n}")
            if len(added) >= 2:
                two_added.set()
        return 0

    async with daemon_process(dirs) as first:
        adder = asyncio.create_task(keep_adding())
        try:
            async with asyncio.timeout(60):
                await two_added.wait()

            async def both_saved() -> bool:  # (the session's writes coalesce)
                return {"k0", "k1"} <= set(saved_names(dirs))

            await until(both_saved)
            first.proc.kill()  # kill -9, while the loop goes on adding
            async with asyncio.timeout(30):
                await first.proc.wait()
            async with asyncio.timeout(60):
                code = await adder
        finally:
            adder.cancel()
            await asyncio.gather(adder, return_exceptions=True)
    assert code in (1, NOT_RUNNING), code  # one add lost its daemon midway, or found none
    assert stat.S_ISSOCK(os.lstat(dirs.paths.socket).st_mode)  # left behind by kill -9

    remembered = saved_running(dirs)  # loads: never a half-written file
    assert set(remembered) <= {f"k{n}" for n in range(len(added) + 1)}, remembered
    assert {"k0", "k1"} <= set(remembered), (added, remembered)
    assert all(remembered.values()), remembered

    async with daemon_process(dirs):
        restored = {f["spec"]["name"] for f in await forwards()}
        assert restored == set(remembered)
        for name in sorted(remembered):
            await echo_through((await active(name))["local_port"], size=10_000)


async def test_the_log_is_private_and_holds_no_token(dirs: Dirs, kube: SandboxCluster) -> None:
    kubeconfig = yaml.safe_load(kube.kubeconfig_path.read_text())
    tokens = [u["user"]["token"] for u in kubeconfig["users"] if u.get("user", {}).get("token")]
    assert tokens  # the sandbox's admin uses a bearer token
    log = dirs.config / "daemon.log"
    async with daemon_process(dirs):
        assert mode(dirs.paths.directory) == 0o700
        assert mode(dirs.paths.socket) == 0o600
        add = await portfwd(*add_echo("--name", "lg"))
        assert add.code == 0, add.err
        port = (await active("lg"))["local_port"]
        await echo_through(port, size=10_000)
        wanted = f"lg: Forwarding from 127.0.0.1:{port} -> "

        async def logged() -> bool:
            return wanted in log.read_text()

        await until(logged)
        assert mode(log) == 0o600
        text = log.read_text()
    for token in tokens:
        assert token not in text


async def test_a_runtime_dir_open_to_others_is_refused(dirs: Dirs, kube: SandboxCluster) -> None:
    dirs.paths.directory.mkdir(parents=True)
    dirs.paths.directory.chmod(0o777)
    dirs.config.mkdir(parents=True, mode=0o700)
    for args in (("daemon",), ("daemon", "--detach")):
        refused = await portfwd(*args, limit=40)
        assert refused.code == 1, (args, refused)
        line = refused.one_error()
        assert f"chmod 700 {dirs.paths.directory}" in line, line
        assert refused.out == ""
    assert mode(dirs.paths.directory) == 0o777  # not changed behind the user's back
    assert not dirs.paths.socket.exists()
    assert lock_holder(dirs.paths) is None


async def test_the_daemon_flag_starts_one_on_demand_and_a_running_one_is_used(
    dirs: Dirs, kube: SandboxCluster
) -> None:
    """`portfwd --daemon` with none running starts one (detached) and attaches; without the
    flag and none running, the dashboard runs the engine in-process (no daemon started)."""
    from portfwd.tui.run import _attach

    dirs.config.mkdir(parents=True, exist_ok=True, mode=0o700)
    assert await _attach(False, None, None) is None
    assert lock_holder(dirs.paths) is None, "no daemon without --daemon"
    remote = await _attach(True, None, None)
    pid = remote.server["pid"]
    try:
        assert lock_holder(dirs.paths) == pid
        assert pid != os.getpid()
        fid = await remote.add(
            ForwardSpec(target="svc/echo", remote_port=80, namespace="demo", local_port=0)
        )
        port = remote.get(fid).local_port
        await echo_through(port)
        # A second `--daemon` attaches to the one running: same pid, same forward.
        again = await _attach(True, None, None)
        try:
            assert again.server["pid"] == pid
            assert [s.id for s in again.snapshot()] == [fid]
        finally:
            await again.shutdown()
    finally:
        await remote.shutdown()
        stop = await portfwd("daemon", "stop")
        assert stop.code == 0, stop
        await gone(dirs)
