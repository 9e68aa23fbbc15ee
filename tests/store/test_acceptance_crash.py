"""Acceptance: the session file survives a real `kill -9`, mid-write or between writes.

Issue 3: "written atomically ... on every change, not only at quit, so a kill -9 loses
nothing" and "a crash mid-write leaves the old file intact". The other store tests check the
happy path of write_atomic; here a child process is SIGKILLed for real (once inside the write,
after the new bytes went to the temp file and before the rename; once while idle with live
forwards) and the parent reads what is left, then restores it on the sandbox.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardState
from portfwd.sandbox.cluster import SandboxCluster
from portfwd.store.session import restore
from portfwd.store.state import StateStore

pytestmark = pytest.mark.timeout(90)

CRASH_MID_WRITE = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from pathlib import Path
    from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState
    from portfwd.store.state import StateStore

    def snap(name):
        spec = ForwardSpec(target="svc/" + name, remote_port=80, namespace="demo")
        return ForwardSnapshot(id=name, spec=spec, state=ForwardState.STOPPED)

    async def main():
        store = StateStore(Path(sys.argv[1]))
        store.load()
        assert await store.save([snap("old")])
        # The new content is in the temp file; die before it replaces the old one.
        os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
        await store.save([snap("new1"), snap("new2")])
        print("not killed", flush=True)

    asyncio.run(main())
    """
)

KILLED_WHILE_RUNNING = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from portfwd.engine.manager import Manager
    from portfwd.engine.model import ForwardSpec
    from portfwd.store.session import Session
    from portfwd.store.state import StateStore

    async def main():
        manager = Manager(kubeconfig=sys.argv[1])
        store = StateStore(Path(sys.argv[2]))
        session = Session(manager, store, store.load())
        await session.start()
        fid = await manager.add(ForwardSpec(target="svc/echo", remote_port=80))
        await manager.add(ForwardSpec(target="svc/web", remote_port=80), start=False)
        print(fid, manager.get(fid).local_port, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


async def _python(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )


async def _reap(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
    await asyncio.wait_for(proc.wait(), 15)


async def test_kill_9_in_the_middle_of_a_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "state.yaml"
    proc = await _python(CRASH_MID_WRITE, str(path))
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await _reap(proc)
    assert proc.returncode == -signal.SIGKILL, (out, err)
    assert b"not killed" not in out

    loaded = StateStore(path).load()
    assert not loaded.warnings
    assert [f.id for f in loaded.forwards] == ["old"]  # the old file, whole
    # A half-written temp file may be left behind; it must not disturb the next session.
    store = StateStore(path)
    store.load()
    assert store.writable
    new = yaml.safe_load(path.read_text())
    assert [f["id"] for f in new["forwards"]] == ["old"]


async def test_kill_9_while_running_loses_nothing_and_restores(
    sandbox: SandboxCluster, tmp_path: Path
) -> None:
    path = tmp_path / "cfg" / "state.yaml"
    proc = await _python(KILLED_WHILE_RUNNING, str(sandbox.kubeconfig_path), str(path))
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().split()
        assert len(line) == 2, line
        active_id, port = line[0], int(line[1])

        def saved() -> list[dict[str, object]]:
            try:
                return list(yaml.safe_load(path.read_text())["forwards"])
            except (FileNotFoundError, TypeError, KeyError):
                return []

        async def until_saved() -> None:
            for _ in itertools.count():  # polls a file: no event to wait on
                if [f["running"] for f in saved()] == [True, False]:
                    return
                await asyncio.sleep(0.05)

        await asyncio.wait_for(until_saved(), 30)  # written without any quit
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 15)
    finally:
        await _reap(proc)
    assert proc.returncode == -signal.SIGKILL

    loaded = StateStore(path).load()
    assert not loaded.warnings
    assert (loaded.forwards[0].id, loaded.forwards[0].running) == (active_id, True)
    assert loaded.forwards[0].spec.local_port == port  # the port clients were using

    manager = Manager(kubeconfig=str(sandbox.kubeconfig_path))
    try:
        notes = await restore(manager, loaded.forwards)
        restored = manager.get(active_id)
        assert restored.state is ForwardState.ACTIVE, restored.reason
        assert restored.local_port == port
        other = manager.get(loaded.forwards[1].id)
        assert other.state is ForwardState.STOPPED
        assert notes == {other.id: "stopped in the last session"}
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"after kill -9")
            assert await asyncio.wait_for(reader.readexactly(13), 20) == b"after kill -9"
        finally:
            writer.close()
        assert restored.spec.target == "svc/echo"
    finally:
        await asyncio.wait_for(manager.shutdown(), 30)
