"""curl as a user runs it against the proxy: a real HTTP/SOCKS client, bounded in time, with
none of the environment's proxy settings."""

from __future__ import annotations

import asyncio
import os


async def curl(*args: str) -> tuple[int, str]:
    """(exit status, stdout and stderr together) of `curl -sS -m 20 ARGS`."""
    proc = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        "-m",
        "20",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},  # no proxy settings of ours
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")
