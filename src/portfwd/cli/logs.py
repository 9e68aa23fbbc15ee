"""`portfwd logs [FORWARD] [-f] [--tail N]`: a forward's log from the daemon (no FORWARD:
every forward's, and the daemon's own lines); `-f` follows the daemon's event stream."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

import click

from portfwd.cli import completion, options
from portfwd.cli.connected import DAEMON_ERRORS, connected
from portfwd.cli.run import ExitCode, error_line, run
from portfwd.daemon.client import RemoteEngine
from portfwd.daemon.ops import MAX_LOG_LINES
from portfwd.daemon.sync_client import SyncClient
from portfwd.engine.events import ForwardAdded, ForwardChanged, ForwardRemoved, LogLine
from portfwd.engine.model import ForwardSnapshot, LogEntry, LogKind
from portfwd.eventloop import run as run_loop
from portfwd.safetext import escape_controls


@click.command(name="logs")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl-C ends).")
@click.option(
    "--tail",
    default=100,
    show_default=True,
    type=click.IntRange(0, 1000),
    help="How many recent lines to print first.",
)
@click.option(
    "--http",
    "http_only",
    is_flag=True,
    help="Only the HTTP request log (forwards added with --http-log): one line per request.",
)
@click.argument("forward", required=False, shell_complete=completion.complete_daemon_forwards)
@click.pass_context
def logs_command(
    ctx: click.Context, follow: bool, tail: int, http_only: bool, forward: str | None
) -> None:
    """Print a forward's log (no FORWARD: every forward's, and the daemon's own lines)."""
    options.with_globals(ctx)
    shown = _Filter(tail, http_only)
    if follow:
        run(lambda: run_loop(_follow(forward, shown)), DAEMON_ERRORS)
    run(lambda: connected(lambda conn: _logs(conn, forward, shown), client="logs"), DAEMON_ERRORS)


class _Filter:
    """Which lines are printed: all, or the HTTP request log only (then the last `tail` of
    those, out of the longest history the daemon keeps)."""

    def __init__(self, tail: int, http_only: bool) -> None:
        self.tail = tail
        self.http_only = http_only
        self.fetch = MAX_LOG_LINES if http_only else tail

    def __call__(self, entry: LogEntry) -> bool:
        return not self.http_only or entry.kind is LogKind.HTTP


def _line(entry: LogEntry, who: str | None) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(entry.ts))
    prefix = f"{who}: " if who is not None else ""
    return escape_controls(f"{stamp} {entry.level.name:<7} {prefix}{entry.message}")


class _Names:
    """Who a line is about, as `logs` prints it: the forward's name (or id), `portfwd` for
    the daemon's own lines, nothing when one forward was asked for."""

    def __init__(self, snaps: list[ForwardSnapshot], forward: str | None) -> None:
        self.snaps = {s.id: s for s in snaps}
        self.forward = forward
        self.fid: str | None = None
        if forward is not None:
            match = [s for s in snaps if s.id == forward] or [
                s for s in snaps if s.spec.name == forward
            ]
            if not match:
                raise KeyError(
                    f"no forward has the name or id {forward!r}; `portfwd ls` lists them"
                )
            self.fid = match[0].id

    def __call__(self, key: str | None) -> str | None:
        if self.forward is not None:
            return None
        if key is None:
            return "portfwd"
        snap = self.snaps.get(key)
        return (snap.spec.name or snap.id) if snap is not None else key


def _print_last(merged: list[tuple[str | None, LogEntry]], names: _Names, shown: _Filter) -> None:
    merged = [item for item in merged if shown(item[1])]
    merged.sort(key=lambda item: item[1].ts)  # stable: each forward's order is kept
    tail = shown.tail
    for key, entry in merged[len(merged) - tail :] if tail else []:
        click.echo(_line(entry, names(key)))


def _logs(conn: SyncClient, forward: str | None, shown: _Filter) -> int:
    names = _Names(conn.snapshot(), forward)
    keys = [names.fid] if forward is not None else [None, *names.snaps]
    merged = [(key, entry) for key in keys for entry in conn.logs(key, shown.fetch)]
    _print_last(merged, names, shown)
    return ExitCode.OK


async def _follow(forward: str | None, shown: _Filter) -> int:
    """`logs -f`: the history, then live lines from the daemon's event stream (no gap: the
    history comes with the subscription)."""
    engine = await RemoteEngine.attach(client="logs", logs=shown.fetch)
    events = engine.subscribe()
    try:
        names = _Names(engine.snapshot(), forward)
        keys = [names.fid] if forward is not None else [None, *names.snaps]
        _print_last([(key, entry) for key in keys for entry in engine.logs(key)], names, shown)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, stop.set)
        stopper = asyncio.ensure_future(stop.wait())
        stream = events.__aiter__()
        try:
            while True:
                getter = asyncio.ensure_future(stream.__anext__())
                done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if stopper in done:
                    getter.cancel()
                    await asyncio.gather(getter, return_exceptions=True)
                    return ExitCode.OK
                try:
                    event = getter.result()
                except StopAsyncIteration:
                    error_line(f"lost the portfwd daemon: {engine.lost}")
                    return ExitCode.FAILED
                if isinstance(event, ForwardAdded | ForwardChanged):
                    names.snaps[event.snapshot.id] = event.snapshot
                elif isinstance(event, ForwardRemoved) and event.forward_id == names.fid:
                    click.echo(f"{escape_controls(forward or '')} was removed")
                    return ExitCode.OK
                elif (
                    isinstance(event, LogLine)
                    and (forward is None or event.forward_id == names.fid)
                    and shown(event.entry)
                ):
                    click.echo(_line(event.entry, names(event.forward_id)))
        finally:
            stopper.cancel()
            await asyncio.gather(stopper, return_exceptions=True)
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)
    finally:
        events.close()
        await engine.shutdown()
