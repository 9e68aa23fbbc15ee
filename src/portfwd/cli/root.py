"""`portfwd`: the root group. It names every command and where it lives (loaded when used,
see lazy.py); with no command it opens the dashboard (dashboard.py)."""

from __future__ import annotations

import sys

import click

from portfwd import version
from portfwd.cli import options
from portfwd.cli.lazy import LazyGroup, load
from portfwd.cli.run import ExitCode, error_line
from portfwd.limits import raise_open_file_limit
from portfwd.safetext import escape_controls

# Every command: its name and "module:attribute". A new command is one module and one line.
COMMANDS = {
    "forward": "portfwd.cli.forward:forward",
    "port-forward": "portfwd.cli.forward:forward",  # kubectl's name for it
    "up": "portfwd.cli.up:up_command",
    "profile": "portfwd.cli.profile:profile_group",
    "import": "portfwd.cli.transfer:import_command",
    "export": "portfwd.cli.transfer:export_command",
    "ls": "portfwd.cli.ls:ls_command",
    "add": "portfwd.cli.add:add_command",
    "start": "portfwd.cli.control:start_command",
    "stop": "portfwd.cli.control:stop_command",
    "restart": "portfwd.cli.control:restart_command",
    "rm": "portfwd.cli.control:rm_command",
    "logs": "portfwd.cli.logs:logs_command",
    "stats": "portfwd.cli.stats:stats_command",
    "daemon": "portfwd.cli.daemon:daemon",
    "doctor": "portfwd.cli.doctor:doctor",
    "sandbox": "portfwd.cli.sandbox:sandbox",
    "demo": "portfwd.cli.sandbox:demo",
    "completion": "portfwd.cli.shell:completion_command",
    "ns": "portfwd.cli.reach:ns_command",
    "proxy": "portfwd.cli.reach:proxy_command",
    "run": "portfwd.cli.run_cmd:run_command",
    "wait": "portfwd.cli.wait:wait_command",
    "mcp": "portfwd.cli.mcp:mcp_command",
}
DASHBOARD = "portfwd.cli.dashboard:open_dashboard"


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(f"portfwd, version {version()}")
    ctx.exit()


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
@options.kube_options
@options.state_option("Session state file.")
@click.option("--no-restore", is_flag=True, help="Do not restart the saved session's forwards.")
@options.ping_option()
@options.protocol_option()
@click.option(
    "--daemon",
    "use_daemon",
    is_flag=True,
    envvar="PORTFWD_DAEMON",
    help="Run the forwards in the background daemon (started if none runs), so they outlive "
    "this window. A running daemon is always used. [env: PORTFWD_DAEMON=1]",
)
@options.profiles_option
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
    profiles_file: str | None,
) -> None:
    """portfwd: every Kubernetes port-forward you need, in one window.

    With no command, opens the dashboard: attached to the daemon when one runs (closing the
    window leaves its forwards running), else with the forwards in this process. The options
    also work before a command that takes them (`portfwd --context prod forward ...`); one a
    command does not take is refused.
    """
    if ctx.invoked_subcommand is not None:
        return
    if profiles_file is not None:  # the dashboard's profiles view reads the config dir's
        raise click.UsageError("--profiles applies to up, profile and export", ctx)
    load(DASHBOARD)(
        kubeconfig=kubeconfig,
        context=context,
        namespace=namespace,
        state_file=state_file,
        no_restore=no_restore,
        ping_interval=ping_interval,
        protocol=protocol,
        use_daemon=use_daemon,
    )


def main() -> None:
    """The console script. A usage mistake is one `error:` line (exit 2), like every failure."""
    raise_open_file_limit()
    try:
        code = cli.main(prog_name="portfwd", standalone_mode=False)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "portfwd"
        message = escape_controls(exc.format_message())
        click.echo(f"error: {message} (see '{where} --help')", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        error_line(exc.format_message())
        sys.exit(exc.exit_code)
    except click.Abort:
        sys.exit(ExitCode.INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)
