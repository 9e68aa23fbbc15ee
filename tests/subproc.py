"""Running a command to its end from async tests without blocking the event loop (the
sandbox serves from that same loop), bounded in time."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path


async def run(
    *cmd: str, env: Mapping[str, str] | None = None, limit: float = 120.0, cwd: Path | None = None
) -> tuple[int, str, str]:
    """Run `cmd` to its end: (exit code, stdout, stderr); killed after `limit` seconds."""
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env) if env is not None else None,
        cwd=cwd,
    )
    try:
        async with asyncio.timeout(limit):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
