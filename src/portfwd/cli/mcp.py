"""`portfwd mcp`: the MCP server for coding agents (portfwd/mcp/), on stdio (or streamable
HTTP on loopback with a token: `--http`).

The SDK is an optional extra (`pip install 'portfwd[mcp]'`), imported only when this command
runs; without it the command is one line saying how to get it.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from portfwd.cli import options
from portfwd.cli.run import ExitCode, run
from portfwd.errors import InputError, PortfwdError
from portfwd.eventloop import run as run_loop


@click.command(name="mcp")
@options.kube_options
@options.profiles_option
@click.option(
    "--here",
    is_flag=True,
    help="Run the forwards in this process even when a daemon runs (they stop with it).",
)
@click.option(
    "--allow-non-loopback",
    is_flag=True,
    help="Let the agent's forwards listen on other addresses than loopback.",
)
@click.option(
    "--http",
    "http",
    default=None,
    metavar="HOST:PORT",
    help="Serve streamable HTTP on this loopback address instead of stdio; clients must send "
    "'Authorization: Bearer $PORTFWD_MCP_TOKEN' (set it before starting).",
)
@options.protocol_option("Port-forward wire protocol of the forwards it adds.")
@click.pass_context
def mcp_command(
    ctx: click.Context,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    profiles_file: str | None,
    here: bool,
    allow_non_loopback: bool,
    http: str | None,
    protocol: str,
) -> None:
    """Serve the Model Context Protocol on stdin/stdout, for coding agents.

    Tools: list_forwards, add_forward, start_forward, stop_forward, remove_forward,
    forward_logs, start_profile, stop_profile, list_services, doctor; the profiles are the
    resource portfwd://profiles. The forwards run in the daemon when one runs (they outlive
    the agent), else in this process (they stop with it). --context, -n and --kubeconfig are
    the defaults of the tools that take them."""
    opts = options.with_globals(
        ctx, kubeconfig=kubeconfig, context=context, namespace=namespace, protocol=protocol
    )

    def body() -> int:
        try:
            from portfwd.mcp.server import serve
        except ImportError as exc:  # the SDK, or a package it needs, is not installed
            missing = f" ({exc.name.split('.')[0]} is missing)" if exc.name else ""
            raise PortfwdError(
                f"portfwd mcp needs the MCP Python SDK{missing}: pip install 'portfwd[mcp]'"
            ) from None
        from portfwd.mcp.http import parse_listen, token_from
        from portfwd.mcp.tools import Settings

        listen = parse_listen(http) if http is not None else None
        token = token_from(os.environ) if listen is not None else ""

        settings = Settings(
            **opts,
            profiles_file=Path(profiles_file).expanduser() if profiles_file else None,
            allow_non_loopback=allow_non_loopback,
        )
        run_loop(serve(settings, here=here, http=listen, token=token))
        return 0

    run(body, {InputError: ExitCode.USAGE})
