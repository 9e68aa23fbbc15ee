"""The engine's values as plain data (JSON/YAML-safe dicts), and back: one serialiser.

The session file, the daemon's socket protocol and `portfwd ls -o json` all write forwards
with these functions, so a spec means the same on disk, on the wire and on screen. Reading
back goes through :class:`ForwardSpec`'s own validation: a bad value from any of them is one
InputError naming the field. Unknown keys are ignored when reading (a newer portfwd may add
some), unless `strict` (requests to the daemon: a typo there is a mistake worth a message).
"""

from __future__ import annotations

from typing import Any

from portfwd.engine.events import (
    Event,
    ForwardAdded,
    ForwardChanged,
    ForwardRemoved,
    Lagged,
    LogLine,
    StatsTick,
)
from portfwd.engine.model import (
    IDLE_AFTER,
    ConnectionInfo,
    ForwardSnapshot,
    ForwardSpec,
    ForwardState,
    ForwardStats,
    HealthFacts,
    LogEntry,
    LogKind,
    LogLevel,
)
from portfwd.engine.probe_spec import DEFAULT_PROBE_INTERVAL
from portfwd.errors import InputError

SPEC_KEYS = (
    "name",
    "target",
    "remote_port",
    "local_port",
    "namespace",
    "context",
    "kubeconfig",
    "addresses",
    "reconnect",
    "protocol",
    "local_from_remote",
    "spread",
    "http_log",
    "probe",
    "probe_interval",
    "lazy",
    "idle_after",
    "idle_stop",
)
_OPTIONAL = ("name", "namespace", "context", "kubeconfig")


# --- specs ---------------------------------------------------------------------------------


def spec_to_dict(spec: ForwardSpec) -> dict[str, Any]:
    """Every field that differs from "not set"; `target`, ports, addresses and reconnect always."""
    data: dict[str, Any] = {}
    if spec.name is not None:
        data["name"] = spec.name
    data["target"] = spec.target
    data["remote_port"] = spec.remote_port
    data["local_port"] = spec.local_port
    for key in ("namespace", "context", "kubeconfig"):
        value = getattr(spec, key)
        if value is not None:
            data[key] = value
    data["addresses"] = list(spec.addresses)
    data["reconnect"] = spec.reconnect
    if spec.protocol != "auto":
        data["protocol"] = spec.protocol
    if spec.local_from_remote:
        data["local_from_remote"] = True
    if spec.spread:
        data["spread"] = True
    if spec.http_log:
        data["http_log"] = True
    if spec.probe:
        data["probe"] = spec.probe
    if spec.probe_interval != DEFAULT_PROBE_INTERVAL:
        data["probe_interval"] = spec.probe_interval
    if spec.lazy:
        data["lazy"] = True
    if spec.idle_after != IDLE_AFTER:
        data["idle_after"] = spec.idle_after
    if spec.idle_stop:
        data["idle_stop"] = spec.idle_stop
    return data


def spec_from_dict(data: Any, *, strict: bool = False) -> ForwardSpec:
    """A spec from plain data; InputError (one line) for a wrong shape, type or value."""
    if not isinstance(data, dict):
        raise InputError("a forward must be a mapping of its fields")
    if strict:
        unknown = sorted(str(k) for k in data if k not in SPEC_KEYS)
        if unknown:
            raise InputError(
                f"unknown field {unknown[0]!r} in a forward; fields are " + ", ".join(SPEC_KEYS)
            )
    if "target" not in data:
        raise InputError("a forward needs a target (e.g. svc/web)")
    if "remote_port" not in data:
        raise InputError("a forward needs a remote_port (a number or a port name)")
    addresses = data.get("addresses", ["127.0.0.1"])
    if not isinstance(addresses, list | tuple):
        raise InputError("bad addresses (a list of IP addresses or localhost)")
    for key in ("reconnect", "local_from_remote", "spread", "http_log", "lazy"):
        if key in data and not isinstance(data[key], bool):  # `reconnect: 'no'` is not false
            raise InputError(f"bad {key} (true or false)")
    fields: dict[str, Any] = {
        "target": data["target"],
        "remote_port": data["remote_port"],
        "local_port": data.get("local_port", 0),
        "addresses": tuple(addresses) or ("127.0.0.1",),
        "reconnect": data.get("reconnect", True),
        "protocol": data.get("protocol", "auto"),
        "local_from_remote": data.get("local_from_remote", False),
        "spread": data.get("spread", False),
        "http_log": data.get("http_log", False),
        "probe": data.get("probe", ""),
        "probe_interval": data.get("probe_interval", DEFAULT_PROBE_INTERVAL),
        "lazy": data.get("lazy", False),
        "idle_after": data.get("idle_after", IDLE_AFTER),
        "idle_stop": data.get("idle_stop", 0.0),
    }
    for key in _OPTIONAL:
        fields[key] = data.get(key)
    return ForwardSpec(**fields)


