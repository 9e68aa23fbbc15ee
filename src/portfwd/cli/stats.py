"""`portfwd stats [NAME...] [-o json] [--watch]`: the daemon's traffic per forward.

Totals come from the daemon's counters (the same ones `--metrics` serves); a rate is the
difference between two readings, so a single `stats` reads twice, `--interval` apart, and
`--watch` prints a fresh table every interval (cleared in place on a terminal, one block after
another in a pipe). Exit codes as for every daemon command (connected.py).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import click

from portfwd.cli import completion, options
from portfwd.cli.connected import DAEMON_ERRORS, connected
from portfwd.cli.run import ExitCode, run
from portfwd.daemon.sync_client import SyncClient
from portfwd.engine.model import ForwardSnapshot
from portfwd.humanize import human_bytes
from portfwd.safetext import escape_controls

CLEAR = "\x1b[H\x1b[2J"


@dataclass(frozen=True)
class Row:
    name: str
    id: str
    state: str
    connections_open: int
    connections_total: int
    bytes_in: int  # pod -> local clients
    bytes_out: int  # local clients -> pod
    rate_in: float  # bytes per second over the last interval
    rate_out: float
    errors: int
    reconnects: int


def rows(
    before: Sequence[ForwardSnapshot], after: Sequence[ForwardSnapshot], seconds: float
) -> list[Row]:
    """One row per forward of `after`; a forward added between the readings has no rate yet,
    and one whose counters went back (removed and added again) starts over."""
    earlier = {s.id: s.stats for s in before}
    found = []
    for snap in after:
        stats = snap.stats
        old = earlier.get(snap.id)
        rate_in = rate_out = 0.0
        if old is not None and seconds > 0:
            rate_in = max(0, stats.bytes_in - old.bytes_in) / seconds
            rate_out = max(0, stats.bytes_out - old.bytes_out) / seconds
        found.append(
            Row(
                name=snap.spec.name or snap.id,
                id=snap.id,
                state=snap.state.value,
                connections_open=stats.connections_open,
                connections_total=stats.connections_total,
                bytes_in=stats.bytes_in,
                bytes_out=stats.bytes_out,
                rate_in=rate_in,
                rate_out=rate_out,
                errors=stats.errors,
                reconnects=stats.reconnects,
            )
        )
    return found


def table(found: Sequence[Row]) -> str:
    if not found:
        return "no forwards (add one: portfwd add svc/NAME 8080:80)"
    header = ["NAME", "STATUS", "CONNS", "TOTAL", "IN", "OUT", "IN/S", "OUT/S", "ERRORS", "RECONN"]
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
                str(row.errors),
                str(row.reconnects),
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "   ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _pick(snaps: list[ForwardSnapshot], keys: Sequence[str]) -> list[ForwardSnapshot]:
    if not keys:
        return snaps
    chosen = []
    for key in keys:
        match = [s for s in snaps if s.id == key] or [s for s in snaps if s.spec.name == key]
        if not match:
            raise KeyError(f"no forward has the name or id {escape_controls(key)!r}")
        chosen.append(match[0])
    return chosen


@click.command(name="stats")
@click.argument("forwards", nargs=-1, shell_complete=completion.complete_daemon_forwards)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="json: one object per forward, byte counts and rates in bytes (per second).",
)
@click.option("-w", "--watch", is_flag=True, help="Print it again every interval until Ctrl-C.")
@click.option(
    "--interval",
    default="1s",
    show_default=True,
    metavar="DURATION",
    callback=options.duration,
    help="Time between the two readings a rate is measured over.",
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
    each way and their rate, failed connections, reconnects."""
    options.with_globals(ctx)
    seconds = interval if interval and interval > 0 else 1.0

    def body(conn: SyncClient) -> int:
        before = _pick(conn.snapshot(), forwards)
        taken = time.monotonic()
        while True:
            time.sleep(seconds)
            after = _pick(conn.snapshot(), forwards)
            now = time.monotonic()
            found = rows(before, after, now - taken)
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
            before, taken = after, now

    def guarded() -> int:
        try:
            return connected(body, client="stats")
        except KeyboardInterrupt:
            return ExitCode.OK if watch else ExitCode.INTERRUPTED

    run(guarded, DAEMON_ERRORS)
