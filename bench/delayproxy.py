"""A TCP proxy that delays every byte by a fixed time each way: a remote API server on loopback.

On loopback the API server answers in microseconds, which hides what a round trip costs a
port-forward client (a real cluster is often 1-50 ms away). Run between a forwarder and the
sandbox, every chunk is held `rtt/2` ms in each direction (order kept, bounded queues):

    python bench/delayproxy.py UPSTREAM_HOST UPSTREAM_PORT RTT_MS    # prints its port

`kubeconfig_via(src, dst, port)` writes a kubeconfig whose clusters go through it (the TLS
name checked stays the original server's).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

QUEUE = 256  # chunks in flight per direction before the reader waits


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE)

    async def feed() -> None:
        while data := await reader.read(65536):
            await queue.put((loop.time() + delay, data))
        await queue.put((loop.time() + delay, b""))

    feeder = asyncio.create_task(feed())
    try:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                # The other side may be gone already (ENOTCONN, errno 107, is not a
                # ConnectionError): nothing left to tell it.
                with contextlib.suppress(OSError):
                    if writer.can_write_eof():
                        writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
    except OSError:  # ConnectionError, and the socket errors that are not
        pass
    finally:
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)


async def serve(upstream_host: str, upstream_port: int, rtt_ms: float) -> None:
    delay = rtt_ms / 2000

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(upstream_host, upstream_port)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer, delay), _pipe(up_reader, writer, delay))
        except asyncio.CancelledError:
            # Shutting down. Python 3.11's start_server asks a finished handler for its
            # exception, which a cancelled task raises, printing a traceback: end normally.
            pass
        finally:
            writer.close()
            up_writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def kubeconfig_via(src: Path, dst: Path, port: int) -> Path:
    config: dict[str, Any] = yaml.safe_load(src.read_text())
    for entry in config.get("clusters") or []:
        cluster = entry["cluster"]
        url = urlsplit(cluster["server"])
        host = url.hostname or "127.0.0.1"
        if host != "127.0.0.1" and "tls-server-name" not in cluster:
            cluster["tls-server-name"] = host
        cluster["server"] = urlunsplit(url._replace(netloc=f"127.0.0.1:{port}"))
    dst.write_text(yaml.safe_dump(config, sort_keys=False))
    dst.chmod(0o600)
    return dst


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
