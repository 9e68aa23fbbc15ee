"""Command-line entry points. Argument parsing only: each command hands off to its module.

Imports of the heavy parts (Textual, the sandbox) happen inside the commands, so
`portfwd forward` never pays for the TUI and `portfwd --help` is instant.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from portfwd import completion
from portfwd.errors import PortfwdError
from portfwd.safetext import escape_controls

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int = 1) -> None:
    # Messages quote the cluster's and the files' own text: never let it drive the terminal.
    click.echo(f"error: {escape_controls(message)}", err=True)
    sys.exit(code)


def _run(fn: Callable[[], int]) -> None:
    """Run a command body: expected failures become one line on stderr and exit 1."""
    try:
        code = fn()
    except PortfwdError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


def _kube_options(fn: F) -> F:
    fn = click.option(
        "-n",
        "--namespace",
        default=None,
        shell_complete=completion.complete_namespaces,
        help="Namespace (default: the context's namespace).",
    )(fn)
    fn = click.option(
        "--context",
        default=None,
        shell_complete=completion.complete_contexts,
        help="Kubeconfig context (default: current-context).",
    )(fn)
    fn = click.option(
        "--kubeconfig",
        default=None,
        metavar="FILE",
        shell_complete=completion.complete_files,
        help="Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).",
    )(fn)
    return fn


def _state_option(help_text: str) -> Callable[[F], F]:
    return click.option(
        "--state",
        "state_file",
        default=None,
        metavar="FILE",
        shell_complete=completion.complete_files,
        help=help_text,
    )


DEFAULT_PING_INTERVAL = 30.0


MIN_PING_INTERVAL = 1.0  # a pong may take up to half the interval: keep that above network jitter


def _ping_interval(ctx: click.Context, param: click.Parameter, value: str) -> float:
    """0 (no pings) or a number of seconds >= MIN_PING_INTERVAL; anything else is a usage
    mistake (exit 2). A tiny interval would close every tunnel whose pong is a few ms late."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not (seconds == 0 or MIN_PING_INTERVAL <= seconds < float("inf")):  # refuses nan, inf
        raise click.BadParameter(
            f"{value!r} is not a number of seconds >= {MIN_PING_INTERVAL:g} (0 turns the pings off)"
        )
    return seconds


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """A Go duration (kubectl's flags take them) in seconds; a malformed one is a usage error."""
    if value is None:
        return None
    from portfwd.podwait import parse_duration

    try:
        return parse_duration(value)
    except PortfwdError as exc:
        raise click.BadParameter(str(exc)) from None


def _ping_option(fn: F) -> F:
    return click.option(
        "--ping-interval",
        default=str(DEFAULT_PING_INTERVAL).removesuffix(".0"),
        show_default=True,
        metavar="SECONDS",
        callback=_ping_interval,
        help="Send a WebSocket ping on every tunnel this often, so a dead connection is "
        "noticed and idle proxies keep it open; 0 disables.",
    )(fn)


# The group's options, as each command's parameter is named, and how a message shows them. An
# option written before the command means what it means after it, for every command that
# takes it; a command that does not take it refuses it (a silently ignored --kubeconfig or
# --context would talk to another cluster than the one the user named).
GLOBAL_OPTIONS = {
    "kubeconfig": "--kubeconfig",
    "context": "--context",
    "namespace": "--namespace",
    "state_file": "--state",
    "no_restore": "--no-restore",
    "ping_interval": "--ping-interval",
    "protocol": "--protocol",
    "use_daemon": "--daemon",
}


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE


def _with_globals(ctx: click.Context, **local: Any) -> dict[str, Any]:
    """A command's values for the global options it takes, merged with the ones written
    before it. One given before the command that this command does not take, or given in
    both places with different values, is a usage error (one line, exit 2)."""
    parent = ctx.parent
    merged = dict(local)
    if parent is None:
        return merged
    for name, flag in GLOBAL_OPTIONS.items():
        if not _given(parent, name):
            continue
        value = parent.params[name]
        if name not in local:
            raise click.UsageError(f"{flag} does not apply to '{ctx.command_path}'; remove it", ctx)
        if _given(ctx, name) and local[name] != value:
            raise click.UsageError(
                f"{flag} is given twice with different values ({_shown(value)} before "
                f"'{ctx.info_name}', {_shown(local[name])} after it); give it once",
                ctx,
            )
        merged[name] = value
    return merged


