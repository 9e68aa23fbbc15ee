"""The daemon's operations live in one table (daemon/ops.py): the server dispatches from it,
both clients are built from it, and no other module writes an operation's name."""

from __future__ import annotations

import ast
import asyncio
import inspect
from pathlib import Path

from portfwd.daemon import ops
from portfwd.daemon import protocol as proto
from portfwd.daemon.client import RemoteEngine
from portfwd.daemon.sync_client import SyncClient
from portfwd.engine.api import EngineAPI
from portfwd.engine.model import ForwardState

from .conftest import InProcessDaemon

SRC = Path(__file__).resolve().parents[2] / "src" / "portfwd"
ENGINE_METHODS = {
    name
    for name, _ in inspect.getmembers(EngineAPI, inspect.isfunction)
    if not name.startswith("_")
}
OP_NAMES = {*ops.TABLE, proto.HELLO}


def _op_strings(path: Path) -> list[str]:
    """Where `path` names an operation: `x.request("op", ...)` or `{"op": ...}`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            first = node.args[0] if node.args else None
            if (
                node.func.attr in ("request", "call")
                and isinstance(first, ast.Constant)
                and first.value in OP_NAMES
            ):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: {first.value!r}")
        if isinstance(node, ast.Dict):
            for key in node.keys:
                if isinstance(key, ast.Constant) and key.value == "op":
                    found.append(f"{path.relative_to(SRC)}:{node.lineno}: an op key")
    return found


def test_no_operation_name_outside_the_daemon_package() -> None:
    offenders = [
        hit
        for path in sorted(SRC.rglob("*.py"))
        if path.parent.name != "daemon" and "sandbox" not in path.parts
        for hit in _op_strings(path)
    ]
    assert offenders == []


def test_the_check_finds_an_operation_name() -> None:
    """The scan above is not vacuous: the daemon's own modules do name operations."""
    assert _op_strings(SRC / "daemon" / "replies.py") or _op_strings(SRC / "daemon" / "client.py")


def test_every_engine_method_of_the_table_is_one_of_engine_api() -> None:
    methods = {op.method for op in ops.TABLE.values() if op.method is not None}
    assert methods <= ENGINE_METHODS
    assert ENGINE_METHODS - methods == {"subscribe", "get", "shutdown"}  # local to each client


async def test_every_engine_method_is_reachable_through_both_clients(
    daemon: InProcessDaemon,
) -> None:
    # The asyncio RemoteEngine: the whole EngineAPI.
    engine: EngineAPI = await RemoteEngine.attach(daemon.paths, client="test", logs=10)
    assert {n for n in dir(engine) if not n.startswith("_")} >= ENGINE_METHODS
    try:
        events = engine.subscribe()
        fid = await engine.add(daemon.spec(name="remote"), start=False)
        assert (await engine.start(fid)).state is ForwardState.ACTIVE
        assert engine.get(fid).id == fid
        assert [s.id for s in engine.snapshot()] == [fid]
        assert isinstance(engine.open_connections(fid), list)
        await engine.set_reconnect(fid, False)
        await engine.set_http_log(fid, True)
        assert daemon.manager.get(fid).spec.http_log
        page = await engine.pod_log(fid, None, 0, 5)
        assert page.pod == daemon.manager.get(fid).pod and page.next > 0, page
        await engine.update(fid, daemon.spec(name="remote2"))
        assert (await engine.restart(fid)).spec.name == "remote2"
        await engine.stop(fid)
        assert daemon.manager.get(fid).state is ForwardState.STOPPED
        assert isinstance(engine.logs(fid), list)
        await engine.remove(fid)
        assert daemon.manager.snapshot() == []
        events.close()
    finally:
        await engine.shutdown()

    # The blocking client (its replies are snapshots): every method but the event stream.
    def blocking() -> None:
        conn = SyncClient.connect(daemon.paths, client="test")
        try:
            assert ENGINE_METHODS - {"subscribe"} <= set(dir(conn))
            snap = conn.add(daemon.spec(name="sync"), start=False)
            assert conn.start("sync").state is ForwardState.ACTIVE
            assert conn.get(snap.id).spec.name == "sync"
            assert [s.id for s in conn.snapshot()] == [snap.id]
            assert conn.open_connections("sync") == []
            assert conn.set_reconnect("sync", False).spec.reconnect is False
            assert conn.set_http_log("sync", True).spec.http_log is True
            assert conn.pod_log("sync", wait=5).pod == conn.get(snap.id).pod
            assert conn.update("sync", daemon.spec(name="sync2")).spec.name == "sync2"
            assert conn.restart("sync2").state is ForwardState.ACTIVE
            assert conn.stop("sync2").state is ForwardState.STOPPED
            assert conn.logs("sync2", 5)
            assert conn.status()["forwards"] == 1
            conn.remove("sync2")
            assert conn.snapshot() == []
            assert conn.shutdown()["stopping"] is True
        finally:
            conn.close()

    await asyncio.to_thread(blocking)
    assert daemon.server.stopping.is_set()
