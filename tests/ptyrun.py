"""A command on a pseudo-terminal, for tests that assert the bytes a terminal would receive.

The child gets a pty as stdin, stdout and stderr (a session leader with it as its controlling
terminal, `TERM=xterm-256color`, a fixed size). Reads are blocking with a deadline: call them
through `asyncio.to_thread` when the test's event loop serves something (the sandbox).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType


def _take_terminal() -> None:
    """In the child, after setsid: make the pty its controlling terminal (so Ctrl-C typed on
    it is a SIGINT, as in a real terminal)."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyProcess:
    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cols: int = 200,
        rows: int = 50,
    ) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.master = master
        self.output = b""
        self.eof = False
        try:
            self.proc = subprocess.Popen(
                list(argv),
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env={**env, "TERM": "xterm-256color", "COLUMNS": str(cols), "LINES": str(rows)},
                start_new_session=True,
                preexec_fn=_take_terminal,
                close_fds=True,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)

    def __enter__(self) -> PtyProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _read_some(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every writer of the pty is gone
            data = b""
        if data:
            self.output += data
        else:
            self.eof = True

    def read_until(
        self, done: Callable[[bytes], bool], limit: float = 30.0, what: str = ""
    ) -> bytes:
        """Read until `done(everything so far)`; fails after `limit` seconds or at EOF."""
        deadline = time.monotonic() + limit
        while not done(self.output):
            if self.eof:
                raise AssertionError(f"the program ended before {what or done}: {self.output!r}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"timed out waiting for {what or done}: {self.output[-3000:]!r}"
                )
            self._read_some(min(left, 0.2))
        return self.output

    def read_to_end(self, limit: float = 30.0) -> bytes:
        """Everything until the program closes the terminal (it exits)."""
        deadline = time.monotonic() + limit
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"the program did not end: {self.output[-3000:]!r}")
            self._read_some(min(left, 0.2))
        self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        return self.output

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        with contextlib.suppress(OSError):
            os.close(self.master)
