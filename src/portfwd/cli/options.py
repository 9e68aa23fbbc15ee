"""The options several commands share: the kube options, --state, --ping-interval,
--protocol, durations, and the rule that a global option means the same before or after the
command (`with_globals`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from portfwd.cli import completion
from portfwd.cli.durations import parse_duration
from portfwd.constants import PORTFORWARD_PROTOCOL_CHOICES
from portfwd.errors import PortfwdError
from portfwd.safetext import escape_controls

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_PING_INTERVAL = 30.0
MIN_PING_INTERVAL = 1.0  # a pong may take up to half the interval: keep that above network jitter


def kube_options(fn: F) -> F:
    """--kubeconfig, --context and -n/--namespace, as kubectl spells them."""
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


def state_option(help_text: str) -> Callable[[F], F]:
    return click.option(
        "--state",
        "state_file",
        default=None,
        metavar="FILE",
        shell_complete=completion.complete_files,
        help=help_text,
    )


def profiles_option(fn: F) -> F:
    return click.option(
        "--profiles",
        "profiles_file",
        default=None,
        metavar="FILE",
        help="Profiles file (default: profiles.yaml in portfwd's config dir).",
    )(fn)


def ping_interval(ctx: click.Context, param: click.Parameter, value: str) -> float:
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


def probe_options(fn: F) -> F:
    """--probe and --probe-interval: is the pod's port answering (issue 19 §1)?"""
    fn = click.option(
        "--probe-interval",
        default="10s",
        show_default=True,
        metavar="DURATION",
        callback=_probe_interval,
        help="How often the probe runs (1s..1h).",
    )(fn)
    fn = click.option(
        "--probe",
        default="",
        metavar="tcp|http:/PATH",
        callback=_probe,
        help="Check through the tunnel that the pod's port answers: `tcp` (it accepts) or "
        "`http:/PATH` (a GET answered 2xx/3xx). While it fails the forward is `degraded`, "
        "with the reason. Off by default.",
    )(fn)
    return fn


def _probe(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from portfwd.engine.probe_spec import parse_probe

    try:
        probe = parse_probe(value)
    except PortfwdError as exc:
        raise click.BadParameter(str(exc)) from None
    return probe.text if probe is not None else ""


def _probe_interval(ctx: click.Context, param: click.Parameter, value: str) -> float:
    from portfwd.engine.probe_spec import check_interval

    text = value.strip()
    try:
        seconds = float(text) if text.replace(".", "", 1).isdigit() else parse_duration(text)
        return check_interval(seconds)
    except PortfwdError as exc:
        raise click.BadParameter(str(exc)) from None


def duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """A Go duration (kubectl's flags take them) in seconds; a malformed one is a usage error."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except PortfwdError as exc:
        raise click.BadParameter(str(exc)) from None


def timeout(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """A duration, or 0 for no limit (None): `run --timeout` and `wait --timeout`."""
    if value is not None and value.strip() in ("0", "0s"):
        return None
    return duration(ctx, param, value)


def ping_option(help_text: str | None = None) -> Callable[[F], F]:
    return click.option(
        "--ping-interval",
        default=str(DEFAULT_PING_INTERVAL).removesuffix(".0"),
        show_default=True,
        metavar="SECONDS",
        callback=ping_interval,
        help=help_text
        or "Send a WebSocket ping on every tunnel this often, so a dead connection is "
        "noticed and idle proxies keep it open; 0 disables.",
    )


def protocol_option(help_text: str | None = None) -> Callable[[F], F]:
    return click.option(
        "--protocol",
        type=click.Choice(PORTFORWARD_PROTOCOL_CHOICES),
        default="auto",
        show_default=True,
        help=help_text
        or "Port-forward wire protocol: auto tries SPDY over a WebSocket, then plain SPDY "
        "(as kubectl falls back), then v4.channel.k8s.io; KUBECTL_PORT_FORWARD_WEBSOCKETS=false"
        " makes auto plain SPDY only.",
    )


def _metrics_value(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[str, int] | None:
    """--metrics ADDR:PORT -> (host, port); a malformed one is a usage error, an address that
    is not loopback a warning (the counters name clusters, pods and traffic)."""
    if value is None:
        return None
    from portfwd.metrics.server import is_loopback, metrics_address

    try:
        host, port = metrics_address(value)
    except PortfwdError as exc:
        raise click.BadParameter(str(exc)) from None
    if not is_loopback(host):
        click.echo(
            f"warning: --metrics {value}: anyone who can reach it reads your forwards' "
            "clusters, namespaces, pods and traffic",
            err=True,
        )
    return host, port


def metrics_option() -> Callable[[F], F]:
    return click.option(
        "--metrics",
        default=None,
        metavar="ADDR:PORT",
        callback=_metrics_value,
        help="Serve Prometheus metrics of these forwards at http://ADDR:PORT/metrics "
        "(e.g. 127.0.0.1:9465).",
    )


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
    "profiles_file": "--profiles",
}


def given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE


def with_globals(ctx: click.Context, **local: Any) -> dict[str, Any]:
    """A command's values for the global options it takes, merged with the ones written
    before it. One given before the command that this command does not take, or given in
    both places with different values, is a usage error (one line, exit 2)."""
    parent = ctx.parent
    merged = dict(local)
    if parent is None:
        return merged
    for name, flag in GLOBAL_OPTIONS.items():
        if name not in parent.params or not given(parent, name):
            continue
        value = parent.params[name]
        if name not in local:
            raise click.UsageError(f"{flag} does not apply to '{ctx.command_path}'; remove it", ctx)
        if given(ctx, name) and local[name] != value:
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
