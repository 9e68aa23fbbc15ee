"""Saves that cost what changed: one forward's change encodes one entry (in the writer's
thread), the file is the same YAML a whole-document dump gives, and `persist` returns once
the file holds the change (sharing writes with whoever waits at the same time)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import yaml

from portfwd.engine.model import ForwardSpec
from portfwd.store import entries as entries_module
from portfwd.store.entries import Entry, encode_entries
from portfwd.store.session import Session
from portfwd.store.state import StateStore
from tests.tui.fakes import FakeManager

pytestmark = pytest.mark.timeout(60)


def _spec(n: int) -> ForwardSpec:
    return ForwardSpec(target=f"svc/s{n}", remote_port=80, local_port=41000 + n, name=f"s{n}")


def test_the_joined_blocks_are_the_whole_document_dumped() -> None:
    data = [
        {"id": "a", "target": "svc/a", "remote_port": 80, "addresses": ["127.0.0.1"]},
        {"id": "b", "target": "pod/b é", "remote_port": "http", "running": False},
    ]
    text = encode_entries([Entry(d) for d in data])
    whole = yaml.safe_dump({"version": 1, "forwards": data}, sort_keys=False)
    assert text.split("\n", 1)[1] == whole
    assert yaml.safe_load(encode_entries([])) == {"version": 1, "forwards": []}


async def test_one_added_forward_encodes_one_entry_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    real = entries_module.dump_yaml

    def counted(data: object) -> str:
        threads.append(threading.current_thread().name)
        return real(data)

    monkeypatch.setattr(entries_module, "dump_yaml", counted)
    path = tmp_path / "state.yaml"
    store = StateStore(path)
    manager = FakeManager()
    session = Session(manager, store, store.load(), coalesce_delay=0.01)
    await session.start()
    try:
        for n in range(50):
            fid = await manager.add(_spec(n), start=False)
            await session.persist(fid)
        assert len(threads) == 50
        fid = await manager.add(_spec(50), start=False)
        await session.persist(fid)
        assert len(threads) == 51  # the 51st forward cost one entry, not 51
        main = threading.main_thread().name
        assert main not in threads  # never encoded on the event loop's thread
        assert len(yaml.safe_load(path.read_text())["forwards"]) == 51
    finally:
        await session.close(flush=False)


async def test_persist_returns_once_the_file_holds_the_change(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    store = StateStore(path)
    manager = FakeManager()
    session = Session(manager, store, store.load(), coalesce_delay=3600)  # never by itself
    await session.start()
    try:
        fid = await manager.add(_spec(1), start=False)
        await session.persist(fid)
        assert [f["id"] for f in yaml.safe_load(path.read_text())["forwards"]] == [fid]
        await manager.remove(fid)
        await session.persist(fid)
        assert yaml.safe_load(path.read_text())["forwards"] == []
    finally:
        await session.close(flush=False)


async def test_concurrent_persists_share_writes(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    store = StateStore(path)
    manager = FakeManager()
    session = Session(manager, store, store.load(), coalesce_delay=3600)
    await session.start()
    try:
        await session.persist()
        before = store.writes

        async def add(n: int) -> None:
            await session.persist(await manager.add(_spec(n), start=False))

        await asyncio.gather(*(add(n) for n in range(32)))
        assert len(yaml.safe_load(path.read_text())["forwards"]) == 32
        assert store.writes - before <= 3  # group commit: not one write per add
    finally:
        await session.close(flush=False)


async def test_a_failed_write_fails_the_waiting_persist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from portfwd.errors import PortfwdError
    from portfwd.store import state as state_module

    path = tmp_path / "state.yaml"
    store = StateStore(path)
    manager = FakeManager()
    session = Session(manager, store, store.load(), coalesce_delay=3600)
    await session.start()

    def full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    try:
        monkeypatch.setattr(state_module, "write_atomic", full)
        fid = await manager.add(_spec(1), start=False)
        with pytest.raises(PortfwdError, match="not saved: cannot save the session"):
            await session.persist(fid)
    finally:
        await session.close(flush=False)
