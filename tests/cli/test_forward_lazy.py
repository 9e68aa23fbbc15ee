"""`portfwd forward --lazy --idle-after D --idle-stop D` in the foreground: kubectl's lines
name the port asked for (nothing is resolved yet), the first connection gets its bytes, the
dozing and waking are said on stderr, and idle_stop ends the command with status 0."""

from __future__ import annotations

import asyncio

from portfwd.sandbox.cluster import SandboxCluster
from tests.support.cli import PORTFWD


async def test_forward_lazy_wakes_dozes_and_idle_stop_ends_it(sandbox: SandboxCluster) -> None:
    proc = await asyncio.create_subprocess_exec(
        *PORTFWD, "forward", "--kubeconfig", str(sandbox.kubeconfig_path), "-n", "demo",
        "--address", "127.0.0.1", "--lazy", "--idle-after", "300ms", "--idle-stop", "2s",
        "svc/echo", ":80",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert first.startswith("Forwarding from 127.0.0.1:") and first.endswith(" -> 80\n")
        port = int(first.split("127.0.0.1:")[1].split()[0])
        assert sandbox.portforward_requests == 0
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello")
        assert await asyncio.wait_for(reader.readexactly(5), 30) == b"hello"
        writer.close()
        out, err = await asyncio.wait_for(proc.communicate(), 60)  # idle_stop ends it
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err
    assert f"Handling connection for {port}" in out.decode()
    said = err.decode().splitlines()
    assert said == [
        "lazy: the first connection opens the tunnel",
        "a connection arrived: opening the tunnel",
        f"idle: no traffic for 300ms; tunnel closed, port {port} stays bound",
        "stopped: no traffic for 2s (idle_stop)",
    ]