# --- snapshots, logs, connections ------------------------------------------------------------


_COUNTS = (
    "connections_open",
    "connections_total",
    "bytes_in",
    "bytes_out",
    "errors",
    "reconnects",
    "open_count",
    "first_byte_count",
)
_RATES = ("rate_in", "rate_out", "avg_in", "avg_out", "open_sum", "first_byte_sum")
_TIMES = ("open_p50", "open_p99", "first_byte_p50", "first_byte_p99", "sampled_at")
_HISTORY = ("history_in", "history_out")


def stats_to_dict(stats: ForwardStats) -> dict[str, Any]:
    data: dict[str, Any] = {k: getattr(stats, k) for k in (*_COUNTS, *_RATES, *_TIMES)}
    data["failures"] = dict(stats.failures)
    for key in _HISTORY:
        data[key] = list(getattr(stats, key))
    return data


def stats_from_dict(data: Any) -> ForwardStats:
    if not isinstance(data, dict):
        raise InputError("stats must be a mapping")
    failures = data.get("failures") or {}
    if not isinstance(failures, dict):
        raise InputError("failures must be a mapping of reason to count")
    fields: dict[str, Any] = {k: _int(data.get(k, 0), k) for k in _COUNTS}
    fields.update({k: _float(data.get(k, 0.0), k) for k in _RATES})
    fields.update({k: _opt_float(data.get(k), k) for k in _TIMES})
    fields.update({k: _ints(data.get(k) or [], k) for k in _HISTORY})
    fields["failures"] = tuple(
        (_str(k, "failures"), _int(n, "failures")) for k, n in failures.items()
    )
    return ForwardStats(**fields)


def snapshot_to_dict(snap: ForwardSnapshot) -> dict[str, Any]:
    return {
        "id": snap.id,
        "spec": spec_to_dict(snap.spec),
        "state": snap.state.value,
        "context": snap.context,
        "namespace": snap.namespace,
        "pod": snap.pod,
        "remote_port": snap.remote_port,
        "port_name": snap.port_name,
        "bound": [[host, port] for host, port in snap.bound],
        "reason": snap.reason,
        "started_at": snap.started_at,
        "stats": stats_to_dict(snap.stats),
        "attempt": snap.attempt,
        "next_retry_at": snap.next_retry_at,
        "tunnel": snap.tunnel,
        "local_port": snap.local_port,
        "health": health_to_dict(snap.health),
    }


def snapshot_from_dict(data: Any) -> ForwardSnapshot:
    if not isinstance(data, dict):
        raise InputError("a forward's state must be a mapping")
    bound = data.get("bound") or []
    return ForwardSnapshot(
        id=_str(data.get("id"), "id"),
        spec=spec_from_dict(data.get("spec")),
        state=_state(data.get("state")),
        context=_str(data.get("context", ""), "context"),
        namespace=_str(data.get("namespace", ""), "namespace"),
        pod=_str(data.get("pod", ""), "pod"),
        remote_port=_int(data.get("remote_port", 0), "remote_port"),
        port_name=_str(data.get("port_name", ""), "port_name"),
        bound=tuple((_str(h, "bound"), _int(p, "bound")) for h, p in bound),
        reason=_str(data.get("reason", ""), "reason"),
        started_at=_opt_float(data.get("started_at"), "started_at"),
        stats=stats_from_dict(data.get("stats", {})),
        attempt=_int(data.get("attempt", 0), "attempt"),
        next_retry_at=_opt_float(data.get("next_retry_at"), "next_retry_at"),
        tunnel=_str(data.get("tunnel", ""), "tunnel"),
        health=health_from_dict(data.get("health", {})),
    )


def health_to_dict(facts: HealthFacts) -> dict[str, Any]:
    """Every fact, by its field's name (None: not known)."""
    return {name: getattr(facts, name) for name in _HEALTH_FIELDS}


def health_from_dict(data: Any) -> HealthFacts:
    if not isinstance(data, dict):
        raise InputError("health must be a mapping")
    fields: dict[str, Any] = {}
    for name, kind in _HEALTH_FIELDS.items():
        value = data.get(name)
        if value is None:
            continue
        if kind == "str":
            fields[name] = _str(value, name)
        elif kind == "bool":
            if not isinstance(value, bool):
                raise InputError(f"{name} must be true or false")
            fields[name] = value
        else:
            fields[name] = _opt_float(value, name)
    return HealthFacts(**fields)


