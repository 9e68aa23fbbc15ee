"""`portfwd run`'s COMMAND: exec'd with its argv (never through a shell), its exit status
passed on as a shell would (128+N when signal N killed it, 127 when there is no such command,
126 when it cannot be run), SIGINT, SIGTERM and SIGHUP sent on to it.

Ctrl-C on a terminal already reaches the command: the terminal signals the whole foreground
process group, both portfwd and the command. There portfwd does not send a second SIGINT
(an interactive `psql` would cancel twice); a SIGINT from `kill` still reaches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence

from portfwd.cli.run import ExitCode
from portfwd.errors import PortfwdError
from portfwd.safetext import escape_controls

NO_SUCH_COMMAND = ExitCode.NO_SUCH_COMMAND
CANNOT_RUN = ExitCode.CANNOT_RUN
SIGNAL_BASE = 128
PASSED_ON = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class CommandError(PortfwdError):
    """The command could not be started; `code` is the shell's for that."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def exit_status(returncode: int) -> int:
    return SIGNAL_BASE - returncode if returncode < 0 else returncode


def _terminal_delivers_sigint() -> bool:
    """The terminal's Ctrl-C reaches the command by itself (we are its foreground group)."""
    try:
        return os.isatty(sys.stdin.fileno()) and os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False


async def start(argv: Sequence[str], env: Mapping[str, str]) -> asyncio.subprocess.Process:
    """The running command; CommandError when it cannot be started."""
    shown = escape_controls(argv[0])
    try:
        return await asyncio.create_subprocess_exec(*argv, env=dict(env))
    except FileNotFoundError:
        raise CommandError(f"{shown}: no such command", NO_SUCH_COMMAND) from None
    except PermissionError:
        raise CommandError(f"{shown}: permission denied", CANNOT_RUN) from None
    except OSError as exc:
        raise CommandError(f"{shown}: cannot run it: {exc.strerror or exc}", CANNOT_RUN) from None


class SignalRelay:
    """Our SIGINT, SIGTERM and SIGHUP, sent on to the command. Installed before the command
    starts, in place of the handlers that stopped the forwards (add_signal_handler replaces
    them at once), so no signal ever finds the default disposition in between: that killed
    portfwd and left the command running. One that comes before the command exists is sent
    as soon as it does."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._proc: asyncio.subprocess.Process | None = None
        self._pending: list[int] = []
        self._handled: list[int] = []
        self._skip_int = _terminal_delivers_sigint()
        self.heard = asyncio.Event()  # a signal came (passed on, or held for the command)

    def __enter__(self) -> SignalRelay:
        for sig in PASSED_ON:
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                self._loop.add_signal_handler(sig, self._pass_on, sig)
                self._handled.append(sig)
        return self

    def __exit__(self, *exc: object) -> None:
        for number in self._handled:
            self._loop.remove_signal_handler(number)

    def attach(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        pending, self._pending = self._pending, []
        for sig in pending:
            self._pass_on(sig)

    def _pass_on(self, sig: int) -> None:
        self.heard.set()
        if sig == signal.SIGINT and self._skip_int:
            return
        if self._proc is None:
            self._pending.append(sig)
            return
        with contextlib.suppress(ProcessLookupError):
            self._proc.send_signal(sig)


async def wait(proc: asyncio.subprocess.Process) -> int:
    """Its exit status (the signals are a SignalRelay's)."""
    return exit_status(await proc.wait())
