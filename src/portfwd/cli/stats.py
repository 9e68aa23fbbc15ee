"""`portfwd stats [NAME...] [-o json] [--watch]`: the daemon's traffic per forward.

Every figure is the daemon's own (the same ones `--metrics` serves and the dashboard draws):
totals, the rate over the last second and the last minute, failed connections by reason, and
how long streams took to open and to bring their first byte. Named forwards also list their
open connections, each with its own figures. `--watch` prints a fresh table every interval
(cleared in place on a terminal, one block after another in a pipe). Exit codes as for every
daemon command (connected.py).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import click

from portfwd.cli import completion, options
from portfwd.cli.connected import DAEMON_ERRORS, connected
from portfwd.cli.run import ExitCode, run
from portfwd.daemon.sync_client import SyncClient
from portfwd.engine.api import find_in
from portfwd.engine.model import ConnectionInfo, ForwardSnapshot
from portfwd.humanize import human_bytes, human_duration
from portfwd.safetext import escape_controls

CLEAR = "\x1b[H\x1b[2J"


@dataclass(frozen=True)
class ConnectionRow:
    peer: str
    pod: str
    age: float  # seconds open
    bytes_in: int
    bytes_out: int
    rate_in: float
    rate_out: float
    avg_in: float
    avg_out: float
    stream_open: float | None  # seconds
    first_byte: float | None


@dataclass(frozen=True)
class Row:
    name: str
    id: str
    state: str
    connections_open: int
    connections_total: int
    bytes_in: int  # pod -> local clients
    bytes_out: int  # local clients -> pod
    rate_in: float  # bytes per second, the last second
    rate_out: float
    avg_in: float  # bytes per second, the last minute
    avg_out: float
    errors: int
    failures: dict[str, int]  # errors by reason
    open_p50: float | None  # seconds to open a stream to the pod
    open_p99: float | None
    first_byte_p50: float | None  # seconds from accepted to the pod's first byte
    first_byte_p99: float | None
    reconnects: int
    connections: list[ConnectionRow] | None = field(default=None)  # named forwards only


def rows(
    snaps: Sequence[ForwardSnapshot],
    connections: dict[str, list[ConnectionInfo]] | None = None,
    now: float | None = None,
) -> list[Row]:
    """One row per forward, with its open connections when `connections` has them."""
    now = time.time() if now is None else now
    found = []
    for snap in snaps:
        s = snap.stats
        conns = (connections or {}).get(snap.id)
        found.append(
            Row(
                name=snap.spec.name or snap.id,
                id=snap.id,
                state=snap.state.value,
                connections_open=s.connections_open,
                connections_total=s.connections_total,
                bytes_in=s.bytes_in,
                bytes_out=s.bytes_out,
                rate_in=s.rate_in,
                rate_out=s.rate_out,
                avg_in=s.avg_in,
                avg_out=s.avg_out,
                errors=s.errors,
                failures=dict(s.failures),
                open_p50=s.open_p50,
                open_p99=s.open_p99,
                first_byte_p50=s.first_byte_p50,
                first_byte_p99=s.first_byte_p99,
                reconnects=s.reconnects,
                connections=None
                if conns is None
                else [
                    ConnectionRow(
                        peer=c.peer,
                        pod=c.pod,
                        age=max(0.0, now - c.opened_at),
                        bytes_in=c.bytes_in,
                        bytes_out=c.bytes_out,
                        rate_in=c.rate_in,
                        rate_out=c.rate_out,
                        avg_in=c.avg_in,
                        avg_out=c.avg_out,
                        stream_open=c.stream_open,
                        first_byte=c.first_byte,
                    )
                    for c in conns
                ],
            )
        )
    return found


def millis(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}ms"


def pair(p50: float | None, p99: float | None) -> str:
    return "-" if p50 is None else f"{millis(p50)}/{millis(p99)}"


def failed_text(row: Row) -> str:
    """`3 (refused 2, no_pod 1)`: the count, and its reasons."""
    if not row.errors:
        return "0"
    reasons = ", ".join(f"{k} {n}" for k, n in row.failures.items())
    return f"{row.errors} ({reasons})" if reasons else str(row.errors)


def _aligned(lines: list[list[str]], indent: str = "") -> list[str]:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return [
        indent + "   ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]


def table(found: Sequence[Row]) -> str:
    if not found:
        return "no forwards (add one: portfwd add svc/NAME 8080:80)"
    header = [
        "NAME",
        "STATUS",
        "CONNS",
        "TOTAL",
        "IN",
        "OUT",
        "IN/S",
        "OUT/S",
        "IN/S 1M",
        "OUT/S 1M",
        "OPEN p50/p99",
        "TTFB p50/p99",
        "RECONN",
        "FAILED",
    ]
    lines = [header]
    for row in found:
        lines.append(
            [
                escape_controls(row.name),
                row.state,
                str(row.connections_open),
                str(row.connections_total),
                human_bytes(row.bytes_in),
                human_bytes(row.bytes_out),
                human_bytes(int(row.rate_in)),
                human_bytes(int(row.rate_out)),
                human_bytes(int(row.avg_in)),
                human_bytes(int(row.avg_out)),
                pair(row.open_p50, row.open_p99),
                pair(row.first_byte_p50, row.first_byte_p99),
                str(row.reconnects),
                failed_text(row),
            ]
        )
    out = _aligned(lines)
    for row in found:
        if row.connections is None:
            continue
        out.append("")
        name = escape_controls(row.name)
        if not row.connections:
            out.append(f"{name}: no open connections")
            continue
        out.append(f"{name}: {len(row.connections)} open connection(s)")
        conn_lines = [["FROM", "POD", "AGE", "IN", "OUT", "IN/S", "OUT/S", "OPEN", "TTFB"]]
        for c in row.connections:
            conn_lines.append(
                [
                    escape_controls(c.peer),
                    escape_controls(c.pod),
                    human_duration(c.age),
                    human_bytes(c.bytes_in),
                    human_bytes(c.bytes_out),
                    human_bytes(int(c.rate_in)),
                    human_bytes(int(c.rate_out)),
                    millis(c.stream_open),
                    millis(c.first_byte),
                ]
            )
        out += _aligned(conn_lines, "  ")
    return "\n".join(out)


def _pick(snaps: list[ForwardSnapshot], keys: Sequence[str]) -> list[ForwardSnapshot]:
    chosen = []
    for key in keys:
        try:
            chosen.append(find_in(snaps, key))
        except KeyError:
            raise KeyError(f"no forward has the name or id {escape_controls(key)!r}") from None
    return chosen if keys else snaps


@click.command(name="stats")
@click.argument("forwards", nargs=-1, shell_complete=completion.complete_daemon_forwards)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="json: one object per forward; bytes, rates in bytes per second, times in seconds.",
)
@click.option("-w", "--watch", is_flag=True, help="Print it again every interval until Ctrl-C.")
@click.option(
    "--interval",
    default="1s",
    show_default=True,
    metavar="DURATION",
    callback=options.duration,
    help="Time between two tables with --watch.",
)
@click.pass_context
def stats_command(
    ctx: click.Context,
    forwards: tuple[str, ...],
    output: str,
    watch: bool,
    interval: float | None,
) -> None:
    """Traffic of the daemon's forwards (NAME or ID..., default: all): connections, bytes
    each way, their rate over the last second and the last minute, stream-open and
    first-byte times (p50/p99), reconnects, failed connections by reason. Named forwards
    also list their open connections."""
    options.with_globals(ctx)
    seconds = interval if interval and interval > 0 else 1.0

    def body(conn: SyncClient) -> int:
        while True:
            chosen = _pick(conn.snapshot(), forwards)
            connections = {s.id: conn.open_connections(s.id) for s in chosen} if forwards else None
            found = rows(chosen, connections)
            if output == "json":
                text = json.dumps({"forwards": [asdict(r) for r in found]}, indent=None)
            else:
                text = table(found)
            if watch and output == "table" and sys.stdout.isatty():
                text = CLEAR + text
            elif watch and output == "table":
                text += "\n"
            click.echo(text)
            if not watch:
                return ExitCode.OK
            time.sleep(seconds)

    def guarded() -> int:
        try:
            return connected(body, client="stats")
        except KeyboardInterrupt:
            return ExitCode.OK if watch else ExitCode.INTERRUPTED

    run(guarded, DAEMON_ERRORS)
