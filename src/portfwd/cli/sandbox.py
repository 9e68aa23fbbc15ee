"""`portfwd sandbox` (the built-in API server) and `portfwd demo` (it and the dashboard)."""

from __future__ import annotations

from pathlib import Path

import click

from portfwd import demo as demo_run
from portfwd.cli import completion, options
from portfwd.cli.run import run
from portfwd.sandbox import main as sandbox_main


@click.command()
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
    options.with_globals(ctx)
    run(
        lambda: sandbox_main.serve(
            kubeconfig_out=Path(kubeconfig_out) if kubeconfig_out else None,
            topology=Path(topology) if topology else None,
            port=port,
            clusters=clusters,
        )
    )


@click.command()
@click.option("--topology", default=None, metavar="FILE", help="Sandbox topology YAML.")
@options.ping_option()
@options.protocol_option()
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
    opts = options.with_globals(ctx, ping_interval=ping_interval, protocol=protocol)
    run(
        lambda: demo_run.run_demo(
            topology=Path(topology) if topology else None, chaos=chaos, **opts
        )
    )
