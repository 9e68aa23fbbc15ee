"""The session service: one writer per file, what --no-restore leaves, restore order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from portfwd.engine.model import ForwardSpec, ForwardState
from portfwd.store.session import Session, describe_lock
from portfwd.store.state import StateStore
from tests.tui.fakes import FakeManager


def _spec(name: str, port: int) -> ForwardSpec:
    return ForwardSpec(target=f"svc/{name}", remote_port=80, local_port=port)


async def test_a_second_session_on_the_same_file_shows_it_stopped_and_saves_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.yaml"
    first_engine = FakeManager()
    first_store = StateStore(path)
    first = Session(first_engine, first_store, first_store.load())
    await first.start()
    await first_engine.add(_spec("web", 41001))
    await first.save()
    second_engine = FakeManager()
    second_store = StateStore(path)
    second = Session(second_engine, second_store, second_store.load())
    try:
        await second.start()
        assert second.locked_by is not None and not second.saving
        warning = describe_lock(second)
        assert warning is not None and "another portfwd (pid " in warning
        assert "run `portfwd daemon` to share forwards between windows" in warning
        # It shows what the first one runs, stopped (their ports are the first one's).
        assert [s.state for s in second_engine.snapshot()] == [ForwardState.STOPPED]
        await second_engine.add(_spec("api", 41002))
        await second.save()
        saved = yaml.safe_load(path.read_text())["forwards"]
        assert [f["target"] for f in saved] == ["svc/web"]  # the second changed nothing
    finally:
        await second.close()
        await first.close()
    # Once the first has let go, a new session owns the file again.
    third_store = StateStore(path)
    third = Session(FakeManager(), third_store, third_store.load())
    try:
        await third.start()
        assert third.locked_by is None and third.saving
    finally:
        await third.close()


async def test_a_killed_holder_leaves_no_lock_behind(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    proc = await asyncio.create_subprocess_exec(
        "python3",
        "-c",
        "import fcntl, os, sys, time;"
        f"fd = os.open({str(path) + '.lock'!r}, os.O_RDWR | os.O_CREAT, 0o600);"
        "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert await asyncio.wait_for(proc.stdout.readline(), 10) == b"held\n"
    store = StateStore(path)
    session = Session(FakeManager(), store, store.load())
    await session.start()
    assert session.locked_by is not None
    await session.close()
    proc.kill()
    await proc.wait()
    session = Session(FakeManager(), store, store.load())
    try:
        await session.start()
        assert session.locked_by is None
    finally:
        await session.close()
