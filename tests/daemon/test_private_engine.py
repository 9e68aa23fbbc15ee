"""The dashboard's own engine process (daemon/private.py): the forwards run in a child that
no other front end finds, stop with the dashboard's `shutdown`, and stop too when the
dashboard dies without one."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from pathlib import Path

import pytest

from portfwd.daemon.private import PrivateEngine
from portfwd.engine.host import ThreadedEngine
from portfwd.engine.model import ForwardSpec, ForwardState
from portfwd.sandbox.cluster import SandboxCluster
from portfwd.tui.run import _own_engine

from .conftest import Dirs

BOUND = 30.0


def _refused(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _exists(path: Path) -> bool:
    return path.exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (our own child not yet reaped) is not alive either
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


async def _until(check: object, what: str) -> None:
    assert callable(check)
    deadline = time.monotonic() + BOUND
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _echo(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        return await asyncio.wait_for(reader.readexactly(len(data)), 10)
    finally:
        writer.close()


async def test_forwards_run_in_a_child_and_stop_with_the_dashboard(
    sandbox: SandboxCluster, dirs: Dirs
) -> None:
    engine = await PrivateEngine.open(kubeconfig=str(sandbox.kubeconfig_path), ping_interval=30.0)
    child = engine.pid
    try:
        assert child is not None and child != os.getpid()
        fid = await engine.add(ForwardSpec(target="svc/echo", remote_port="tcp"))
        await _until(lambda: engine.get(fid).state is ForwardState.ACTIVE, "the forward")
        port = engine.get(fid).local_port
        assert await _echo(port, b"through the engine process") == b"through the engine process"
        # No other front end finds it: the per-user daemon's socket is not there.
        assert not dirs.paths.socket.exists()
        # Open connections are asked of the child: the list follows one read later.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"held")
            await reader.readexactly(4)
            await _until(lambda: len(engine.open_connections(fid)) == 1, "the open connection")
        finally:
            writer.close()
    finally:
        await engine.shutdown()
    assert _refused(port)
    assert not _alive(child)
    assert engine._directory is not None and not _exists(engine._directory)


CHILD = """
import asyncio, sys
from portfwd.daemon.private import PrivateEngine
from portfwd.engine.model import ForwardSpec, ForwardState

async def main():
    engine = await PrivateEngine.open(kubeconfig=sys.argv[1], ping_interval=30.0)
    fid = await engine.add(ForwardSpec(target="svc/echo", remote_port="tcp"))
    while engine.get(fid).state is not ForwardState.ACTIVE:
        await asyncio.sleep(0.05)
    print(engine.pid, engine.get(fid).local_port, engine._directory, flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


async def test_the_engine_stops_when_the_dashboard_is_killed(
    sandbox: SandboxCluster, dirs: Dirs
) -> None:
    dashboard = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(sandbox.kubeconfig_path),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert dashboard.stdout is not None
        line = await asyncio.wait_for(dashboard.stdout.readline(), BOUND)
        pid_text, port_text, directory = line.decode().split()
        engine_pid, port = int(pid_text), int(port_text)
        assert _exists(Path(directory, "daemon.sock"))
        assert await _echo(port, b"ping") == b"ping"
    finally:
        dashboard.kill()
        await dashboard.wait()
    await _until(lambda: not _alive(engine_pid), "the engine process to exit")
    assert _refused(port)
    assert not _exists(Path(directory))  # it cleaned up after itself


async def test_the_thread_is_still_there_when_asked_for(
    sandbox: SandboxCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORTFWD_ENGINE", "thread")
    warnings: list[str] = []
    engine = await _own_engine(True, str(sandbox.kubeconfig_path), 30.0, warnings)
    try:
        assert isinstance(engine, ThreadedEngine) and warnings == []
    finally:
        await engine.shutdown()


async def test_a_child_that_cannot_start_leaves_the_forwards_in_the_dashboard(
    sandbox: SandboxCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    import portfwd.daemon.private as private

    monkeypatch.setattr(private, "portfwd_command", lambda *args: [sys.executable, "-c", "1"])
    warnings: list[str] = []
    engine = await _own_engine(True, str(sandbox.kubeconfig_path), 30.0, warnings)
    try:
        assert isinstance(engine, ThreadedEngine)
        assert warnings == [
            "the forwards run inside the dashboard: the dashboard's engine process exited"
            " with code 0"
        ]
    finally:
        await engine.shutdown()
