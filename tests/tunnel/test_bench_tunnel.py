"""bench/tunnel.py (and bench/delayproxy.py under it) in a tiny mode: the bench runs to its
table; the delaying proxy ends a direction whose other side is gone without an error."""

from __future__ import annotations

import asyncio
import errno
import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import delayproxy  # noqa: E402  (a bench script, not a package)

pytestmark = pytest.mark.timeout(240)


class _GoneWriter:
    """A StreamWriter whose socket is no longer connected (shutdown gives ENOTCONN)."""

    def __init__(self) -> None:
        self.closed = False

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")

    def write(self, data: bytes) -> None:
        pass

    async def drain(self) -> None:
        pass


async def test_the_delay_proxy_ends_quietly_when_the_other_side_is_gone() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"last bytes")
    reader.feed_eof()
    await asyncio.wait_for(delayproxy._pipe(reader, _GoneWriter(), 0.001), 10)  # type: ignore[arg-type]


async def test_the_tunnel_bench_runs_in_a_tiny_mode() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BENCH / "tunnel.py"),
        *("--mb", "2", "--connections", "6", "--rounds", "2", "--concurrent", "5"),
        *("--halfclose", "5", "--settle", "0", "--only", "portfwd", "--protocols", "auto,v4"),
        *("--rtt", "4", "--sandbox-loop", "uvloop"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 200)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text, errors = out.decode(), err.decode()
    assert proc.returncode == 0, errors
    assert "Traceback" not in errors and "Errno" not in errors, errors
    rows = [
        line
        for line in text.splitlines()
        if re.match(r"\s+portfwd --protocol \S+\s+\d", line)  # not the notes under it
    ]
    assert [row.split()[2] for row in rows] == ["auto", "v4"], text
    for row in rows:
        # p50, p99, CPU per connection (the forwarder's, the sandbox's), MB/s, cpu/GiB, RSS,
        # then "conc ok" and "half ok": every echo intact
        fields = row.split()[3:]
        assert len(fields) == 12, row  # the sandbox's CPU column among them
        assert float(fields[4]) > 0, row
        assert fields[7] == "5" and fields[9] == "5", row
