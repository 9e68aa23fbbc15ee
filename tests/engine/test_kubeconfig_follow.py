"""A running engine follows the kubeconfig on disk (issue 18, section 1): a cluster recreated
on another port, a token rotated, a context removed and restored. Two sandbox clusters: the
forward of the other context moves bytes through the whole test, untouched."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from portfwd.engine.clients import ClientPool, ContextChange
from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState, LogKind, LogLevel
from portfwd.errors import ConfigError
from portfwd.sandbox.fleet import SandboxFleet
from tests.support.wait import eventually

from .kubeconfig_edits import (
    Pump,
    echo_once,
    fleet_config,
    replace_atomically,
    restart_elsewhere,
    rewrite_in_place,
)


@pytest_asyncio.fixture(params=["watched", "checked-on-reconnect"])
async def manager(
    sandbox_pair: SandboxFleet, request: pytest.FixtureRequest
) -> AsyncIterator[Manager]:
    """The file watcher tells at once; without it (no inotify), every reconnect attempt
    checks the files: both bring the forwards back."""
    pool = ClientPool(str(sandbox_pair.kubeconfig_path), watch=request.param == "watched")
    mgr = Manager(clients=pool, detect_wake=False)
    try:
        yield mgr
    finally:
        await asyncio.wait_for(mgr.shutdown(), 15)


async def _echo_forward(manager: Manager, context: str) -> str:
    fid = await manager.add(ForwardSpec(target="svc/echo", remote_port="tcp", context=context))
    snap = manager.get(fid)
    assert snap.state is ForwardState.ACTIVE, snap.reason
    return fid


async def _other_context(manager: Manager) -> tuple[str, Pump]:
    """A forward of sandbox-2 with a connection that keeps moving bytes."""
    fid = await _echo_forward(manager, "sandbox-2")
    pump = Pump(manager.get(fid).local_port)
    await pump.start()
    await pump.flowing()
    return fid, pump


def _untouched(manager: Manager, fid: str) -> None:
    """The other context's forward never noticed: one connection, no reconnect, no line."""
    snap = manager.get(fid)
    log = [f"{e.level.name} {e.message}" for e in manager.logs(fid)]
    assert snap.state is ForwardState.ACTIVE, snap.reason
    assert snap.stats.connections_total == 1 and snap.stats.reconnects == 0, log
    assert snap.stats.errors == 0
    assert not [e.message for e in manager.logs(fid) if e.level is not LogLevel.INFO]
    assert not [e.message for e in manager.logs(fid) if "kubeconfig" in e.message]


async def test_cluster_recreated_on_another_port_is_followed(
    manager: Manager, sandbox_pair: SandboxFleet
) -> None:
    path = sandbox_pair.kubeconfig_path
    other, pump = await _other_context(manager)
    ours = [await _echo_forward(manager, "sandbox") for _ in range(2)]
    ports = {fid: manager.get(fid).local_port for fid in ours}

    await restart_elsewhere(sandbox_pair[0])
    for fid in ours:  # the old server is gone: they notice and keep retrying it
        await eventually(lambda f=fid: manager.get(f).state is ForwardState.RECONNECTING)  # type: ignore[misc]
    await pump.flowing()

    await asyncio.to_thread(rewrite_in_place, path, fleet_config(sandbox_pair))
    server = sandbox_pair[0].url
    for fid in ours:
        await eventually(lambda f=fid: manager.get(f).state is ForwardState.ACTIVE, 30)  # type: ignore[misc]
        assert manager.get(fid).local_port == ports[fid]
        await echo_once(ports[fid])
    app_log = [e.message for e in manager.logs(None)]
    assert (
        f"kubeconfig changed: context sandbox reloaded (server {server}); 2 forward(s) follow it"
        in app_log
    )
    for fid in ours:
        assert any(
            e.message == f"kubeconfig changed: context sandbox reloaded (server {server})"
            for e in manager.logs(fid)
        )
    # A forward added now (what `portfwd add` and `r` do) uses the new server too.
    await echo_once(manager.get(await _echo_forward(manager, "sandbox")).local_port)
    await pump.flowing()
    await pump.stop()
    _untouched(manager, other)


