"""`portfwd daemon [--detach] | stop | status | install | uninstall`: the per-user engine."""

from __future__ import annotations

from pathlib import Path

import click

from portfwd.cli import options
from portfwd.cli.reach import DEFAULT_LISTEN, listen_address
from portfwd.cli.run import ExitCode, run
from portfwd.daemon import service, units
from portfwd.daemon.companion import Companion
from portfwd.errors import InputError
from portfwd.safetext import escape_controls


@click.group(name="daemon", invoke_without_command=True)
@click.option(
    "--detach", is_flag=True, help="Start it in the background and return once it listens."
)
@click.option(
    "--kubeconfig",
    default=None,
    metavar="FILE",
    help="Default kubeconfig for forwards that name none (default: $KUBECONFIG, ~/.kube/config).",
)
@click.option("--state", "state_file", default=None, metavar="FILE", help="Session state file.")
@click.option(
    "--proxy",
    "proxy_listen",
    default=None,
    metavar="ADDR:PORT",
    help="Also run the SOCKS5/HTTP proxy of `portfwd proxy` here, on the daemon's engine "
    "(a loopback address, e.g. 127.0.0.1:1080).",
)
@click.option(
    "--proxy-pac",
    is_flag=True,
    help="The proxy also serves /proxy.pac (implies --proxy 127.0.0.1:1080 when not given).",
)
@click.option(
    "--proxy-context",
    "proxy_contexts",
    multiple=True,
    metavar="CONTEXT",
    help="Context the proxy serves; repeat it for several (default: the current one).",
)
@options.metrics_option()
@options.ping_option()
@click.pass_context
def daemon(
    ctx: click.Context,
    detach: bool,
    kubeconfig: str | None,
    state_file: str | None,
    proxy_listen: str | None,
    proxy_pac: bool,
    proxy_contexts: tuple[str, ...],
    metrics: tuple[str, int] | None,
    ping_interval: float,
) -> None:
    """Run the per-user background engine that dashboards and `portfwd ls/add/...` attach to.

    In the foreground by default (for systemd/launchd); --detach backgrounds it. It restores
    the saved session when it starts and saves it when it stops. One per user.
    """
    if ctx.invoked_subcommand is not None:
        given = [
            flag
            for name, flag in (
                ("detach", "--detach"),
                ("kubeconfig", "--kubeconfig"),
                ("state_file", "--state"),
                ("proxy_listen", "--proxy"),
                ("proxy_pac", "--proxy-pac"),
                ("proxy_contexts", "--proxy-context"),
                ("metrics", "--metrics"),
            )
            if options.given(ctx, name)
        ]
        if given:
            raise click.UsageError(
                f"{given[0]} belongs before no subcommand: 'portfwd daemon {given[0]} ...'", ctx
            )
        return
    opts = options.with_globals(
        ctx, kubeconfig=kubeconfig, state_file=state_file, ping_interval=ping_interval
    )
    state = opts["state_file"]
    if proxy_contexts and not (proxy_listen or proxy_pac):
        raise click.UsageError("--proxy-context needs --proxy ADDR:PORT", ctx)
    companions: list[Companion] = []
    args: list[str] = []
    if proxy_listen or proxy_pac:
        from portfwd.reach.daemon_proxy import DaemonProxy

        where = proxy_listen or DEFAULT_LISTEN
        host, port = _loopback(where, ctx)
        companions.append(
            DaemonProxy(
                host,
                port,
                pac=proxy_pac,
                contexts=list(proxy_contexts) or [None],
                kubeconfig=opts["kubeconfig"],
            )
        )
        args += ["--proxy", where, *(["--proxy-pac"] if proxy_pac else [])]
        for name in proxy_contexts:
            args += ["--proxy-context", name]
    if metrics is not None:
        from portfwd.metrics.companion import DaemonMetrics

        host, port = metrics
        companions.append(DaemonMetrics(host, port))
        args += ["--metrics", f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    run(
        lambda: service.run_daemon(
            kubeconfig=opts["kubeconfig"],
            state_file=Path(state) if state else None,
            ping_interval=opts["ping_interval"],
            detach=detach,
            companions=companions,
            detach_args=args,
        )
    )


def _loopback(where: str, ctx: click.Context) -> tuple[str, int]:
    """--proxy's ADDR:PORT, a loopback address (the daemon's proxy takes no password)."""
    import ipaddress

    try:
        host, port = listen_address(where)
    except InputError as exc:
        raise click.UsageError(str(exc).replace("--listen", "--proxy"), ctx) from None
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise click.UsageError(
            f"--proxy {where}: the daemon's proxy listens on a loopback address only; for "
            "another one run `portfwd proxy --allow-remote` (with a password)",
            ctx,
        )
    return host, port


@daemon.command(name="stop")
def daemon_stop() -> None:
    """Stop the daemon: its session is saved (running forwards restart with it next time)."""
    run(service.stop_daemon)


@daemon.command(name="status")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
def daemon_status(output: str) -> None:
    """Is it running; pid, version, forwards, clients, socket, log. Exit 3: not running."""

    def body() -> int:
        running = service.daemon_status(as_json=output == "json")
        return ExitCode.OK if running else ExitCode.NO_DAEMON

    run(body)


def _print(lines: list[str]) -> int:
    for line in lines:
        click.echo(escape_controls(line))
    return 0


@daemon.command(name="install")
def daemon_install() -> None:
    """Write a systemd user unit (Linux) or a launchd agent (macOS) that runs the daemon."""
    run(lambda: _print(units.install(units.unit_for_platform())))


@daemon.command(name="uninstall")
def daemon_uninstall() -> None:
    """Remove the unit `portfwd daemon install` wrote."""
    run(lambda: _print(units.uninstall(units.unit_for_platform())))
