"""How every command ends: one runner, one set of exit codes.

A command's body returns an exit code or raises. Expected failures (`PortfwdError` and the
ones a command group names) become ONE `error:` line on stderr, control characters escaped
(the messages quote the cluster's and the files' own text), and the code the README
documents for them; never a traceback.
"""

from __future__ import annotations

import contextlib
import enum
import os
import sys
from collections.abc import Callable, Mapping
from typing import NoReturn

import click

from portfwd.errors import PortfwdError
from portfwd.safetext import escape_controls


class ExitCode(enum.IntEnum):
    """The documented exit codes (README: Usage, the daemon's clients, import/export)."""

    OK = 0
    FAILED = 1  # tried and failed (a forward could not start, a check failed, entries skipped)
    USAGE = 2  # bad input: usage, a bad target or port, an unreadable file; nothing changed
    NO_DAEMON = 3  # no daemon runs (`portfwd daemon status`: not running, as LSB says)
    NOT_FOUND = 4  # no forward has that name or id
    NOT_READY = 124  # `run`/`wait`: a forward did not get ready (in --timeout, or failed)
    FORWARD_LOST = 125  # `run`: a forward failed for good while COMMAND ran
    CANNOT_RUN = 126  # `run`: COMMAND exists but cannot be run (as a shell says)
    NO_SUCH_COMMAND = 127  # `run`: COMMAND does not exist (as a shell says)
    INTERRUPTED = 130  # Ctrl-C


class Exit(Exception):
    """End the command with this code; its message, if any, was printed already."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def error_line(message: str) -> None:
    """One `error:` line on stderr, control characters escaped."""
    click.echo(f"error: {escape_controls(message)}", err=True)


def fail(message: str, code: ExitCode = ExitCode.FAILED) -> Exit:
    """Print the error line; the Exit to raise."""
    error_line(message)
    return Exit(code)


ErrorCodes = Mapping[type[BaseException], ExitCode]


def run(body: Callable[[], int], codes: ErrorCodes | None = None) -> NoReturn:
    """Run a command body and exit with its code. `codes`: exceptions of the command group's
    own (checked in order, before PortfwdError's FAILED) and the code each one means."""
    try:
        code = body()
    except Exit as exc:
        code = exc.code
    except KeyboardInterrupt:
        code = ExitCode.INTERRUPTED
    except BrokenPipeError:  # `portfwd logs -f | head`: the reader is done, so are we
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = ExitCode.OK
    except Exception as exc:
        code = _expected(exc, codes or {})
    sys.exit(int(code))


def _expected(exc: Exception, codes: ErrorCodes) -> ExitCode:
    for kind, code in codes.items():
        if isinstance(exc, kind):
            if isinstance(exc, KeyError):  # its message is its first argument, unquoted
                error_line(str(exc.args[0]) if exc.args else "no such forward")
            else:
                error_line(str(exc))
            return code
    if isinstance(exc, PortfwdError):
        error_line(str(exc))
        return ExitCode.FAILED
    raise exc