# HealthFacts' fields and how each reads back ("float" also means "or None").
_HEALTH_FIELDS = {
    name: ("str" if default == "" else "bool" if name in ("pod_ready", "probe_ok") else "float")
    for name, default in ((f, getattr(HealthFacts(), f)) for f in HealthFacts.__dataclass_fields__)
}


def log_to_dict(entry: LogEntry) -> dict[str, Any]:
    return {
        "ts": entry.ts,
        "level": entry.level.name.lower(),
        "kind": entry.kind.value,
        "message": entry.message,
    }


def log_from_dict(data: Any) -> LogEntry:
    if not isinstance(data, dict):
        raise InputError("a log line must be a mapping")
    try:
        level = LogLevel[str(data.get("level", "info")).upper()]
        kind = LogKind(data.get("kind", "note"))
    except (KeyError, ValueError):
        raise InputError("a log line has an unknown level or kind") from None
    ts = _opt_float(data.get("ts"), "ts")
    return LogEntry(ts or 0.0, level, _str(data.get("message", ""), "message"), kind)


def connection_to_dict(info: ConnectionInfo) -> dict[str, Any]:
    return {
        "peer": info.peer,
        "pod": info.pod,
        "opened_at": info.opened_at,
        "bytes_in": info.bytes_in,
        "bytes_out": info.bytes_out,
        "rate_in": info.rate_in,
        "rate_out": info.rate_out,
        "avg_in": info.avg_in,
        "avg_out": info.avg_out,
        "stream_open": info.stream_open,
        "first_byte": info.first_byte,
    }


def connection_from_dict(data: Any) -> ConnectionInfo:
    if not isinstance(data, dict):
        raise InputError("a connection must be a mapping")
    return ConnectionInfo(
        peer=_str(data.get("peer", ""), "peer"),
        pod=_str(data.get("pod", ""), "pod"),
        opened_at=_opt_float(data.get("opened_at"), "opened_at") or 0.0,
        bytes_in=_int(data.get("bytes_in", 0), "bytes_in"),
        bytes_out=_int(data.get("bytes_out", 0), "bytes_out"),
        rate_in=_float(data.get("rate_in", 0.0), "rate_in"),
        rate_out=_float(data.get("rate_out", 0.0), "rate_out"),
        avg_in=_float(data.get("avg_in", 0.0), "avg_in"),
        avg_out=_float(data.get("avg_out", 0.0), "avg_out"),
        stream_open=_opt_float(data.get("stream_open"), "stream_open"),
        first_byte=_opt_float(data.get("first_byte"), "first_byte"),
    )


# --- events ----------------------------------------------------------------------------------


def event_to_dict(event: Event) -> dict[str, Any]:
    if isinstance(event, ForwardAdded):
        return {"type": "added", "forward": snapshot_to_dict(event.snapshot)}
    if isinstance(event, ForwardChanged):
        return {"type": "changed", "forward": snapshot_to_dict(event.snapshot)}
    if isinstance(event, ForwardRemoved):
        return {"type": "removed", "id": event.forward_id}
    if isinstance(event, LogLine):
        return {"type": "log", "id": event.forward_id, "entry": log_to_dict(event.entry)}
    if isinstance(event, StatsTick):
        return {"type": "stats", "id": event.forward_id, "stats": stats_to_dict(event.stats)}
    return {"type": "lagged"}


def event_from_dict(data: Any) -> Event:
    if not isinstance(data, dict):
        raise InputError("an event must be a mapping")
    kind = data.get("type")
    if kind == "added":
        return ForwardAdded(snapshot_from_dict(data.get("forward")))
    if kind == "changed":
        return ForwardChanged(snapshot_from_dict(data.get("forward")))
    if kind == "removed":
        return ForwardRemoved(_str(data.get("id"), "id"))
    if kind == "log":
        fid = data.get("id")
        return LogLine(None if fid is None else _str(fid, "id"), log_from_dict(data.get("entry")))
    if kind == "stats":
        return StatsTick(_str(data.get("id"), "id"), stats_from_dict(data.get("stats")))
    if kind == "lagged":
        return Lagged()
    raise InputError(f"unknown event type {kind!r}")


# --- small checks ----------------------------------------------------------------------------


def _state(value: Any) -> ForwardState:
    try:
        return ForwardState(value)
    except ValueError:
        raise InputError(f"unknown forward state {value!r}") from None


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"{what} must be text")
    return value


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{what} must be a whole number")
    return value


def _float(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{what} must be a number")
    return float(value)


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, list | tuple):
        raise InputError(f"{what} must be a list of whole numbers")
    return tuple(_int(v, what) for v in value)


def _opt_float(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{what} must be a number")
    return float(value)
