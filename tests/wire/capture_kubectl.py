"""Record what kubectl puts on the wire in a plain SPDY port-forward, for the codec tests.

Run by hand (it needs kubectl); it writes `data/kubectl-spdy-<version>.bin` beside itself:
every byte kubectl sent to the sandbox's kubelet after the upgrade, for two local
connections: one sends `hello` and half-closes, one sends `bye` and closes. The codec tests
decode that file: it is the independent check that our SPDY framing (and zlib header
contexts) reads what Go's spdystream writes.

    .venv/bin/python tests/wire/capture_kubectl.py
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from portfwd.sandbox import portforward_spdy
from portfwd.sandbox.cluster import SandboxCluster

HERE = Path(__file__).resolve().parent


class _Recorder:
    """Wraps a session's byte source and keeps every byte read from the client."""

    def __init__(self, source: Any, sink: bytearray) -> None:
        self._source = source
        self._sink = sink

    async def readexactly(self, n: int) -> bytes:
        data: bytes = await self._source.readexactly(n)
        self._sink += data
        return data


def kubectl_version() -> str:
    return subprocess.run(
        ["kubectl", "version", "--client"], capture_output=True, text=True, check=True
    ).stdout


async def main(version: str) -> None:
    recorded = bytearray()
    original = portforward_spdy.SpdySession

    def recording_session(source: Any, *args: Any, **kwargs: Any) -> Any:
        return original(_Recorder(source, recorded), *args, **kwargs)

    portforward_spdy.SpdySession = recording_session  # type: ignore[misc,assignment]
    match = re.search(r"v(\d+\.\d+)", version)
    tag = match.group(1) if match else "unknown"
    async with SandboxCluster() as sb:
        env = {**os.environ, "KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}
        proc = await asyncio.create_subprocess_exec(
            *("kubectl", "--kubeconfig", str(sb.kubeconfig_path), "-n", "demo"),
            *("port-forward", "--address", "127.0.0.1", "svc/echo", ":80"),
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        assert proc.stdout is not None
        line = (await proc.stdout.readline()).decode()
        port = int(line.split(":")[1].split()[0])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello")
        writer.write_eof()
        assert await reader.read() == b"hello"
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"bye")
        assert await reader.readexactly(3) == b"bye"
        writer.close()
        await asyncio.sleep(1.5)
        proc.terminate()
        await proc.wait()
    out = HERE / "data" / f"kubectl-spdy-{tag}.bin"
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(bytes(recorded))
    print(f"wrote {len(recorded)} bytes to {out}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main(kubectl_version()))
