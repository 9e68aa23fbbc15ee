"""kftray's (and kftui's) JSON config export, both ways.

kftray writes a JSON array of config objects (its export, `--json` and `--stdin`). What is read:
`alias` (the forward's name), `workload_type` (service, pod, proxy, expose), `service`,
`namespace`, `context`, `kubeconfig` (`default` or absent: the default kubeconfig),
`protocol` (tcp, udp), `local_port`, `remote_port` (a number, or a port name), and
`local_address` (absent: 127.0.0.1, kftray's default). Booleans may be JSON booleans or the
strings "true"/"false", as kftray accepts them. kftray's placeholder values
(`default-namespace`, `current-context`, ...) count as "not set".

Skipped, with the reason: UDP entries (kftray relays them through its `kftray-server` pod),
`proxy` and `expose` entries (a relay pod, a reverse tunnel), and `pod` entries (kftray picks
the pod by a label selector; portfwd forwards to a named pod, service or workload). Imported
with a note: the hosts-file alias (`domain_enabled`), `auto_loopback_address`, HTTP logs.

One difference of meaning stays: kftray sends a service entry's `remote_port` to the pod's
port, portfwd (like kubectl) reads svc/NAME's number as the Service's port. They agree when
the Service's port equals its targetPort; the import says so once per file, and the export
writes the targetPort read from the cluster (`kftray_ports.py`), or says why it could not.

:func:`export_kftray` writes service forwards back in the same shape, so a kftray export read,
written and read again gives the same forwards.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from portfwd.engine.model import ForwardSpec
from portfwd.engine.present import kubectl_command
from portfwd.errors import InputError
from portfwd.kube.targets import is_valid_name, is_valid_port_name, parse_target
from portfwd.transfer.kftray_ports import TargetPort
from portfwd.transfer.result import (
    Exported,
    Imported,
    Names,
    Note,
    Skipped,
    Unreadable,
    generated_name,
    name_base,
)
from portfwd.transfer.scope import check_scope

_PLACEHOLDERS = frozenset(
    {
        "default-service",
        "default-namespace",
        "default-target",
        "default-remote-address",
        "default-alias",
        "default-workload",
        "current-context",
        "protocol",
        "",
    }
)
_BOOLEANS = (
    "auto_loopback_address",
    "domain_enabled",
    "http_logs_enabled",
    "http_logs_auto_cleanup",
    "cert_manager_enabled",
)
DEFAULT_ADDRESS = "127.0.0.1"
PORT_MEANING_NOTE = (
    "kftray sends a service entry's remote_port to the pod's port; portfwd reads svc/NAME's"
    " number as the Service's port (as kubectl does): check entries whose Service port"
    " differs from its targetPort"
)


class _Skip(Exception):
    pass


def _text(obj: dict[str, Any], key: str) -> str | None:
    """A string field, None when absent, null or a kftray placeholder."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Skip(f"{key} is not text")
    return None if value in _PLACEHOLDERS else value


def _bool(obj: dict[str, Any], key: str) -> bool:
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"
    raise _Skip(f'{key} {json.dumps(value)} is not a boolean (true, false, "true" or "false")')


