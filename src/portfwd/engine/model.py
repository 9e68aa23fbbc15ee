"""The public data of a forward: what it is asked to do, what state it is in, what it did.

These are immutable values: the engine publishes new ones, front ends (TUI, CLI, store) only
read them. Nothing here does I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class ForwardState(enum.Enum):
    STARTING = "starting"
    ACTIVE = "active"
    RECONNECTING = "reconnecting"  # wanted, listener bound, no usable pod yet: retrying
    ERROR = "error"
    STOPPED = "stopped"


class LogLevel(enum.IntEnum):
    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40


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

    def kubectl_command(self) -> str:
        """The equivalent `kubectl port-forward` command line."""
        parts = ["kubectl"]
        if self.protocol == "spdy":
            parts.insert(0, "KUBECTL_PORT_FORWARD_WEBSOCKETS=false")
        if self.kubeconfig:
            parts += ["--kubeconfig", self.kubeconfig]
        if self.context:
            parts += ["--context", self.context]
        if self.namespace:
            parts += ["-n", self.namespace]
        parts += ["port-forward", self.target]
        if self.addresses != ("127.0.0.1",):
            parts += ["--address", ",".join(self.addresses)]
        local = str(self.local_port) if self.local_port else ""
        parts.append(f"{local}:{self.remote_port}")
        return " ".join(parts)


@dataclass(frozen=True)
class LogEntry:
    ts: float  # wall-clock seconds (time.time())
    level: LogLevel
    message: str


@dataclass(frozen=True)
class ForwardStats:
    connections_open: int = 0
    connections_total: int = 0
    bytes_in: int = 0  # pod -> local client
    bytes_out: int = 0  # local client -> pod
    errors: int = 0
    reconnects: int = 0  # times the forward moved to another pod or came back after a failure


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

    @property
    def local_port(self) -> int:
        return self.bound[0][1] if self.bound else self.spec.local_port
