"""`portfwd forward` (and `port-forward`, kubectl's name): kubectl port-forward's command line
and output, on portfwd's engine.

Every argument is parsed into a ForwardSpec (one per port mapping) before anything starts; a
typo costs one line. The engine then binds each local port before it asks the cluster
anything, so a port in use costs one line too, and resolves the target; the start policy
(engine/launch.py) and the printing (here.py) are shared with `portfwd up`. Output follows
kubectl:

    Forwarding from 127.0.0.1:8080 -> 80
    Forwarding from [::1]:8080 -> 80
    Handling connection for 8080

Connection failures (the kubelet's text) and listener warnings go to stderr. Ctrl-C or SIGTERM
stops everything and exits 0. Once every forward is active, reconnect is switched on (unless
--no-reconnect) and the engine's `reconnecting (...)` warnings and `active again` lines go to
stderr; a forward that fails for good ends the command with its reason (exit 1).
"""

from __future__ import annotations

from typing import Any

import click

from portfwd.cli import completion, options
from portfwd.cli.here import run_here
from portfwd.cli.idle_options import idle_fields, idle_options, with_idle
from portfwd.cli.podwait import wait_for_ready_pod
from portfwd.cli.run import run
from portfwd.engine.model import ForwardSpec
from portfwd.engine.probe_spec import DEFAULT_PROBE_INTERVAL
from portfwd.errors import InputError
from portfwd.eventloop import run as run_loop
from portfwd.kube.targets import parse_port_mapping


@click.command()
@options.kube_options
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
    callback=options.duration,
    help="Wait up to DURATION (30s, 2m, 1m30s) for a Ready pod before giving up, as kubectl "
    "does (default: fail at once when no pod is Ready).",
)
@click.option(
    "--spread",
    is_flag=True,
    help="Spread new connections over every Ready pod behind TARGET, as its Service would "
    "(least connections); a pod turning not Ready or terminating gets no new ones.",
)
@click.option(
    "--http-log",
    is_flag=True,
    help="Log each HTTP/1.x request through the forward (method, path, status, size, time) "
    "on stderr; bytes pass unchanged, TLS is shown as TLS.",
)
@options.probe_options
@idle_options
@options.metrics_option()
@options.ping_option()
@options.protocol_option()
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
    http_log: bool,
    probe: str,
    probe_interval: float,
    lazy: bool,
    idle_after: float | None,
    idle_stop: float | None,
    metrics: tuple[str, int] | None,
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
    opts = options.with_globals(
        ctx,
        kubeconfig=kubeconfig,
        context=context,
        namespace=namespace,
        ping_interval=ping_interval,
        protocol=protocol,
    )
    run(
        lambda: run_forward(
            **opts,
            addresses=addresses,
            target=target,
            ports=list(ports),
            reconnect=not no_reconnect,
            pod_running_timeout=pod_running_timeout,
            spread=spread,
            http_log=http_log,
            probe=probe,
            probe_interval=probe_interval,
            metrics=metrics,
            idle=idle_fields(lazy, idle_after, idle_stop),
        )
    )


def forward_specs(
    *,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    addresses: str,
    target: str,
    ports: list[str],
    reconnect: bool = True,
    protocol: str = "auto",
    spread: bool = False,
    http_log: bool = False,
    probe: str = "",
    probe_interval: float = DEFAULT_PROBE_INTERVAL,
) -> list[ForwardSpec]:
    """One spec per port mapping; InputError (one line) for the first thing that is wrong."""
    if not ports:
        raise InputError("no port given: expected [LOCAL:]REMOTE, e.g. 8080:80")
    listen = tuple(a.strip() for a in addresses.split(",") if a.strip())
    specs = []
    for text in ports:
        mapping = parse_port_mapping(text)
        specs.append(
            ForwardSpec(
                target=target.strip(),
                remote_port=mapping.remote,
                local_port=mapping.local_port,
                local_from_remote=mapping.local_from_remote,
                namespace=namespace,
                context=context,
                kubeconfig=kubeconfig,
                addresses=listen,
                reconnect=reconnect,
                protocol=protocol,
                spread=spread,
                http_log=http_log,
                probe=probe,
                probe_interval=probe_interval,
            )
        )
    seen: set[int] = set()
    for spec in specs:
        if spec.local_port and spec.local_port in seen:
            raise InputError(f"local port {spec.local_port} is given twice; use each once")
        seen.add(spec.local_port)
    return specs


def run_forward(
    *,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    addresses: str,
    target: str,
    ports: list[str],
    reconnect: bool = True,
    ping_interval: float = 30.0,
    protocol: str = "auto",
    pod_running_timeout: float | None = None,
    spread: bool = False,
    http_log: bool = False,
    probe: str = "",
    probe_interval: float = DEFAULT_PROBE_INTERVAL,
    metrics: tuple[str, int] | None = None,
    idle: dict[str, Any] | None = None,
) -> int:
    specs = forward_specs(
        kubeconfig=kubeconfig,
        context=context,
        namespace=namespace,
        addresses=addresses,
        target=target,
        ports=ports,
        reconnect=reconnect,
        protocol=protocol,
        spread=spread,
        http_log=http_log,
        probe=probe,
        probe_interval=probe_interval,
    )
    specs = with_idle(specs, idle or {})
    if pod_running_timeout is not None:
        wait_for_ready_pod(specs[0], pod_running_timeout)
    return run_loop(
        run_here(
            specs,
            kubeconfig=kubeconfig,
            ping_interval=ping_interval,
            named=False,
            all_or_nothing=True,
            metrics=metrics,
        )
    )
