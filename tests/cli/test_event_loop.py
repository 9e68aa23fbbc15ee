"""portfwd runs on uvloop when it is installed, and on asyncio's loop when told so: both
move bytes over every protocol."""

from __future__ import annotations

import asyncio
import os

import pytest

from portfwd.eventloop import loop_factory
from portfwd.sandbox.cluster import SandboxCluster
from tests.support.cli import PORTFWD

pytestmark = pytest.mark.timeout(120)


def test_the_loop_is_uvloop_when_installed_unless_turned_off() -> None:
    import uvloop  # a dev dependency: installed wherever the suite runs

    assert loop_factory({}) is uvloop.new_event_loop
    assert loop_factory({"PORTFWD_UVLOOP": "0"}) is asyncio.new_event_loop


@pytest.mark.parametrize("uvloop", ["1", "0"])
@pytest.mark.parametrize("protocol", ["websocket", "spdy", "v4"])
async def test_forward_moves_bytes_on_either_loop(
    sandbox: SandboxCluster, protocol: str, uvloop: str
) -> None:
    proc = await asyncio.create_subprocess_exec(
        *PORTFWD,
        *("forward", "--kubeconfig", str(sandbox.kubeconfig_path)),
        *("--protocol", protocol, "--address", "127.0.0.1", "svc/echo", ":80"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PORTFWD_UVLOOP": uvloop},
    )
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("Forwarding from 127.0.0.1:"), line
        port = int(line.split(":")[1].split()[0])
        payload = os.urandom(4 * 1024 * 1024)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(payload)
        assert await asyncio.wait_for(reader.readexactly(len(payload)), 30) == payload
        writer.close()
    finally:
        proc.send_signal(2)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
