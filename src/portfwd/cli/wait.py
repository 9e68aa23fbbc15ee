"""`portfwd wait NAME|ID... [--timeout D] [--for ready|active] [-o json]`: until the daemon's
forwards are ready, for scripts that manage the daemon themselves.

Exit codes: 0 every forward is ready (each printed as `add` prints it, or the JSON of
bound.py); 124 one is not in time, or failed for good (one line naming it and why); 3 no
daemon; 4 no forward has that name or id.
"""

from __future__ import annotations

import click

from portfwd.cli import completion, options
from portfwd.cli.bound import dumps
from portfwd.cli.connected import DAEMON_ERRORS
from portfwd.cli.listing import row
from portfwd.cli.ready import NotReady, Until, wait_ready
from portfwd.cli.run import ExitCode, run
from portfwd.daemon.client import RemoteEngine
from portfwd.engine.api import find
from portfwd.eventloop import run as run_loop
from portfwd.safetext import escape_controls


@click.command(name="wait")
@click.option(
    "--timeout",
    default="60s",
    show_default=True,
    metavar="DURATION",
    callback=options.timeout,
    help="Give up after DURATION (exit 124); 0 waits as long as it takes.",
)
@click.option(
    "--for",
    "until",
    type=click.Choice([u.value for u in Until]),
    default=Until.READY.value,
    show_default=True,
    help="ready: accepts connections (listener bound, tunnel verified; a lazy forward: "
    "idle); active: its state is active (for a lazy one: its tunnel is open).",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="json: what is bound, as `add -o json` prints it.",
)
@click.argument(
    "forwards", nargs=-1, required=True, shell_complete=completion.complete_daemon_forwards
)
@click.pass_context
def wait_command(
    ctx: click.Context, timeout: float | None, until: str, output: str, forwards: tuple[str, ...]
) -> None:
    """Wait until the daemon's forwards NAME|ID... are ready."""
    options.with_globals(ctx)

    async def waited() -> int:
        engine = await RemoteEngine.attach(client="wait", logs=0)
        try:
            ids = [_find(engine, key) for key in forwards]
            snaps = await wait_ready(engine, ids, within=timeout, until=Until(until))
        finally:
            await engine.shutdown()
        if output == "json":
            click.echo(dumps(snaps))
        else:
            for snap in snaps:
                click.echo(row(snap))
        return ExitCode.OK

    run(lambda: run_loop(waited()), {**DAEMON_ERRORS, NotReady: ExitCode.NOT_READY})


def _find(engine: RemoteEngine, key: str) -> str:
    try:
        return find(engine, key).id
    except KeyError:
        shown = escape_controls(key)
        raise KeyError(
            f"no forward has the name or id {shown!r}; `portfwd ls` lists them"
        ) from None
