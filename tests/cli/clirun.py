"""Running the real `portfwd forward` as a subprocess, without blocking the test's event loop
(the sandbox serves from that same loop)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from tests.subproc import run

FORWARDING_RE = re.compile(r"^Forwarding from (\S+):(\d+) -> (\d+)$")


async def run_cli(
    *args: str, limit: float = 60.0, prefix: Sequence[str] = ()
) -> tuple[int, str, str]:
    """Run `python -m portfwd PREFIX forward ARGS` to its end: (exit code, stdout, stderr).
    `prefix`: options written before the command (the group's global options)."""
    return await run(sys.executable, "-m", "portfwd", *prefix, "forward", *args, limit=limit)


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
    *args: str, expect_lines: int, stop_signal: int = signal.SIGINT
) -> AsyncIterator[ForwardProcess]:
    """Start `portfwd forward ARGS`, wait for its `Forwarding from` lines; on exit send a signal
    and collect the exit code and stderr (the process is killed if it does not end)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "portfwd",
        "forward",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
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
