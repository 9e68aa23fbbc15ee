"""A stdout nobody reads never stops the forwards (`portfwd forward | stuck-consumer`)."""

from __future__ import annotations

import asyncio
import io
import os
import threading

import pytest

from portfwd.cli.console import MAX_QUEUED, LineWriter
from portfwd.sandbox.cluster import SandboxCluster
from tests.support.cli import PORTFWD

pytestmark = pytest.mark.timeout(120)


async def test_connections_go_on_while_stdout_is_not_read(sandbox: SandboxCluster) -> None:
    read_end, write_end = os.pipe()  # a pipe nobody reads: it holds 64 KiB, then writes block
    proc = await asyncio.create_subprocess_exec(
        *PORTFWD,
        *("forward", "--kubeconfig", str(sandbox.kubeconfig_path)),
        *("--address", "127.0.0.1", "svc/echo", ":80"),
        stdout=write_end,
        stderr=asyncio.subprocess.DEVNULL,
    )
    os.close(write_end)
    try:
        first = await asyncio.wait_for(asyncio.to_thread(_read_line, read_end), 30)
        port = int(first.split(":")[1].split()[0])  # "Forwarding from 127.0.0.1:PORT -> 9000"
        # A "Handling connection" line each fills the pipe after about 2,000 connections;
        # every one must still be served.
        for i in range(3000):
            payload = b"%d" % i
            async with asyncio.timeout(10):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(payload)
                assert await reader.readexactly(len(payload)) == payload
                writer.close()
        proc.send_signal(2)
        out = await asyncio.wait_for(asyncio.to_thread(_read_all, read_end), 30)
        await asyncio.wait_for(proc.wait(), 30)
        assert out.count(f"Handling connection for {port}\n") == 3000
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        os.close(read_end)


def _read_line(fd: int) -> str:
    line = bytearray()
    while not line.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte:
            break
        line += byte
    return line.decode()


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks).decode()


class _StuckStream(io.StringIO):
    """A stream whose writes block until released (a pipe nobody reads)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.entered.set()
        self.release.wait(10)
        return super().write(text)


def test_lines_beyond_the_queue_are_counted_and_the_count_is_written() -> None:
    stream = _StuckStream()
    writer = LineWriter(stream, "test")
    writer.line("first")
    assert stream.entered.wait(10)  # the writer thread is stuck in the stream's write now
    for i in range(MAX_QUEUED + 500):
        writer.line(f"line {i}")  # never blocks
    stream.release.set()
    writer.close(timeout=10)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "first" and lines[1] == "line 0"
    assert lines[-1] == "[portfwd: 500 line(s) dropped: the output was not read]"
    assert len(lines) == 1 + MAX_QUEUED + 1