def _number(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise _Skip(f"{key} {json.dumps(value)} is not a port number")
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 5:
        value = int(value)
    if not isinstance(value, int) or not 0 <= value <= 65535:
        raise _Skip(f"{key} {json.dumps(value)} is not a port number 0..65535")
    return value


def _remote(value: Any) -> int | str:
    if value is None:
        raise _Skip("no remote_port")
    if isinstance(value, str) and not value.isdigit():
        if not is_valid_port_name(value):
            raise _Skip(f"remote_port {json.dumps(value)} is neither a number nor a port name")
        return value
    port = _number(value, "remote_port")
    if port == 0:
        raise _Skip("remote_port 0: give the port to forward to")
    return port


def _kind_skip(workload: str, obj: dict[str, Any]) -> str | None:
    if workload == "proxy":
        where = obj.get("remote_address") or "a remote address"
        return (
            f"a proxy entry (to {where} through kftray's relay pod): portfwd forwards to pods,"
            " services and workloads only"
        )
    if workload == "expose":
        return (
            "an expose entry (a cluster address back to this machine): portfwd forwards"
            " local ports to the cluster only"
        )
    if workload == "pod":
        selector = obj.get("target") or "a label selector"
        return (
            f"a pod entry selects its pod by label ({selector}): portfwd forwards to a named"
            " pod, service or workload; add it as deploy/NAME or pod/NAME"
        )
    if workload != "service":
        return (
            f"unknown workload_type {json.dumps(workload)} (kftray has service, pod, proxy, expose)"
        )
    return None


def _entry(obj: Any, names: Names) -> tuple[ForwardSpec, list[str]]:
    if not isinstance(obj, dict):
        raise _Skip("an entry must be a JSON object")
    service = _text(obj, "service")
    workload = (_text(obj, "workload_type") or ("service" if service else "")).lower()
    protocol = (_text(obj, "protocol") or "tcp").lower()
    if protocol == "udp":
        raise _Skip(
            "UDP (kftray relays it through its kftray-server pod); portfwd forwards TCP only"
        )
    if protocol != "tcp":
        raise _Skip(f"unknown protocol {json.dumps(protocol)} (tcp or udp)")
    reason = _kind_skip(workload, obj)
    if reason is not None:
        raise _Skip(reason)
    if service is None:
        raise _Skip("a service entry without a service name")
    if not is_valid_name(service):
        raise _Skip(f"service {json.dumps(service)} is not a valid name")
    flags = {key: _bool(obj, key) for key in _BOOLEANS}
    notes: list[str] = []
    if flags["domain_enabled"]:
        notes.append("domain_enabled: the hosts-file alias is not carried over")
    if flags["auto_loopback_address"]:
        notes.append("auto_loopback_address: portfwd binds local_address (or 127.0.0.1)")
    if flags["http_logs_enabled"]:
        notes.append(
            "http_logs_enabled: portfwd's HTTP log (one line per request in the forward's log;"
            " kftray's file size and retention are not carried over)"
        )
    remote = _remote(obj.get("remote_port"))
    local_raw = obj.get("local_port")
    local = 0 if local_raw is None else _number(local_raw, "local_port")
    address = _text(obj, "local_address") or DEFAULT_ADDRESS
    kubeconfig = _text(obj, "kubeconfig")
    if kubeconfig == "default":
        kubeconfig = None
    alias = _text(obj, "alias")
    wanted = alias if alias is not None else generated_name(f"svc/{service}", remote)
    try:
        check_scope(_text(obj, "namespace"), _text(obj, "context"))
        spec = ForwardSpec(
            target=f"svc/{service}",
            remote_port=remote,
            local_port=local,
            namespace=_text(obj, "namespace"),
            context=_text(obj, "context"),
            kubeconfig=kubeconfig,
            addresses=(address,),
            http_log=flags["http_logs_enabled"],
        )
    except InputError as exc:
        raise _Skip(str(exc)) from None
    name = names.take(wanted)
    if alias is not None and name != alias:
        if name_base(alias) != alias:
            notes.append(f"alias {json.dumps(alias)} is named {name} (letters, digits, . _ -)")
        else:
            notes.append(f"alias {json.dumps(alias)} is used twice: this one is named {name}")
    return replace(spec, name=name), notes


def _shown(obj: Any) -> str:
    if isinstance(obj, dict):
        keys = ("alias", "workload_type", "service", "target", "remote_address", "protocol")
        obj = {k: obj[k] for k in keys if k in obj} or obj
    try:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    except RecursionError:  # loaded just under the limit, shown a few frames deeper
        return f"(an entry {MAX_DEPTH_SHOWN})"


MAX_NUMBER_DIGITS = 20  # a port has 5; Python refuses over 4,300 (a ValueError, not JSON's)
MAX_DEPTH_SHOWN = "nested too deeply (a kftray export is an array of flat objects)"


class _HugeNumber(ValueError):
    pass


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise _HugeNumber(f"a number with {len(digits.lstrip('-')):,} digits")
    return int(digits)


def load_json(text: str, source: str) -> Any:
    try:
        return json.loads(text, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise Unreadable(f"{source}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    except _HugeNumber as exc:
        raise Unreadable(f"{source}: not a kftray export: {exc}") from None
    except RecursionError:
        raise Unreadable(f"{source}: not a kftray export: {MAX_DEPTH_SHOWN}") from None


def parse_kftray_json(text: str, source: str = "-", names: Names | None = None) -> Imported:
    """The forwards of a kftray export. Unreadable when it is not JSON or not an array."""
    data = load_json(text, source)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise Unreadable(f"{source}:1: a kftray export is a JSON array of configs")
    names = names or Names()
    result = Imported()
    for index, obj in enumerate(data):
        where = f"{source}[{index}]"
        try:
            spec, notes = _entry(obj, names)
        except _Skip as exc:
            result.skipped.append(Skipped.of(where, _shown(obj), str(exc)))
            continue
        result.specs.append(spec)
        result.notes.extend(Note.of(where, n) for n in notes)
    if result.specs:
        result.notes.append(Note.of(source, PORT_MEANING_NOTE))
    return result


# --- export ----------------------------------------------------------------------------------


def export_kftray(
    specs: list[ForwardSpec], ports: Mapping[int, TargetPort] | None = None
) -> Exported:
    """Service forwards as kftray configs; other targets are listed as skipped. `ports`: each
    service forward's targetPort as read from the cluster (`kftray_ports.py`), by index:
    written as `remote_port`, since kftray dials that on the pod; one not known is said in
    the notes (without `ports`, the forwards' own ports are written as they are)."""
    entries: list[dict[str, Any]] = []
    out = Exported("")
    for index, spec in enumerate(specs):
        where = spec.name or f"forward {index + 1}"
        target = parse_target(spec.target)
        if target.kind != "service":
            out.skipped.append(
                Skipped.of(
                    where,
                    kubectl_command(spec),
                    "kftray forwards to services by name and to pods by label only;"
                    " this forward is not written",
                )
            )
            continue
        entry: dict[str, Any] = {"service": target.name, "namespace": spec.namespace or ""}
        if spec.local_port:
            entry["local_port"] = spec.local_port
        entry["remote_port"] = spec.remote_port
        looked = ports.get(index) if ports is not None else None
        if looked is not None and looked.port is not None:
            entry["remote_port"] = looked.port
            if looked.port != spec.remote_port:
                out.notes.append(
                    Note.of(
                        where,
                        f"remote_port is {target}'s targetPort {looked.port} (kftray dials it"
                        f" on the pod), for its port {spec.remote_port}",
                    )
                )
        elif looked is not None:
            out.notes.append(
                Note.of(
                    where,
                    f"kftray dials remote_port on the pod, not {target}'s port: its targetPort"
                    f" could not be read ({looked.error}); {spec.remote_port} is written, check"
                    " it against the Service's targetPort",
                )
            )
        if spec.context:
            entry["context"] = spec.context
        entry["workload_type"] = "service"
        entry["protocol"] = "tcp"
        address = spec.addresses[0]
        if address == "localhost":
            address = DEFAULT_ADDRESS
        if address != DEFAULT_ADDRESS:
            entry["local_address"] = address
        if spec.name:
            entry["alias"] = spec.name
        if spec.kubeconfig:
            entry["kubeconfig"] = spec.kubeconfig
        if spec.http_log:
            entry["http_logs_enabled"] = True
        entries.append(entry)
        out.notes.extend(Note.of(where, n) for n in _losses(spec))
    out.text = json.dumps(entries, indent=2, ensure_ascii=False) + "\n"
    return out


def _losses(spec: ForwardSpec) -> list[str]:
    notes: list[str] = []
    if spec.addresses == ("localhost",):
        notes.append("localhost (127.0.0.1 and ::1) is written as 127.0.0.1")
    elif len(spec.addresses) > 1:
        notes.append(f"kftray listens on one address: only {spec.addresses[0]} is written")
    if isinstance(spec.remote_port, str):
        notes.append(f"kftray reads remote_port as a number; {spec.remote_port!r} is a name")
    if not spec.reconnect:
        notes.append("kftray always reconnects: reconnect: false is not kept")
    if spec.protocol != "auto":
        notes.append(f"kftray has no wire protocol setting: {spec.protocol} is not kept")
    if not spec.namespace:
        notes.append('kftray needs a namespace: fill in "namespace"')
    return notes


def to_kftray_json(specs: list[ForwardSpec]) -> str:
    return export_kftray(specs).text
