"""Session state: the file format, atomic writes, moving bad files aside, restore rules."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from portfwd.configdir import config_dir, default_state_file
from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState
from portfwd.store.session import Session, restore
from portfwd.store.state import (
    SCHEMA_VERSION,
    LoadResult,
    SavedForward,
    StateStore,
    write_atomic,
)
from tests.tui.fakes import FakeManager

FIXED = 1_780_000_000.0


def snap(fid: str, state: ForwardState, **kw: object) -> ForwardSnapshot:
    spec = ForwardSpec(
        target=f"svc/{fid}", remote_port=80, local_port=0, namespace="demo", context="sandbox"
    )
    return ForwardSnapshot(id=fid, spec=spec, state=state, **kw)  # type: ignore[arg-type]


def test_config_dir_override_and_default(tmp_path: Path) -> None:
    assert config_dir({"PORTFWD_CONFIG_DIR": str(tmp_path)}) == tmp_path
    assert default_state_file({"PORTFWD_CONFIG_DIR": str(tmp_path)}) == tmp_path / "state.yaml"
    assert config_dir({}).name == "portfwd"


async def test_round_trip_keeps_bound_port_running_flag_and_reason(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "state.yaml"
    store = StateStore(path)
    snaps = [
        snap("a", ForwardState.ACTIVE, bound=(("127.0.0.1", 40123),)),
        snap("b", ForwardState.ERROR, reason="svc/b not found"),
        snap("c", ForwardState.STOPPED),
    ]
    assert await store.save(snaps)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = yaml.safe_load(path.read_text())
    assert doc["version"] == SCHEMA_VERSION
    loaded = StateStore(path).load()
    assert loaded.existed and not loaded.warnings
    by_id = {f.id: f for f in loaded.forwards}
    assert [f.id for f in loaded.forwards] == ["a", "b", "c"]
    assert by_id["a"].running and by_id["a"].spec.local_port == 40123
    assert not by_id["b"].running and by_id["b"].reason == "svc/b not found"
    assert by_id["c"].spec == snaps[2].spec
    # Unchanged content is not rewritten.
    assert not await store.save(snaps)
    assert store.writes == 1


def test_write_atomic_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    write_atomic(path, "one")
    write_atomic(path, "two")
    assert path.read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.yaml"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("version: 1\nforwards: [\n", "not valid YAML"),
        ("- just\n- a list\n", "top level is not a mapping"),
        (f"version: {SCHEMA_VERSION + 1}\nforwards: []\n", "newer portfwd"),
    ],
)
def test_unusable_file_is_moved_aside_and_session_starts_empty(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "state.yaml"
    path.write_text(content)
    store = StateStore(path, clock=lambda: FIXED)
    result = store.load()
    backup = tmp_path / "state.yaml.bak-20260528T202640"
    assert result.forwards == []
    assert len(result.warnings) == 1
    assert problem in result.warnings[0] and str(backup) in result.warnings[0]
    assert backup.read_text() == content  # the user's data is kept
    assert not path.exists()
    assert store.writable


def test_binary_garbage_is_moved_aside_too(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    garbage = b"\xff\xfe\x00version: 1\n\x9c"
    path.write_bytes(garbage)
    result = StateStore(path, clock=lambda: FIXED).load()
    backup = tmp_path / "state.yaml.bak-20260528T202640"
    assert result.existed and result.forwards == [] and result.writable
    assert result.warnings == [
        f"session file {path} is unusable (not UTF-8 text); moved it to {backup} "
        "and started with an empty session"
    ]
    assert backup.read_bytes() == garbage


async def test_unreadable_file_is_never_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import portfwd.store.state as state_module

    path = tmp_path / "state.yaml"
    path.write_text("version: 1\n")

    def denied(*args: object, **kwargs: object) -> bytes:
        raise PermissionError(13, "Permission denied")  # root reads a mode-0 file: simulate

    monkeypatch.setattr(state_module, "read_capped", denied)
    store = StateStore(path)
    result = store.load()
    assert not result.writable and "will not be saved" in result.warnings[0]
    assert not await store.save([snap("a", ForwardState.ACTIVE)])
    assert path.read_text() == "version: 1\n"


async def test_follows_manager_events_and_coalesces_bursts(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    store = StateStore(path)
    manager = FakeManager()
    session = Session(manager, store, store.load(), coalesce_delay=0.05)
    await session.start()
    try:
        for n in range(20):  # a burst: far fewer writes than changes
            await manager.add(
                ForwardSpec(target=f"svc/s{n}", remote_port=80, local_port=41000 + n), start=True
            )

        async def saved_all() -> None:
            while True:
                # (the file is there a moment before the writer thread's count goes up)
                done = path.exists() and len(yaml.safe_load(path.read_text())["forwards"]) == 20
                if done and store.writes:
                    return
                await asyncio.sleep(0.01)

        await asyncio.wait_for(saved_all(), 10)
        assert 1 <= store.writes < 20 * 3
        await manager.stop("f1")
        await session.save()
        entries = {e["id"]: e for e in yaml.safe_load(path.read_text())["forwards"]}
        assert entries["f1"]["running"] is False and entries["f2"]["running"] is True
    finally:
        await session.close(flush=False)
    # Changes after close are not written (quit saves, then stops everything).
    writes = store.writes
    await manager.shutdown()
    await manager.stop("f2")
    await asyncio.sleep(0.1)
    assert store.writes == writes
    assert yaml.safe_load(path.read_text())["forwards"][1]["running"] is True


async def test_restore_restarts_running_and_notes_stopped() -> None:
    manager = FakeManager()
    spec = ForwardSpec(target="svc/echo", remote_port=80, local_port=8080, namespace="demo")
    saved = [
        SavedForward("one", spec, running=True),
        SavedForward("two", spec, running=False, reason="svc/echo not found"),
        SavedForward("three", spec, running=False),
    ]
    notes = await restore(manager, saved)
    assert [s.id for s in manager.snapshot()] == ["one", "two", "three"]
    states = {s.id: s.state for s in manager.snapshot()}
    assert states == {
        "one": ForwardState.ACTIVE,
        "two": ForwardState.STOPPED,
        "three": ForwardState.STOPPED,
    }
    assert notes == {
        "two": "stopped in the last session: svc/echo not found",
        "three": "stopped in the last session",
    }


async def test_restore_without_restart_keeps_everything_stopped() -> None:
    manager = FakeManager()
    spec = ForwardSpec(target="svc/echo", remote_port=80)
    notes = await restore(manager, [SavedForward("one", spec, running=True)], restart=False)
    assert manager.get("one").state is ForwardState.STOPPED
    assert notes == {"one": "not restarted (--no-restore)"}


def test_file_mode_is_0600_even_with_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_atomic(tmp_path / "s.yaml", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "s.yaml").stat().st_mode) == 0o600


async def test_a_restored_forward_that_keeps_failing_stays_wanted(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    store = StateStore(path)
    manager = FakeManager(
        [
            snap("down", ForwardState.ERROR, reason="cluster unreachable"),
            snap("up", ForwardState.ACTIVE),
            snap("failed", ForwardState.ERROR, reason="svc/failed not found"),
        ]
    )
    loaded = LoadResult(  # both were running in the saved session
        forwards=[SavedForward(i, manager.get(i).spec, running=True) for i in ("down", "up")],
        existed=True,
    )
    session = Session(manager, store, loaded, coalesce_delay=0.01)
    # The engine holds them already (as a restore would leave them): keep those states.
    manager.add = _already_there(manager)  # type: ignore[method-assign]
    manager.start = _already_there_start(manager)  # type: ignore[method-assign]
    await session.start()
    try:
        await session.save()
        running = {e["id"]: e["running"] for e in yaml.safe_load(path.read_text())["forwards"]}
        # Still failing since the restore: kept; never wanted: not.
        assert running == {"down": True, "up": True, "failed": False}
        # Once the user stops it, the file says so.
        await manager.stop("down")
        await manager.stop("up")
        manager.set(
            ForwardSnapshot(
                id="down", spec=manager.get("down").spec, state=ForwardState.ERROR, reason="x"
            )
        )

        async def settled() -> None:
            while True:
                await session.save()
                doc = yaml.safe_load(path.read_text())["forwards"]
                if not any(e["running"] for e in doc):
                    return
                await asyncio.sleep(0.01)

        await asyncio.wait_for(settled(), 10)
    finally:
        await session.close(flush=False)


def test_load_sweeps_orphaned_temp_files_but_not_fresh_ones(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    write_atomic(path, "version: 1\nforwards: []\n")
    orphan = tmp_path / ".state.yaml.abc123.tmp"
    orphan.write_text("half a write from a killed process")
    old = time.time() - 3600
    os.utime(orphan, (old, old))
    fresh = tmp_path / ".state.yaml.def456.tmp"
    fresh.write_text("another portfwd writing right now")
    unrelated = tmp_path / ".other.yaml.abc.tmp"
    unrelated.write_text("not ours")
    os.utime(unrelated, (old, old))

    StateStore(path).load()

    assert not orphan.exists()
    assert fresh.exists()
    assert unrelated.exists()


async def test_reconnect_flag_round_trips_and_survives_the_bound_port(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    off = snap("off", ForwardState.ACTIVE, bound=(("127.0.0.1", 40124),))
    off = replace(off, spec=replace(off.spec, reconnect=False))
    on = snap("on", ForwardState.STOPPED)
    assert await StateStore(path).save([off, on])
    entries = yaml.safe_load(path.read_text())["forwards"]
    # Written always, so a reader of the file (or a person) never has to know the default.
    assert [e["reconnect"] for e in entries] == [False, True]
    loaded = {f.id: f for f in StateStore(path).load().forwards}
    assert loaded["off"].spec.reconnect is False
    assert loaded["off"].spec.local_port == 40124  # the bound-port rewrite keeps the flag
    assert loaded["on"].spec.reconnect is True


def test_a_file_from_before_reconnect_loads_with_reconnect_on(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    path.write_text(
        "version: 1\n"
        "forwards:\n"
        "- id: old\n"
        "  target: svc/web\n"
        "  remote_port: 80\n"
        "  local_port: 8080\n"
        "  addresses: ['127.0.0.1']\n"
        "  running: true\n"
    )
    result = StateStore(path).load()
    assert not result.warnings
    assert [f.spec.reconnect for f in result.forwards] == [True]


def test_schema_version_stays_readable_by_older_portfwd() -> None:
    """The new key is the only change: an older reader ignores it, so the version is still 1
    (an older portfwd refuses a higher version and would move the file aside)."""
    assert SCHEMA_VERSION == 1
    saved = SavedForward(
        "x", ForwardSpec(target="svc/x", remote_port=80, reconnect=False), running=False
    )
    data = saved.to_dict()
    assert data["reconnect"] is False
    assert SavedForward.from_dict(data).spec.reconnect is False


def test_a_reconnect_that_is_not_a_boolean_is_a_bad_file() -> None:
    with pytest.raises(ValueError, match="bad reconnect"):
        SavedForward.from_dict(
            {"id": "x", "target": "svc/x", "remote_port": 80, "reconnect": "sometimes"}
        )


async def test_an_error_that_still_holds_its_port_stays_wanted(tmp_path: Path) -> None:
    """A forward whose pod was deleted is ERROR but keeps its port and waits for the pod to
    return: the session must restart it next time; an ERROR that released its port
    (a permanent failure) must not."""
    path = tmp_path / "state.yaml"
    store = StateStore(path)
    waiting = snap(
        "waiting", ForwardState.ERROR, reason="pod/x was deleted", bound=(("127.0.0.1", 40999),)
    )
    failed = snap("failed", ForwardState.ERROR, reason="svc/failed not found")
    assert await store.save([waiting, failed])
    by_id = {f.id: f for f in StateStore(path).load().forwards}
    assert by_id["waiting"].running and by_id["waiting"].spec.local_port == 40999
    assert not by_id["failed"].running


def _already_there(manager: FakeManager) -> Any:
    async def add(spec: ForwardSpec, *, start: bool = True, forward_id: str | None = None) -> str:
        assert forward_id is not None
        return forward_id

    return add


def _already_there_start(manager: FakeManager) -> Any:
    async def start(forward_id: str) -> ForwardSnapshot:
        return manager.get(forward_id)

    return start
