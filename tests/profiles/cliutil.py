"""Running `python -m portfwd ...` for the profile tests, with a private config dir."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path


def private_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    config = tmp_path / "config"
    config.mkdir(mode=0o700, exist_ok=True)
    env = dict(os.environ)
    env.pop("VISUAL", None)
    env.update(PORTFWD_CONFIG_DIR=str(config), KUBECONFIG=str(tmp_path / "no-kubeconfig"))
    env.update(extra)
    return env


def portfwd(
    *args: str, env: dict[str, str], stdin: str = "", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portfwd", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


async def portfwd_async(*args: str, env: dict[str, str], limit: float = 60) -> tuple[int, str, str]:
    """To its end, without blocking the loop the sandbox serves from."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "portfwd",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
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


def write_private(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path
