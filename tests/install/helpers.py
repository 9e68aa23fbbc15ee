"""Running an installed portfwd (a fresh venv's, pipx's, the single-file binary) as a user
would, without blocking the event loop the sandbox serves from."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.e2e.test_tmux import EXIT_MARK, Tmux
from tests.support.cli import run

__all__ = ["dashboard_first_paint", "echo", "forward_moves_bytes", "run"]

FORWARDING = re.compile(rb"^Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)$", re.M)


async def echo(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    got = b""
    try:
        async with asyncio.timeout(60):  # bounded: what came back by then is the answer
            writer.write(payload)
            await writer.drain()
            while len(got) < len(payload):
                chunk = await reader.read(65536)
                if not chunk:
                    break
                got += chunk
    except TimeoutError:
        pass
    finally:
        writer.close()
    return got


async def forward_moves_bytes(
    command: Sequence[str], env: Mapping[str, str] | None = None, payload_size: int = 300_000
) -> str:
    """Start `command` (a `portfwd forward ... svc/echo :80` line), send bytes through the
    port it prints, check they come back byte for byte, stop it with Ctrl-C (exit 0).
    Returns what it printed on stdout."""
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env) if env is not None else None,
    )
    assert proc.stdout is not None and proc.stderr is not None
    seen = b""
    try:
        async with asyncio.timeout(60):
            while (match := FORWARDING.search(seen)) is None:
                line = await proc.stdout.readline()
                if not line:
                    err = await proc.stderr.read()
                    raise AssertionError(f"{command[0]} ended early: {err.decode()}")
                seen += line
        payload = os.urandom(payload_size)
        assert await echo(int(match.group(1)), payload) == payload
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            rest, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        return (seen + rest).decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def dashboard_first_paint(tmux: Tmux, command: Sequence[str], config_dir: Path) -> str:
    """Open `command` (the dashboard or `demo`) in tmux with an empty session; return the
    first screen that shows the empty dashboard, then quit it with `q` (exit 0)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "state.yaml").write_text("version: 1\nforwards: []\n")
    line = " ".join(
        [
            "env -u COLUMNS -u LINES",
            f"PORTFWD_CONFIG_DIR={shlex.quote(str(config_dir))}",
            *(shlex.quote(part) for part in command),
        ]
    )
    tmux.start("paint", line)
    screen = tmux.wait_for("paint", lambda s: "No forwards yet" in s, "the first paint", 90)
    tmux.keys("paint", "q")
    tmux.wait_for("paint", lambda s: f"{EXIT_MARK}0" in s, "a clean exit")
    return screen
