"""What the daemon knows that `ls` and the dashboard show: the session entries it had to
leave out of state.yaml, and the kubeconfig a forward without one uses."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from portfwd.daemon.client import DaemonClient
from portfwd.daemon.server import DaemonServer
from portfwd.engine.manager import Manager
from portfwd.store.session import Session
from portfwd.store.state import StateStore

from .conftest import Dirs

pytestmark = pytest.mark.timeout(60)

STATE = """\
version: 1
forwards:
- id: good1
  target: svc/one
  remote_port: 80
  local_port: 41001
  running: false
- id: bad
  target: svc/two
  remote_port: 99999
  running: false
- id: good2
  target: svc/three
  remote_port: 80
  local_port: 41003
  running: false
"""


async def test_status_says_what_the_session_left_out_and_the_kubeconfig(
    dirs: Dirs, tmp_path: Path
) -> None:
    state = tmp_path / "state.yaml"
    state.write_text(STATE)
    state.chmod(0o600)
    store = StateStore(state)
    manager = Manager(kubeconfig="/somewhere/kubeconfig", follow=False, detect_wake=False)
    session = Session(manager, store, await asyncio.to_thread(store.load))
    server = DaemonServer(manager, session, dirs.paths)
    await server.start()
    try:
        await server.restore()
        client = await DaemonClient.connect(dirs.paths, client="ls")
        try:
            status = await client.request("status")
            snaps = await client.request("snapshot")
        finally:
            await client.close()
    finally:
        await asyncio.wait_for(server.close(), 30)
    assert [s["id"] for s in snaps] == ["good1", "good2"]
    assert status["kubeconfig"] == "/somewhere/kubeconfig"
    (warning,) = status["warnings"]
    assert "left out 1 entry(ies) that could not be read (entry 2: forward bad:" in warning
    assert "restored the other 2 forward(s)" in warning
    # The file no longer has the bad entry; the copy beside it does.
    assert [f.id for f in StateStore(state).load().forwards] == ["good1", "good2"]
    backups = await asyncio.to_thread(lambda: list(tmp_path.glob("state.yaml.bak-*")))
    assert [b.read_text() for b in backups] == [STATE]


async def test_ls_says_what_the_session_left_out(dirs: Dirs, tmp_path: Path) -> None:
    from .test_cli import portfwd

    state = tmp_path / "state.yaml"
    state.write_text(STATE)
    state.chmod(0o600)
    store = StateStore(state)
    manager = Manager(kubeconfig="/somewhere/kubeconfig", follow=False, detect_wake=False)
    session = Session(manager, store, await asyncio.to_thread(store.load))
    server = DaemonServer(manager, session, dirs.paths)
    await server.start()
    try:
        await server.restore()
        ls = await portfwd("ls")
    finally:
        await asyncio.wait_for(server.close(), 30)
    assert ls.code == 0, ls.err
    (warning,) = ls.err_lines
    assert warning.startswith("warning: ") and "left out 1 entry(ies)" in warning
    assert "svc/one" in ls.out and "svc/three" in ls.out
