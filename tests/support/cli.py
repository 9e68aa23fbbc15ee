"""Running `python -m portfwd` (and other commands) the way every CLI test does: to its end,
bounded in time, from sync tests or from async ones without blocking the event loop the sandbox
serves from; and `portfwd forward` kept running while a test talks through it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from tests.support.ports import FORWARDING_RE

PORTFWD = (sys.executable, "-m", "portfwd")


class Ran(NamedTuple):
    """A finished command; unpacks as (code, out, err)."""

    code: int
    out: str
    err: str

    @property
    def out_lines(self) -> list[str]:
        return self.out.splitlines()

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()

    @property
    def raw_out(self) -> bytes:
        return self.out.encode()  # decoded strictly, so this is exactly what was written

    @property
    def raw_err(self) -> bytes:
        return self.err.encode()

    def one_error(self) -> str:
        """The single `error:` line on stderr (fails if there is anything else)."""
        assert len(self.err_lines) == 1, self.err
        assert self.err_lines[0].startswith("error: "), self.err
        return self.err_lines[0]


def with_env(**overrides: str) -> dict[str, str]:
    """This process's environment with `overrides` on top."""
    return {**os.environ, **overrides}


def private_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment whose config dir is the test's own and with no kubeconfig (nor VISUAL)
    of the developer's."""
    config = tmp_path / "config"
    config.mkdir(mode=0o700, exist_ok=True)
    env = dict(os.environ)
    env.pop("VISUAL", None)
    env.update(PORTFWD_CONFIG_DIR=str(config), KUBECONFIG=str(tmp_path / "no-kubeconfig"))
    env.update(extra)
    return env


def write_private(path: Path, text: str) -> Path:
    """A file only its owner can read (portfwd refuses others' readable config)."""
    path.write_text(text)
    path.chmod(0o600)
    return path


async def run(
    *cmd: str, env: Mapping[str, str] | None = None, limit: float = 120.0, cwd: Path | None = None
) -> Ran:
    """Run `cmd` to its end without blocking the loop; killed after `limit` seconds.
    `env`: the whole environment (None: this process's)."""
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
    return Ran(proc.returncode, out.decode(), err.decode())


async def portfwd_async(
    *args: str, env: Mapping[str, str] | None = None, limit: float = 60.0
) -> Ran:
    """`python -m portfwd ARGS` to its end, from an async test."""
    return await run(*PORTFWD, *args, env=env, limit=limit)


def portfwd(
    *args: str, env: Mapping[str, str] | None = None, stdin: str = "", timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """`python -m portfwd ARGS` to its end, from a sync test (TimeoutExpired after `timeout`)."""
    return subprocess.run(
        [*PORTFWD, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else None,
        timeout=timeout,
        check=False,
    )


async def run_cli(*args: str, limit: float = 60.0, prefix: Sequence[str] = ()) -> Ran:
    """`python -m portfwd PREFIX forward ARGS` to its end. `prefix`: options written before
    the command (the group's global options)."""
    return await portfwd_async(*prefix, "forward", *args, limit=limit)


@dataclass
class ForwardProcess:
    proc: asyncio.subprocess.Process
    forwarding: list[tuple[str, int, int]] = field(default_factory=list)  # (host, local, remote)
    stdout_lines: list[str] = field(default_factory=list)
    stderr_lines: list[str] = field(default_factory=list)  # read while it runs
    stderr_text: str = ""  # what was left on stderr when it ended
    returncode: int | None = None

    @property
    def ports(self) -> list[int]:
        """Local ports in command-line order (one per mapping)."""
        seen: list[int] = []
        for _, port, _ in self.forwarding:
            if port not in seen:
                seen.append(port)
        return seen

    async def next_line(self, limit: float = 20.0) -> str:
        assert self.proc.stdout is not None
        async with asyncio.timeout(limit):
            raw = await self.proc.stdout.readline()
        line = raw.decode().rstrip("\n")
        if line:
            self.stdout_lines.append(line)
        return line

    async def next_err_line(self, limit: float = 30.0) -> str:
        """The next stderr line while it runs ("" at the end of the stream)."""
        assert self.proc.stderr is not None
        async with asyncio.timeout(limit):
            raw = await self.proc.stderr.readline()
        line = raw.decode().rstrip("\n")
        if line:
            self.stderr_lines.append(line)
        return line

    async def err_line_matching(self, pred: Callable[[str], bool], limit: float = 30.0) -> str:
        """Read stderr until a line satisfies `pred` (fails at the end of the stream)."""
        async with asyncio.timeout(limit):
            while True:
                line = await self.next_err_line(limit)
                if pred(line):
                    return line
                if not line:
                    raise AssertionError(f"stderr ended; it said: {self.stderr_lines}")

    async def wait(self, limit: float = 30.0) -> int:
        """Wait for the process to end by itself; returns its exit code."""
        async with asyncio.timeout(limit):
            rest, err = await self.proc.communicate()
        self.stdout_lines.extend(rest.decode().splitlines())
        self.stderr_text = err.decode()
        self.returncode = self.proc.returncode
        assert self.returncode is not None
        return self.returncode


@contextlib.asynccontextmanager
async def forward_process(
    *args: str,
    expect_lines: int,
    stop_signal: int = signal.SIGINT,
    prefix: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[ForwardProcess]:
    """Start `portfwd PREFIX forward ARGS`, wait for its `Forwarding from` lines; on exit send
    a signal and collect the exit code and stderr (the process is killed if it does not end).
    Give it local port 0 (`:80`) and read the bound one from `.ports`."""
    proc = await asyncio.create_subprocess_exec(
        *PORTFWD,
        *prefix,
        "forward",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=dict(env) if env is not None else None,
    )
    fp = ForwardProcess(proc)
    try:
        while len(fp.forwarding) < expect_lines:
            line = await fp.next_line(limit=30.0)
            if not line:
                assert proc.stderr is not None
                err = (await proc.stderr.read()).decode()
                raise AssertionError(f"portfwd forward ended early: {err}")
            match = FORWARDING_RE.match(line)
            assert match, line
            host = match.group(1).strip("[]")
            fp.forwarding.append((host, int(match.group(2)), int(match.group(3))))
        yield fp
    finally:
        if fp.returncode is None:  # else the test already waited for its end (fp.wait)
            await _stop(fp, stop_signal)


async def _stop(fp: ForwardProcess, stop_signal: int) -> None:
    proc = fp.proc
    if proc.returncode is None:
        proc.send_signal(stop_signal)
    try:
        async with asyncio.timeout(15):
            rest, err = await proc.communicate()
        fp.stdout_lines.extend(rest.decode().splitlines())
        fp.stderr_text = err.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    fp.returncode = proc.returncode
