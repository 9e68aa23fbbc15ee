"""`portfwd doctor`: is everything portfwd needs there and allowed?"""

from __future__ import annotations

from pathlib import Path

import click

from portfwd import doctor as checks
from portfwd.cli import options
from portfwd.cli.run import run


@click.command()
@options.kube_options
@options.state_option("Session file to check (default: the one `portfwd` uses).")
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
    opts = options.with_globals(
        ctx, kubeconfig=kubeconfig, context=context, namespace=namespace, state_file=state_file
    )
    state = opts.pop("state_file")
    run(lambda: checks.run_doctor(**opts, state_file=Path(state) if state else None, output=output))
