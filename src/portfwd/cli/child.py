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


async def wait(proc: asyncio.subprocess.Process) -> int:
    """Its exit status, with our signals passed on to it until it ends."""
    loop = asyncio.get_running_loop()
    handled: list[int] = []
    skip_int = _terminal_delivers_sigint()

    def pass_on(sig: int) -> None:
        if sig == signal.SIGINT and skip_int:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)

    for sig in PASSED_ON:
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(sig, pass_on, sig)
            handled.append(sig)
    try:
        return exit_status(await proc.wait())
    finally:
        for number in handled:
            loop.remove_signal_handler(number)
