"""`portfwd up PROFILE [GROUP...]`: a profile's forwards, headless here or handed to the
running daemon."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from portfwd import completion
from portfwd.constants import PORTFORWARD_PROTOCOL_CHOICES
from portfwd.control.profiles import (
    complete_groups,
    complete_profiles,
    profiles_option,
    run_command,
)

if TYPE_CHECKING:
    from portfwd.engine.model import ForwardSpec


def _ping(ctx: click.Context, param: click.Parameter, value: str) -> float:
    from portfwd.cli import _ping_interval

    return _ping_interval(ctx, param, value)


@click.command(name="up")
@profiles_option
@click.option(
    "-n",
    "--namespace",
    default=None,
    help="Namespace where the profile names none.",
    shell_complete=completion.complete_namespaces,
)
@click.option(
    "--context",
    default=None,
    help="Context where the profile names none.",
    shell_complete=completion.complete_contexts,
)
@click.option(
    "--kubeconfig",
    default=None,
    metavar="FILE",
    help="Kubeconfig where the profile names none.",
    shell_complete=completion.complete_files,
)
@click.option(
    "--dry-run", is_flag=True, help="Resolve and print pods, ports and addresses; bind nothing."
)
@click.option(
    "--all-or-nothing",
    is_flag=True,
    help="If any forward cannot start (or later fails for good), stop them all and exit 1.",
)
@click.option(
    "--here",
    is_flag=True,
    help="Run the forwards in this process even when a portfwd daemon runs.",
)
@click.option(
    "--ping-interval",
    default="30",
    show_default=True,
    metavar="SECONDS",
    callback=lambda ctx, param, value: _ping(ctx, param, value),
    help="WebSocket ping interval on every tunnel; 0 disables (see `portfwd --help`).",
)
@click.option(
    "--protocol",
    type=click.Choice(PORTFORWARD_PROTOCOL_CHOICES),
    default="auto",
    show_default=True,
    help="Port-forward wire protocol (see `portfwd --help`).",
)
@click.argument("profile", shell_complete=complete_profiles)
@click.argument("groups", nargs=-1, shell_complete=complete_groups)
@click.pass_context
def up_command(
    ctx: click.Context,
    profiles_file: str | None,
    namespace: str | None,
    context: str | None,
    kubeconfig: str | None,
    dry_run: bool,
    all_or_nothing: bool,
    here: bool,
    ping_interval: float,
    protocol: str,
    profile: str,
    groups: tuple[str, ...],
) -> None:
    """Start profile PROFILE (or only its GROUPs) headless; kubectl's lines, each prefixed
    by its forward's name. Runs until Ctrl-C. A forward that cannot start is one line and
    makes the exit code 1; the others keep running (unless --all-or-nothing).

    When a portfwd daemon runs (or with --daemon, which starts one), the forwards are handed
    to it instead and `up` returns at once: `portfwd ls` lists them, `portfwd stop` stops
    them. Forwards the daemon already has (by name) are left as they are. --here runs them
    in this process all the same."""
    from portfwd.cli import _with_globals

    opts = _with_globals(
        ctx,
        kubeconfig=kubeconfig,
        context=context,
        namespace=namespace,
        ping_interval=ping_interval,
        protocol=protocol,
        use_daemon=False,  # only before `up`: `portfwd --daemon up ...` (or PORTFWD_DAEMON=1)
    )
    start_daemon = bool(
        opts.pop("use_daemon") or (ctx.parent and ctx.parent.params.get("use_daemon"))
    )
    if here and start_daemon:
        raise click.UsageError("--here and --daemon contradict each other; give one", ctx)

    def body() -> int:
        from portfwd.headless_up import run_up

        return run_up(
            profiles_file=Path(profiles_file).expanduser() if profiles_file else None,
            profile=profile,
            groups=list(groups),
            dry_run=dry_run,
            all_or_nothing=all_or_nothing,
            hand_over=None
            if here
            else lambda specs: _up_in_daemon(
                specs,
                start=start_daemon,
                all_or_nothing=all_or_nothing,
                kubeconfig=opts["kubeconfig"],
                ping_interval=opts["ping_interval"],
            ),
            **opts,
        )

    run_command(body)


def _up_in_daemon(
    specs: list[ForwardSpec],
    *,
    start: bool,
    all_or_nothing: bool,
    kubeconfig: str | None,
    ping_interval: float,
) -> int | None:
    """The profile's forwards handed to the running daemon (one started first with
    --daemon); None when none runs, to run them here."""
    from portfwd.control.commands import add_to_daemon
    from portfwd.daemon.replies import NotRunning
    from portfwd.daemon.sync_client import SyncClient

    try:
        conn = SyncClient.connect(client="up")
    except NotRunning:
        if not start:
            return None
        from portfwd.daemon.service import ensure_started

        ensure_started(kubeconfig=kubeconfig, state_file=None, ping_interval=ping_interval)
        conn = SyncClient.connect(client="up")
    try:
        pid = conn.server.get("pid", "?")
        click.echo(f"handing {len(specs)} forwards to the portfwd daemon (pid {pid})", err=True)
        code = add_to_daemon(
            specs, client="up", keep_existing=True, all_or_nothing=all_or_nothing, conn=conn
        )
    finally:
        conn.close()
    click.echo(
        "they run in the daemon: `portfwd ls` lists them, `portfwd stop NAME` stops one", err=True
    )
    return code


COMMANDS = [up_command]