async def test_rotated_token_is_used_by_the_next_connection(
    manager: Manager, sandbox_pair: SandboxFleet
) -> None:
    path, cluster = sandbox_pair.kubeconfig_path, sandbox_pair[0]
    other, pump = await _other_context(manager)
    fid = await _echo_forward(manager, "sandbox")
    port = manager.get(fid).local_port

    cluster.tokens.admin = secrets.token_urlsafe(24)  # the old token is refused from now on
    await asyncio.to_thread(replace_atomically, path, fleet_config(sandbox_pair))
    # Every API connection of the old token is cut: only the new token gets back in.
    await cluster.stop_api()
    await cluster.start_api()
    await eventually(lambda: manager.get(fid).state is ForwardState.ACTIVE, 30)
    await echo_once(port)
    added = await _echo_forward(manager, "sandbox")  # a new forward: the new token too
    await echo_once(manager.get(added).local_port)
    assert manager.get(fid).state is ForwardState.ACTIVE
    await pump.flowing()
    await pump.stop()
    _untouched(manager, other)


@pytest.mark.parametrize("manager", ["watched"], indirect=True)  # a healthy forward polls nothing
async def test_removed_context_is_an_error_until_restored(
    manager: Manager, sandbox_pair: SandboxFleet
) -> None:
    path = sandbox_pair.kubeconfig_path
    other, pump = await _other_context(manager)
    fid = await _echo_forward(manager, "sandbox")
    port = manager.get(fid).local_port

    await asyncio.to_thread(rewrite_in_place, path, fleet_config(sandbox_pair, without=["sandbox"]))
    await eventually(lambda: manager.get(fid).state is ForwardState.ERROR, 30)
    snap = manager.get(fid)
    assert snap.reason.startswith(f'context "sandbox" not found in {path}; available: ')
    assert snap.reason.endswith(
        "(the forward keeps its port and resumes when the kubeconfig is fixed)"
    )
    assert snap.bound == (("127.0.0.1", port),)
    [line] = [e for e in manager.logs(fid) if e.kind is LogKind.GONE]
    assert line.level is LogLevel.ERROR and "\n" not in line.message
    await pump.flowing()
    added = await manager.add(ForwardSpec(target="svc/echo", remote_port="tcp", context="sandbox"))
    assert 'context "sandbox" not found' in manager.get(added).reason  # as `portfwd add` says
    await manager.remove(added)

    await asyncio.to_thread(replace_atomically, path, fleet_config(sandbox_pair))
    await eventually(lambda: manager.get(fid).state is ForwardState.ACTIVE, 30)
    assert manager.get(fid).bound == (("127.0.0.1", port),)
    await echo_once(port)
    assert "kubeconfig fixed: context sandbox loads again" in [
        e.message for e in manager.logs(None)
    ]
    await pump.flowing()
    await pump.stop()
    _untouched(manager, other)


async def test_pool_reports_a_broken_file_once_and_its_fix(
    sandbox_pair: SandboxFleet, tmp_path: Path
) -> None:
    """A file that no longer parses: one error per change (control characters escaped), the
    same client back when the content is what it was."""
    path = tmp_path / "config"
    replace_atomically(path, fleet_config(sandbox_pair))
    pool = ClientPool(str(path))
    changes: list[ContextChange] = []
    pool.subscribe(changes.append)
    try:
        client = await pool.get()  # the current context, pinned by name
        assert client.context == "sandbox"
        path.write_text("clusters: [\x1b[31m\n")
        await eventually(lambda: len(changes) == 1, 30)
        assert changes[0].new is None and changes[0].old is client
        assert "is not valid YAML" in changes[0].error and "\x1b" not in changes[0].error
        with pytest.raises(ConfigError, match="is not valid YAML"):
            await pool.get()
        config = fleet_config(sandbox_pair)
        config["current-context"] = "sandbox-2"  # use-context: the pinned one stays
        replace_atomically(path, config)
        await eventually(lambda: len(changes) == 2, 30)
        assert changes[1].new is client and not changes[1].reloaded and not changes[1].error
        assert await pool.get() is client
    finally:
        await pool.close()
