"""`portfwd start|stop|restart|rm NAME|ID...|--all`: the daemon's forwards, from a script
(exit codes: connected.py)."""

from __future__ import annotations

from collections.abc import Callable

import click

from portfwd.cli import completion, options
from portfwd.cli.connected import DAEMON_ERRORS, connected
from portfwd.cli.listing import row
from portfwd.cli.run import ExitCode, error_line, run
from portfwd.daemon.sync_client import SyncClient
from portfwd.engine.model import ForwardSnapshot, ForwardState
from portfwd.safetext import escape_controls

# What a command does to one forward: the snapshot it leaves (None: removed).
Action = Callable[[SyncClient, str], ForwardSnapshot | None]


def _act(name: str, verb: str, action: Action) -> click.Command:
    @click.command(name=name)
    @click.option("--all", "every", is_flag=True, help=f"{verb.capitalize()} every forward.")
    @click.argument("forwards", nargs=-1, shell_complete=completion.complete_daemon_forwards)
    @click.pass_context
    def command(ctx: click.Context, every: bool, forwards: tuple[str, ...]) -> None:
        options.with_globals(ctx)
        if every == bool(forwards):
            raise click.UsageError("name the forwards (NAME or ID), or give --all; not both")

        def body(conn: SyncClient) -> int:
            keys = list(forwards) or [s.id for s in conn.snapshot()]
            code = ExitCode.OK
            for key in keys:
                try:
                    snap = action(conn, key)
                except KeyError as exc:
                    error_line(str(exc.args[0]) if exc.args else key)
                    code = code or ExitCode.NOT_FOUND
                    continue
                if snap is None:
                    click.echo(f"removed {escape_controls(key)}")
                    continue
                click.echo(row(snap))
                if name != "stop" and snap.state is ForwardState.ERROR:
                    code = ExitCode.FAILED
            return code

        run(lambda: connected(body, client=name), DAEMON_ERRORS)

    command.help = f"{verb.capitalize()} forwards of the daemon, by NAME or ID (or --all)."
    return command


start_command = _act("start", "start", SyncClient.start)
stop_command = _act("stop", "stop", SyncClient.stop)
restart_command = _act("restart", "restart", SyncClient.restart)
rm_command = _act("rm", "remove", SyncClient.remove)
