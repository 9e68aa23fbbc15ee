"""The public data of a forward: what it is asked to do, what state it is in, what it did.

These are immutable values: the engine publishes new ones, front ends (TUI, CLI, store) only
read them. Nothing here does I/O.

A :class:`ForwardSpec` checks itself when it is made (and when `dataclasses.replace` makes a
new one): the session file, the command line, the dashboard's forms and the engine API all
build one, so all of them share this one validation and its one-line messages. Log messages
are stored with control characters escaped (`portfwd.safetext`): they quote the cluster's
text (API messages, error-channel text, object names) and end up on terminals and in files.
"""

from __future__ import annotations

import enum
import re
import weakref
from dataclasses import dataclass, field
from typing import Any

from portfwd.constants import PORTFORWARD_PROTOCOL_CHOICES
from portfwd.engine.probe_spec import DEFAULT_PROBE_INTERVAL, check_interval, parse_probe
from portfwd.errors import InputError
from portfwd.kube.targets import Target, is_valid_port_name, parse_target, printable, quote
from portfwd.safetext import escape_controls
from portfwd.tunnel.addresses import BindAddress, parse_addresses

IDLE_AFTER = 600.0  # seconds without traffic before a lazy forward closes its tunnel
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


class ForwardState(enum.Enum):
    STARTING = "starting"
    ACTIVE = "active"
    RECONNECTING = "reconnecting"  # wanted, listener bound, no usable pod yet: retrying
    DEGRADED = "degraded"  # active, but its probe says the pod's port does not answer
    ERROR = "error"
    STOPPED = "stopped"
    IDLE = "idle"  # lazy: listener bound, no tunnel (opened by the next connection)


class LogLevel(enum.IntEnum):
    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40


class LogKind(enum.Enum):
    """What a log line is about, so a front end never has to read its words to decide.

    The level says how it looks (INFO, WARNING, ERROR); the kind what it means: an ERROR
    line of kind GONE is a forward waiting for its target to return, only FAILED is final.
    """

    NOTE = "note"  # anything else
    STARTING = "starting"  # `starting: kubectl port-forward ...`
    RESOLVED = "resolved"  # a resolution decision (which pod, which port, why)
    TUNNEL = "tunnel"  # which wire protocol carries the forward
    FORWARDING = "forwarding"  # kubectl's `Forwarding from 127.0.0.1:8080 -> 80`
    CONNECTION = "connection"  # kubectl's `Handling connection for 8080`
    CONNECTION_FAILED = "connection-failed"  # one connection failed (the kubelet's words)
    RECONNECTING = "reconnecting"  # a retry of a reconnect episode
    WAITING = "waiting"  # no usable pod yet, nothing to retry on a timer
    RECOVERED = "recovered"  # active again, or switched to another pod
    GONE = "gone"  # the target was deleted; waiting for it to return (not final)
    FAILED = "failed"  # the forward gave up: ERROR until the user acts
    STOPPED = "stopped"
    SETTING = "setting"  # a setting of the forward changed (auto-reconnect on/off)
    PRESSURE = "pressure"  # out of file descriptors: accepting paused (and back)
    HTTP = "http"  # the request log (--http-log): one request and its response, or why it stopped
    HEALTH = "health"  # the probe's verdict changed (degraded / answers again), credentials
    IDLE = "idle"  # lazy: the tunnel closed for want of traffic, or opened by a connection


@dataclass(frozen=True)
class ForwardSpec:
    """What the user asked for; everything needed to (re)start the forward.

    `remote_port` is what the user typed: a number, or a port name (resolved against the
    Service's or the pod's port names). `local_port` 0 means "pick a free port".
    `context` / `namespace` None mean the kubeconfig's current context / its namespace.
    """

    target: str  # "svc/web", "pod/x", "deploy/x", "sts/x", or a bare pod name
    remote_port: int | str
    local_port: int = 0
    namespace: str | None = None
    context: str | None = None
    kubeconfig: str | None = None
    addresses: tuple[str, ...] = ("127.0.0.1",)
    reconnect: bool = True  # follow the target and retry after failures (False: kubectl's way)
    protocol: str = "auto"  # the wire: auto, websocket (SPDY in a WebSocket), spdy or v4
    name: str | None = None  # a short name to address it by (`portfwd stop web`), unique
    # kubectl's bare port name (`portfwd forward svc/web https`): the local port is the number
    # the name resolves to, known once the forward resolves (local_port is then 0).
    local_from_remote: bool = False
    spread: bool = False  # new connections over every Ready pod (a Service), not kubectl's one
    http_log: bool = False  # log each HTTP/1.x request's method, path, status, size, duration
    probe: str = ""  # "" (none), "tcp" or "http:/PATH": is the pod's port answering?
    probe_interval: float = DEFAULT_PROBE_INTERVAL  # seconds between two probes
    # Lazy (engine/lazy.py): bound at once, the tunnel opened by the first connection and
    # closed again after `idle_after` seconds without a connection or a byte.
    lazy: bool = False
    idle_after: float = IDLE_AFTER
    idle_stop: float = 0.0  # stop (unbind) after this many seconds without traffic; 0: never

    def __post_init__(self) -> None:
        _PARSED[self] = check_spec(self)

    @property
    def parsed_target(self) -> Target:
        """The target, as parsed when the spec was made."""
        return _parsed(self)[0]

    @property
    def bind_addresses(self) -> tuple[BindAddress, ...]:
        """The listen addresses, as parsed when the spec was made."""
        return _parsed(self)[1]