def _shown(value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return escape_controls(text)


def _protocol_option(fn: F) -> F:
    from portfwd.constants import PORTFORWARD_PROTOCOL_CHOICES

    return click.option(
        "--protocol",
        type=click.Choice(PORTFORWARD_PROTOCOL_CHOICES),
        default="auto",
        show_default=True,
        help="Port-forward wire protocol: auto tries SPDY over a WebSocket, then plain SPDY "
        "(as kubectl falls back), then v4.channel.k8s.io; KUBECTL_PORT_FORWARD_WEBSOCKETS=false"
        " makes auto plain SPDY only.",
    )(fn)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="portfwd", prog_name="portfwd")
@_kube_options
@_state_option("Session state file.")
@click.option("--no-restore", is_flag=True, help="Do not restart the saved session's forwards.")
@_ping_option
@_protocol_option
@click.option(
    "--daemon",
    "use_daemon",
    is_flag=True,
    envvar="PORTFWD_DAEMON",
    help="Run the forwards in the background daemon (started if none runs), so they outlive "
    "this window. A running daemon is always used. [env: PORTFWD_DAEMON=1]",
)
@click.pass_context
def cli(
    ctx: click.Context,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    state_file: str | None,
    no_restore: bool,
    ping_interval: float,
    protocol: str,
    use_daemon: bool,
) -> None:
    """portfwd: every Kubernetes port-forward you need, in one window.

    With no command, opens the dashboard: attached to the daemon when one runs (closing the
    window leaves its forwards running), else with the forwards in this process. The options
    also work before a command that takes them (`portfwd --context prod forward ...`); one a
    command does not take is refused.
    """
    if ctx.invoked_subcommand is not None:
        return

    def body() -> int:
        from portfwd.tui.run import run_tui

        return run_tui(
            kubeconfig=kubeconfig,
            context=context,
            namespace=namespace,
            state_file=Path(state_file) if state_file else None,
            restore=not no_restore,
            ping_interval=ping_interval,
            protocol=protocol,
            use_daemon=use_daemon,
        )

    _run(body)


@cli.command()
@_kube_options
@click.option(
    "--address",
    "addresses",
    default="localhost",
    show_default=True,
    help="Comma-separated local addresses to listen on (localhost = 127.0.0.1 and ::1).",
)
@click.option(
    "--no-reconnect",
    is_flag=True,
    help="Do not retry: when the pod goes away or the connection to the cluster fails, "
    "print the error and exit 1 (kubectl's behaviour).",
)
@click.option(
    "--pod-running-timeout",
    default=None,
    metavar="DURATION",
    callback=_duration,
    help="Wait up to DURATION (30s, 2m, 1m30s) for a Ready pod before giving up, as kubectl "
    "does (default: fail at once when no pod is Ready).",
)
@click.option(
    "--spread",
    is_flag=True,
    help="Spread new connections over every Ready pod behind TARGET, as its Service would "
    "(least connections); a pod turning not Ready or terminating gets no new ones.",
)
@_ping_option
@_protocol_option
@click.argument("target", shell_complete=completion.complete_targets)
@click.argument("ports", nargs=-1, required=True, shell_complete=completion.complete_ports)
@click.pass_context
def forward(
    ctx: click.Context,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    addresses: str,
    no_reconnect: bool,
    pod_running_timeout: float | None,
    spread: bool,
    ping_interval: float,
    protocol: str,
    target: str,
    ports: tuple[str, ...],
) -> None:
    """Forward local ports to TARGET, like `kubectl port-forward`, without a UI.

    TARGET is pod/NAME, svc/NAME, deploy/NAME, sts/NAME or a bare pod NAME.
    PORTS are [LOCAL:]REMOTE: `8080:80`, `80`, `:80` (free local port), `8443:https`.

    The target must resolve when the command starts. After that, portfwd follows it:
    when the pod goes away it switches to another Ready pod or waits and retries, with
    the reason on stderr (unless --no-reconnect).
    """
    opts = _with_globals(
        ctx,
        kubeconfig=kubeconfig,
        context=context,
        namespace=namespace,
        ping_interval=ping_interval,
        protocol=protocol,
    )

    def body() -> int:
        from portfwd.headless import run_forward

        if pod_running_timeout is not None:
            from portfwd.podwait import wait_for_ready_pod

            wait_for_ready_pod(
                kubeconfig=opts["kubeconfig"],
                context=opts["context"],
                namespace=opts["namespace"],
                target=target,
                ports=list(ports),
                timeout=pod_running_timeout,
            )
        return run_forward(
            **opts,
            addresses=addresses,
            target=target,
            ports=list(ports),
            reconnect=not no_reconnect,
            spread=spread,
        )

    _run(body)


