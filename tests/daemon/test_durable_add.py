"""An ok reply to `add` (and to the other changes) means the forward is in the session file:
a `kill -9` right after the reply loses nothing the daemon acknowledged."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from portfwd.daemon.client import DaemonClient
from portfwd.engine.model import ForwardSpec
from portfwd.engine.serial import spec_to_dict
from portfwd.store.state import StateStore

from .conftest import Dirs, daemon_process

pytestmark = pytest.mark.timeout(120)


def spec(n: int) -> ForwardSpec:
    # Added stopped: no cluster is needed to hold a forward in the session.
    return ForwardSpec(target=f"svc/s{n}", remote_port=80, local_port=0, name=f"s{n}")


async def test_kill_9_right_after_ok_replies_loses_no_acknowledged_forward(
    dirs: Dirs, tmp_path: Path
) -> None:
    state = tmp_path / "state.yaml"
    acknowledged: list[str] = []
    async with daemon_process(dirs, "--state", str(state)) as daemon:
        client = await DaemonClient.connect(dirs.paths, client="test")
        try:
            # Added one after another (as `portfwd add` in a loop does) ...
            for n in range(5):
                await client.request("add", spec=spec_to_dict(spec(n)), start=False)
                acknowledged.append(f"s{n}")

            # ... and 40 at once: the kill lands right after the 20th ok reply.
            async def add(n: int) -> None:
                await client.request("add", spec=spec_to_dict(spec(n)), start=False)
                acknowledged.append(f"s{n}")
                if len(acknowledged) == 25:
                    daemon.proc.send_signal(signal.SIGKILL)

            await asyncio.gather(*(add(n) for n in range(5, 45)), return_exceptions=True)
        finally:
            await client.close()
        await daemon.stop(signal.SIGKILL)  # (its exit status: another reaper may take it)
    assert len(acknowledged) >= 25
    loaded = StateStore(state).load()
    names = {f.spec.name for f in loaded.forwards}
    lost = [name for name in acknowledged if name not in names]
    assert not lost, f"acknowledged but not saved: {lost}"


async def test_a_removal_acknowledged_is_saved_before_the_reply(dirs: Dirs, tmp_path: Path) -> None:
    state = tmp_path / "state.yaml"
    async with daemon_process(dirs, "--state", str(state)) as daemon:
        client = await DaemonClient.connect(dirs.paths, client="test")
        try:
            for n in range(3):
                await client.request("add", spec=spec_to_dict(spec(n)), start=False)
            await client.request("remove", id="s1")
            daemon.proc.send_signal(signal.SIGKILL)
        finally:
            await client.close()
        await daemon.stop(signal.SIGKILL)
    names = [f.spec.name for f in StateStore(state).load().forwards]
    assert names == ["s0", "s2"]