# A spec's parsed target and addresses, kept beside it (not in its fields: a spec is plain
# data to serialise, compare and copy); equal specs parse the same.
_PARSED: weakref.WeakKeyDictionary[ForwardSpec, tuple[Target, tuple[BindAddress, ...]]] = (
    weakref.WeakKeyDictionary()
)


def _parsed(spec: ForwardSpec) -> tuple[Target, tuple[BindAddress, ...]]:
    found = _PARSED.get(spec)
    if found is None:  # its twin was made first and is gone
        found = _PARSED[spec] = check_spec(spec)
    return found


def _shown(value: Any) -> str:
    return quote(value) if isinstance(value, str) else printable(repr(value))


def _port(value: Any, what: str, low: int, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{what} {_shown(value)} is not a number; use {low}..65535{hint}")
    if not low <= value <= 65535:
        raise InputError(f"{what} {value} is out of range; use {low}..65535{hint}")


def check_spec(spec: ForwardSpec) -> tuple[Target, tuple[BindAddress, ...]]:
    """Raise InputError (one line) unless every field of `spec` has a usable value and type;
    the parsed target and listen addresses."""
    if not isinstance(spec.target, str):
        raise InputError(f"target {_shown(spec.target)} is not text; expected TYPE/NAME")
    target = parse_target(spec.target)
    remote = spec.remote_port
    if isinstance(remote, str):
        if not is_valid_port_name(remote):
            raise InputError(
                f"remote port {_shown(remote)} is neither a number 1..65535 nor a port name "
                "(up to 15 lowercase letters, digits and '-')"
            )
    else:
        _port(remote, "remote port", 1, " or a port name")
    _port(spec.local_port, "local port", 0, " (0 picks a free port)")
    for key in ("namespace", "context", "kubeconfig"):
        value = getattr(spec, key)
        if value is not None and not isinstance(value, str):
            raise InputError(f"{key} {_shown(value)} is not text")
    addresses = spec.addresses
    if not isinstance(addresses, tuple) or not all(isinstance(a, str) for a in addresses):
        raise InputError(f"listen addresses {_shown(addresses)} are not a list of text")
    parsed = parse_addresses(addresses)  # IP addresses or localhost; its InputError says which
    if not isinstance(spec.reconnect, bool):
        raise InputError(f"reconnect {_shown(spec.reconnect)} is not true or false")
    if spec.protocol not in PORTFORWARD_PROTOCOL_CHOICES:
        raise InputError(
            f"unknown protocol {_shown(spec.protocol)}: use one of "
            + ", ".join(PORTFORWARD_PROTOCOL_CHOICES)
        )
    if not isinstance(spec.http_log, bool):
        raise InputError(f"http_log {_shown(spec.http_log)} is not true or false")
    if not isinstance(spec.spread, bool):
        raise InputError(f"spread {_shown(spec.spread)} is not true or false")
    if spec.spread and parse_target(spec.target).kind == "pod":
        raise InputError(
            f"--spread needs several pods behind the target; {quote(spec.target)} is one pod"
            " (use svc/, deploy/, sts/ or rs/)"
        )
    _idle_fields(spec)
    if spec.name is not None and (
        not isinstance(spec.name, str) or not NAME_RE.fullmatch(spec.name)
    ):
        raise InputError(
            f"forward name {_shown(spec.name)} is not usable: up to 63 letters, digits, "
            "'.', '_' and '-', starting with a letter or digit"
        )
    if not isinstance(spec.local_from_remote, bool):
        raise InputError(f"local_from_remote {_shown(spec.local_from_remote)} is not true or false")
    if spec.local_from_remote and (spec.local_port or not isinstance(remote, str)):
        raise InputError("the local port follows the remote port only for a port name")
    parse_probe(spec.probe)
    check_interval(spec.probe_interval)
    return target, tuple(parsed)


def _idle_fields(spec: ForwardSpec) -> None:
    if not isinstance(spec.lazy, bool):
        raise InputError(f"lazy {_shown(spec.lazy)} is not true or false")
    for key, low in (("idle_after", "above zero"), ("idle_stop", "0 (never) or more")):
        value = getattr(spec, key)
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise InputError(f"{key} {_shown(value)} is not a number of seconds")
        if value < 0 or (key == "idle_after" and value == 0) or value == float("inf"):
            raise InputError(f"{key} {_shown(value)} is out of range; use {low} seconds")


@dataclass(frozen=True)
class LogEntry:
    ts: float  # wall-clock seconds (time.time())
    level: LogLevel
    message: str  # control characters escaped (see the module docstring)
    kind: LogKind = LogKind.NOTE

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", escape_controls(self.message))


@dataclass(frozen=True)
class ConnectionInfo:
    """One open connection, as views show it."""

    peer: str  # the local client, e.g. 127.0.0.1:53122
    pod: str
    opened_at: float
    bytes_in: int
    bytes_out: int
    # Bytes per second: in the last second, and moved in the last minute / 60 (engine/traffic).
    rate_in: float = 0.0
    rate_out: float = 0.0
    avg_in: float = 0.0
    avg_out: float = 0.0
    stream_open: float | None = None  # seconds its stream to the pod took to open
    first_byte: float | None = None  # seconds from accepted to the pod's first byte


@dataclass(frozen=True)
class ForwardStats:
    connections_open: int = 0
    connections_total: int = 0
    bytes_in: int = 0  # pod -> local client
    bytes_out: int = 0  # local client -> pod
    errors: int = 0
    reconnects: int = 0  # times the forward moved to another pod or came back after a failure
    # Bytes per second (engine/traffic.py): in the last second, and moved in the last minute
    # / 60, as of when the stats were read.
    rate_in: float = 0.0
    rate_out: float = 0.0
    avg_in: float = 0.0
    avg_out: float = 0.0
    # Failed connections by reason (traffic.FAILURE_REASONS order, only those that happened);
    # they add up to `errors`.
    failures: tuple[tuple[str, int], ...] = ()
    # Seconds, over the last traffic.LATENCY_WINDOW connections (None: none yet): opening the
    # stream to the pod, and from accepting a connection to the pod's first byte.
    open_p50: float | None = None
    open_p99: float | None = None
    first_byte_p50: float | None = None
    first_byte_p99: float | None = None
    # Bytes per second, one per second, oldest first, the newest ending at `sampled_at` (wall
    # clock); leading seconds in which nothing moved are left out. A view later than
    # `sampled_at` counts the seconds since as 0 (the engine samples only while bytes move).
    history_in: tuple[int, ...] = ()
    history_out: tuple[int, ...] = ()
    sampled_at: float | None = None
    # All time (for a Prometheus summary's _count and _sum): streams opened and their seconds,
    # first bytes seen and their seconds.
    open_count: int = 0
    open_sum: float = 0.0
    first_byte_count: int = 0
    first_byte_sum: float = 0.0


@dataclass(frozen=True)
class HealthFacts:
    """What is known per layer, each fact with its wall-clock time (None: not known yet).

    A view shows them as they are; a countdown (the credential's time left) is computed from
    the times when shown, so the facts change only when something happened.
    """

    listening_at: float | None = None  # the listener was bound (addresses: the snapshot's)
    resolved_at: float | None = None  # the pod in use was chosen
    pod_ready: bool | None = None  # that pod was Ready then
    ping_at: float | None = None  # the tunnel's last answered PING
    ping_rtt: float | None = None  # its round trip, seconds
    verified_at: float | None = None  # the tunnel was last checked end to end (preflight)
    probe_at: float | None = None  # the last probe's end
    probe_ok: bool | None = None  # did it answer (None: no probe ran yet)
    probe_result: str = ""  # "HTTP 200 OK in 3 ms", "refused: ...", "not HTTP ..."
    probe_ok_at: float | None = None  # the last probe that answered
    credential: str = ""  # what authenticates: "exec plugin token", "client certificate" ...
    credential_expires_at: float | None = None  # when it runs out (None: no expiry known)
    credential_refreshed_at: float | None = None  # when portfwd last got a fresh one
    last_in_at: float | None = None  # last byte pod -> clients
    last_out_at: float | None = None  # last byte clients -> pod


@dataclass(frozen=True)
class ForwardSnapshot:
    """Everything a view shows about one forward, at one moment."""

    id: str
    spec: ForwardSpec
    state: ForwardState
    context: str = ""  # resolved context name
    namespace: str = ""  # resolved namespace
    pod: str = ""  # the pod currently used ("" until resolved)
    remote_port: int = 0  # resolved container port (0 until resolved)
    port_name: str = ""  # the port's name, if it has one
    bound: tuple[tuple[str, int], ...] = ()  # (address, port) actually listening
    reason: str = ""  # last error / why stopped
    started_at: float | None = None  # wall clock when it last became active
    stats: ForwardStats = field(default_factory=ForwardStats)
    attempt: int = 0  # failed attempts in the current reconnect episode (0 while active)
    next_retry_at: float | None = None  # wall clock of the next retry; None: none scheduled
    tunnel: str = ""  # the wire protocol in use: "SPDY over WebSocket", "SPDY", v4 ("": none yet)
    health: HealthFacts = field(default_factory=HealthFacts)  # facts per layer, with times

    @property
    def local_port(self) -> int:
        return self.bound[0][1] if self.bound else self.spec.local_port
