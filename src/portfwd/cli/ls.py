"""`portfwd ls`: the daemon's forwards (over the blocking client: `ls` is typed often)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from portfwd.cli import options
from portfwd.cli.connected import DAEMON_ERRORS, connected
from portfwd.cli.listing import OUTPUTS, render
from portfwd.cli.run import ExitCode, run
from portfwd.daemon.sync_client import SyncClient
from portfwd.safetext import escape_controls

if TYPE_CHECKING:
    from portfwd.engine.model import ForwardSnapshot


@click.command(name="ls")
@click.option(
    "-o",
    "--output",
    type=click.Choice(OUTPUTS),
    default="table",
    show_default=True,
    help="wide adds id, pod, bytes, reconnects and uptime; json/yaml are the full records.",
)
@click.pass_context
def ls_command(ctx: click.Context, output: str) -> None:
    """List the daemon's forwards."""
    options.with_globals(ctx)

    def body() -> int:
        def listing(conn: SyncClient) -> tuple[list[str], list[ForwardSnapshot]]:
            return list(conn.server.get("warnings") or []), conn.snapshot()

        warnings, snaps = connected(listing, client="ls")
        for warning in warnings:  # what the daemon's session load left out, and why
            click.echo(f"warning: {escape_controls(str(warning))}", err=True)
        click.echo(render(snaps, output))
        return ExitCode.OK

    run(body, DAEMON_ERRORS)
