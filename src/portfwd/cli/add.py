"""`portfwd add TARGET PORTS...`: a forward added to the daemon (and started)."""

from __future__ import annotations

import click

from portfwd.cli import bound, completion, options
from portfwd.cli.connected import DAEMON_ERRORS
from portfwd.cli.handover import hand_over
from portfwd.cli.idle_options import idle_fields, idle_options, with_idle
from portfwd.cli.run import run
from portfwd.constants import PORTFORWARD_PROTOCOL_CHOICES
from portfwd.engine.identity import port_names
from portfwd.engine.model import ForwardSnapshot, ForwardSpec
from portfwd.engine.probe_spec import DEFAULT_PROBE_INTERVAL
from portfwd.errors import InputError
from portfwd.kube.targets import parse_port_mapping


@click.command(name="add", context_settings={"allow_interspersed_args": True})
@click.option(
    "-n",
    "--namespace",
    default=None,
    shell_complete=completion.complete_namespaces,
    help="Namespace (default: the context's).",
)
@click.option(
    "--context",
    default=None,
    shell_complete=completion.complete_contexts,
    help="Context (default: the current one, pinned now).",
)
@click.option(
    "--kubeconfig",
    default=None,
    metavar="FILE",
    shell_complete=completion.complete_files,
    help="Kubeconfig file.",
)
@click.option(
    "--address", "addresses", default="localhost", show_default=True, help="Listen addresses."
)
@click.option("--name", default=None, help="A name to use in place of the id (one per forward).")
@click.option("--no-reconnect", is_flag=True, help="Fail instead of following the target.")
@click.option("--no-start", is_flag=True, help="Add it stopped.")
@click.option(
    "--spread", is_flag=True, help="Spread new connections over every Ready pod (a Service)."
)
@click.option(
    "--http-log",
    is_flag=True,
    help="Log each HTTP/1.x request (method, path, status, size, time): `portfwd logs --http`.",
)
@options.probe_options
@click.option(
    "--protocol",
    type=click.Choice(PORTFORWARD_PROTOCOL_CHOICES),
    default="auto",
    show_default=True,
    help="Port-forward wire protocol (see `portfwd --help`).",
)
@idle_options
@bound.output_options
@click.argument("target", shell_complete=completion.complete_targets)
@click.argument("ports", nargs=-1, required=True, shell_complete=completion.complete_ports)
@click.pass_context
def add_command(
    ctx: click.Context,
    namespace: str | None,
    context: str | None,
    kubeconfig: str | None,
    addresses: str,
    name: str | None,
    no_reconnect: bool,
    no_start: bool,
    spread: bool,
    http_log: bool,
    probe: str,
    probe_interval: float,
    lazy: bool,
    idle_after: float | None,
    idle_stop: float | None,
    protocol: str,
    output: str,
    ports_file: str | None,
    target: str,
    ports: tuple[str, ...],
) -> None:
    """Add a forward to the daemon (kubectl port-forward's TARGET and PORTS) and start it.

    One forward per port; with --name and several ports each is named NAME-REMOTE (NAME-LOCAL
    when two ports forward to one remote port). Prints each forward and its state. As with
    kubectl, the target must resolve and every port bind now: if one cannot start, nothing
    is added and the exit code is 1. After that the daemon follows them.
    """
    opts = options.with_globals(
        ctx, kubeconfig=kubeconfig, context=context, namespace=namespace, protocol=protocol
    )

    def body() -> int:
        specs = add_specs(
            target=target,
            ports=ports,
            addresses=addresses,
            name=name,
            reconnect=not no_reconnect,
            spread=spread,
            http_log=http_log,
            probe=probe,
            probe_interval=probe_interval,
            **opts,
        )
        specs = with_idle(specs, idle_fields(lazy, idle_after, idle_stop))
        # kubectl's way with several ports: all of them or none (exit 2/1: nothing added).
        report: list[ForwardSnapshot] = []
        code = hand_over(
            specs,
            start=not no_start,
            all_or_nothing=True,
            report=report,
            rows=output != "json",
        )
        bound.report(report, output, ports_file)
        return code

    run(body, DAEMON_ERRORS)


def add_specs(
    *,
    target: str,
    ports: tuple[str, ...],
    addresses: str,
    name: str | None,
    reconnect: bool,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    protocol: str,
    spread: bool = False,
    http_log: bool = False,
    probe: str = "",
    probe_interval: float = DEFAULT_PROBE_INTERVAL,
) -> list[ForwardSpec]:
    mappings = [parse_port_mapping(p) for p in ports]
    for m in mappings:
        if m.local_from_remote:
            raise InputError(
                f"give a local port for the named remote port {m.remote!r}"
                f" (e.g. 8443:{m.remote}, or :{m.remote} for a free one)"
            )
    return [
        ForwardSpec(
            target=target.strip(),
            remote_port=m.remote,
            local_port=m.local_port,
            namespace=namespace,
            context=context,
            kubeconfig=kubeconfig,
            addresses=tuple(a.strip() for a in addresses.split(",") if a.strip()),
            reconnect=reconnect,
            protocol=protocol,
            name=label,
            spread=spread,
            http_log=http_log,
            probe=probe,
            probe_interval=probe_interval,
        )
        for m, label in zip(mappings, port_names(name, mappings), strict=True)
    ]
