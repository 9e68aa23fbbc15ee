"""`portfwd forward --spread` (the CLI, a subprocess): new connections reach every Ready pod."""

from __future__ import annotations

import asyncio

from portfwd.sandbox.cluster import SandboxCluster
from tests.support.cli import PORTFWD, forward_process


async def _who(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    return data.rsplit(b"hello from ", 1)[1].strip().decode()


async def test_forward_spread_reaches_every_ready_pod(sandbox: SandboxCluster) -> None:
    args = ("--kubeconfig", str(sandbox.kubeconfig_path), "--address", "127.0.0.1")
    async with forward_process(*args, "--spread", "svc/web", ":80", expect_lines=1) as fp:
        port = fp.forwarding[0][1]
        ready = 2  # the demo's third web pod is never Ready
        seen: set[str] = set()
        async with asyncio.timeout(30):
            while len(seen) < ready:  # the spread is known once the pods' watch synced
                seen.add(await _who(port))
        assert len({await _who(port) for _ in range(20)}) == ready


async def test_spread_on_a_pod_is_one_line(sandbox: SandboxCluster) -> None:
    proc = await asyncio.create_subprocess_exec(
        *(*PORTFWD, "forward", "--kubeconfig", str(sandbox.kubeconfig_path)),
        *("--spread", "pod/toolbox", ":7000"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert err.decode().splitlines() == [
        'error: --spread needs several pods behind the target; "pod/toolbox" is one pod'
        " (use svc/, deploy/, sts/ or rs/)"
    ]
