"""kubectl's lines for the forwards a command runs in this process (`forward`, `up`).

kubectl's lines (`Forwarding from ...`, `Handling connection for ...`) go to stdout;
warnings, recoveries and connection errors to stderr. Lines are written by a thread of their
own (console.py), so a stalled terminal never holds up a forward. Log lines quote the
kubelet's and the API's words: control characters are shown escaped (also done where the
engine makes the entry: LogEntry). What is printed is decided by the line's kind and level,
never its words.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from portfwd.cli.console import LineWriter
from portfwd.engine.events import LogLine
from portfwd.engine.lazy import idle_stop
from portfwd.engine.manager import Subscription
from portfwd.engine.model import ForwardSnapshot, LogEntry, LogKind, LogLevel
from portfwd.safetext import escape_controls
from portfwd.tunnel.addresses import format_host_port

# Lines that restate why a forward is not active yet: while the first start runs they are
# held back, because a start that fails prints that reason once, as its `error:` line.
# Lines printed on stderr as they are (a warning of these kinds still says `warning:`).
_AS_IS = frozenset({LogKind.RECOVERED, LogKind.HTTP, LogKind.HEALTH})
_RESTATING = frozenset({LogKind.WAITING, LogKind.RECONNECTING, LogKind.FAILED, LogKind.GONE})


class Printer:
    """One forward's lines (or one command's, for `forward`): `out` and `err` take a line
    each and never block."""

    def __init__(self, out: Callable[[str], None], err: Callable[[str], None]) -> None:
        self.out = out
        self.err = err
        self.starting = True  # until the first start is over (see engine/launch.py)
        self._held: list[str] = []

    def started(self) -> None:
        """The first start worked: what was held back is news after all."""
        self.starting = False
        for line in self._held:
            self.err(line)
        self._held.clear()

    def forwarding(self, snap: ForwardSnapshot) -> None:
        for host, port in snap.bound:
            remote = snap.remote_port or snap.spec.remote_port  # lazy and idle: not resolved yet
            self.out(f"Forwarding from {format_host_port(host, port)} -> {remote}")

    def entry(self, entry: LogEntry) -> None:
        kind = entry.kind
        if kind is LogKind.CONNECTION:
            self.out(escape_controls(entry.message))
        elif kind in _AS_IS and entry.level < LogLevel.WARNING:  # HTTP: the request log
            self.err(escape_controls(entry.message))
        elif kind is LogKind.IDLE or (kind is LogKind.STOPPED and idle_stop(entry.message)):
            self.err(escape_controls(entry.message))  # lazy: dozing, waking, idle_stop
        elif kind is LogKind.FAILED:
            return  # the reason, printed once by the command as its error line
        elif entry.level >= LogLevel.WARNING:
            line = escape_controls(f"warning: {entry.message}")
            if self.starting and kind in _RESTATING:
                self._held.append(line)
            else:
                self.err(line)


class Lines:
    """stdout and stderr writers, and the printers of the forwards whose lines they carry:
    one for every forward (`forward`), or one per forward with its name in front (`up`)."""

    def __init__(self) -> None:
        self.out = LineWriter(sys.stdout, "stdout")
        self.err = LineWriter(sys.stderr, "stderr")
        self.shared: Printer | None = None
        self.printers: dict[str, Printer] = {}
        self.names: dict[str, str] = {}

    def one_for_all(self) -> Printer:
        self.shared = Printer(self.out.line, self.err.line)
        return self.shared

    def add(self, fid: str, name: str) -> Printer:
        """A printer whose lines carry `name` (`name: Forwarding from ...`)."""
        shown = escape_controls(name)
        self.names[fid] = name
        printer = self.printers[fid] = Printer(
            lambda line: self.out.line(f"{shown}: {line}"),
            lambda line: self.err.line(f"{shown}: {line}"),
        )
        return printer

    def route(self, fid: str | None) -> Printer | None:
        """The printer of a forward's lines (the shared one for the app-wide lines)."""
        return self.printers.get(fid, self.shared) if fid is not None else self.shared

    def failed(self, fid: str, reason: str) -> None:
        """`NAME: error: REASON` on stderr."""
        self.err.line(escape_controls(f"{self.names.get(fid, fid)}: error: {reason}"))

    def close(self) -> None:
        self.out.close()
        self.err.close()


async def print_events(events: Subscription, route: Callable[[str | None], Printer | None]) -> None:
    """Until the subscription ends: each log line through the printer `route` gives for its
    forward (None: the app-wide lines), if any (see `Lines.route`)."""
    async for event in events:
        if isinstance(event, LogLine):
            printer = route(event.forward_id)
            if printer is not None:
                printer.entry(event.entry)