# kubectl's name for it: `portfwd port-forward ...` is `portfwd forward ...`.
cli.add_command(forward, name="port-forward")


@cli.command()
@_kube_options
@_state_option("Session file to check (default: the one `portfwd` uses).")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="One line per check, or a JSON document.",
)
@click.pass_context
def doctor(
    ctx: click.Context,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    state_file: str | None,
    output: str,
) -> None:
    """Check what portfwd needs: kubeconfig, credentials, the API server, RBAC, local ports
    and files. One line per check (✓ or ✗ with the fix); exit 1 when one fails."""
    opts = _with_globals(
        ctx, kubeconfig=kubeconfig, context=context, namespace=namespace, state_file=state_file
    )

    def body() -> int:
        from portfwd.doctor import run_doctor

        state = opts.pop("state_file")
        return run_doctor(**opts, state_file=Path(state) if state else None, output=output)

    _run(body)


@cli.command("completion")
@click.argument("shell", type=click.Choice(completion.SHELLS))
@click.pass_context
def completion_command(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    \b
    bash:  portfwd completion bash > ~/.local/share/bash-completion/completions/portfwd
    zsh:   portfwd completion zsh > "${fpath[1]}/_portfwd"
    fish:  portfwd completion fish > ~/.config/fish/completions/portfwd.fish
    """
    _with_globals(ctx)
    click.echo(completion.completion_script(cli, shell), nl=False)


@cli.command()
@click.option(
    "--kubeconfig-out",
    default=None,
    metavar="FILE",
    shell_complete=completion.complete_files,
    help="Where to write the sandbox's kubeconfig (default: a file in a temporary dir).",
)
@click.option(
    "--topology",
    default=None,
    metavar="FILE",
    help="YAML topology (namespaces, workloads, services, backends); default: the demo one.",
)
@click.option("--port", default=0, show_default=True, help="API server port (0: a free one).")
@click.option(
    "--clusters",
    default=1,
    show_default=True,
    type=click.IntRange(1, 16),
    help="How many independent clusters (contexts sandbox, sandbox-2, ...; cluster i on "
    "--port + i - 1 unless 0), all in one kubeconfig.",
)
@click.pass_context
def sandbox(
    ctx: click.Context, kubeconfig_out: str | None, topology: str | None, port: int, clusters: int
) -> None:
    """Run the built-in local Kubernetes API server (no cluster needed) in the foreground."""
    _with_globals(ctx)

    def body() -> int:
        from portfwd.sandbox.main import serve

        return serve(
            kubeconfig_out=Path(kubeconfig_out) if kubeconfig_out else None,
            topology=Path(topology) if topology else None,
            port=port,
            clusters=clusters,
        )

    _run(body)


@cli.command()
@click.option("--topology", default=None, metavar="FILE", help="Sandbox topology YAML.")
@_ping_option
@_protocol_option
@click.option(
    "--chaos",
    "chaos",
    default=0.0,
    type=click.FloatRange(min=0, min_open=False),
    metavar="SECONDS",
    help="Every SECONDS, restart a demo deployment or delete a pod, to watch forwards follow "
    "their pods (0: never).",
)
@click.pass_context
def demo(
    ctx: click.Context, topology: str | None, ping_interval: float, protocol: str, chaos: float
) -> None:
    """Start the built-in sandbox cluster and open the dashboard on it."""
    opts = _with_globals(ctx, ping_interval=ping_interval, protocol=protocol)

    def body() -> int:
        from portfwd.demo import run_demo

        return run_demo(topology=Path(topology) if topology else None, chaos=chaos, **opts)

    _run(body)


@cli.group(name="daemon", invoke_without_command=True)
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
@_ping_option
@click.pass_context
def daemon(
    ctx: click.Context,
    detach: bool,
    kubeconfig: str | None,
    state_file: str | None,
    ping_interval: float,
) -> None:
    """Run the per-user background engine that dashboards and `portfwd ls/add/...` attach to.

    In the foreground by default (for systemd/launchd); --detach backgrounds it. It restores
    the saved session when it starts and saves it when it stops. One per user.
    """
    if ctx.invoked_subcommand is not None:
        given = [
            f
            for n, f in (
                ("detach", "--detach"),
                ("kubeconfig", "--kubeconfig"),
                ("state_file", "--state"),
            )
            if _given(ctx, n)
        ]
        if given:
            raise click.UsageError(
                f"{given[0]} belongs before no subcommand: 'portfwd daemon {given[0]} ...'", ctx
            )
        return
    opts = _with_globals(
        ctx, kubeconfig=kubeconfig, state_file=state_file, ping_interval=ping_interval
    )

    def body() -> int:
        from portfwd.daemon.service import run_daemon

        state = opts["state_file"]
        return run_daemon(
            kubeconfig=opts["kubeconfig"],
            state_file=Path(state) if state else None,
            ping_interval=opts["ping_interval"],
            detach=detach,
        )

    _run(body)


@daemon.command(name="stop")
def daemon_stop() -> None:
    """Stop the daemon: its session is saved (running forwards restart with it next time)."""
    from portfwd.daemon.service import stop_daemon

    _run(stop_daemon)


@daemon.command(name="status")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
def daemon_status(output: str) -> None:
    """Is it running; pid, version, forwards, clients, socket, log. Exit 3: not running."""
    from portfwd.daemon.service import daemon_status as status

    _run(lambda: status(as_json=output == "json"))


@daemon.command(name="install")
def daemon_install() -> None:
    """Write a systemd user unit (Linux) or a launchd agent (macOS) that runs the daemon."""
    from portfwd.daemon.units import install, unit_for_platform

    def body() -> int:
        for line in install(unit_for_platform()):
            click.echo(escape_controls(line))
        return 0

    _run(body)


@daemon.command(name="uninstall")
def daemon_uninstall() -> None:
    """Remove the unit `portfwd daemon install` wrote."""
    from portfwd.daemon.units import uninstall, unit_for_platform

    def body() -> int:
        for line in uninstall(unit_for_platform()):
            click.echo(escape_controls(line))
        return 0

    _run(body)


def _register_clients() -> None:
    from portfwd.control.commands import COMMANDS
    from portfwd.transfer.commands import COMMANDS as TRANSFER

    for command in (*COMMANDS, *TRANSFER):
        cli.add_command(command)


_register_clients()


def _register_profiles() -> None:
    """`portfwd profile ...` (saved sets of forwards) and `portfwd up PROFILE [GROUP...]`."""
    from portfwd.control.profiles import COMMANDS as PROFILE_COMMANDS
    from portfwd.control.up import COMMANDS as UP_COMMANDS

    for command in (*PROFILE_COMMANDS, *UP_COMMANDS):
        cli.add_command(command)


_register_profiles()

from portfwd.reach import commands as _reach  # noqa: E402  (portfwd ns, portfwd proxy)

cli.add_command(_reach.ns_command)
cli.add_command(_reach.proxy_command)


def main() -> None:
    """The console script. A usage mistake is one `error:` line (exit 2), like every failure."""
    from portfwd.limits import raise_open_file_limit

    raise_open_file_limit()
    try:
        code = cli.main(prog_name="portfwd", standalone_mode=False)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "portfwd"
        message = escape_controls(exc.format_message())
        click.echo(f"error: {message} (see '{where} --help')", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except click.Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
