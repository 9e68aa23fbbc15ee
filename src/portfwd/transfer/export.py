"""Forwards written out: a runnable kubectl script, or a plain YAML list (what import prints).

The YAML list uses the profile file's keys for a forward: `name, context, namespace, target,
ports, address, reconnect, kubeconfig` (and `protocol` when not auto, `http_log` when on).
`ports` is a list of kubectl-style port strings (`8080:80`, `80`, `:80`, `8443:https`),
`address` kubectl's `--address` text (`localhost`, `127.0.0.1,::1`). :func:`from_yaml` reads
that list back, and also the session's own spelling (`remote_port`, `local_port`, `addresses`).

:func:`to_kubectl_script` writes a POSIX shell script: one `kubectl port-forward ... &` per
forward, every word shell-quoted (`engine/present.py`'s command, the one `y` copies), then
`wait`, so Ctrl-C stops them all.
"""

from __future__ import annotations

from typing import Any

import yaml

from portfwd.engine.model import ForwardSpec
from portfwd.engine.present import kubectl_command
from portfwd.engine.present import port_text as port_text  # `portfwd import` prints it too
from portfwd.errors import InputError
from portfwd.kube.targets import parse_port_mapping
from portfwd.safeyaml import YamlLimitError, load_yaml
from portfwd.transfer.result import Exported, Note, Unreadable

YAML_MAX_NODES = 200_000
FORWARD_KEYS = (
    "name",
    "context",
    "namespace",
    "target",
    "ports",
    "address",
    "reconnect",
    "kubeconfig",
    "protocol",
    "http_log",
)
_SESSION_KEYS = ("remote_port", "local_port", "addresses")


def to_kubectl_script(specs: list[ForwardSpec]) -> str:
    lines = [
        "#!/bin/sh",
        "# kubectl port-forwards written by portfwd export. Run it with sh; Ctrl-C stops them.",
        "# kubectl does not reconnect: a forward whose pod goes away stops (portfwd follows it).",
        "trap 'trap - INT TERM; kill 0' INT TERM",
    ]
    for spec in specs:
        if spec.name:
            lines.append(f"# {spec.name}")
        lines.append(kubectl_command(spec) + " &")
    lines.append("wait")
    return "\n".join(lines) + "\n"


def export_kubectl(specs: list[ForwardSpec]) -> Exported:
    """The script, and a note for what a kubectl command cannot carry."""
    out = Exported(to_kubectl_script(specs))
    for spec in specs:
        if spec.protocol == "v4":
            out.notes.append(
                Note.of(
                    spec.name or spec.target,
                    "kubectl has no switch for the v4.channel.k8s.io wire: not kept",
                )
            )
        if spec.http_log:
            out.notes.append(
                Note.of(spec.name or spec.target, "kubectl has no HTTP request log: not kept")
            )
    if any(spec.reconnect for spec in specs):
        out.notes.append(
            Note.of("kubectl", "kubectl does not reconnect: a forward stops when its pod goes")
        )
    return out


def spec_to_forward(spec: ForwardSpec) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if spec.name:
        data["name"] = spec.name
    if spec.context:
        data["context"] = spec.context
    if spec.namespace:
        data["namespace"] = spec.namespace
    data["target"] = spec.target
    data["ports"] = [port_text(spec)]
    data["address"] = ",".join(spec.addresses)
    data["reconnect"] = spec.reconnect
    if spec.kubeconfig:
        data["kubeconfig"] = spec.kubeconfig
    if spec.protocol != "auto":
        data["protocol"] = spec.protocol
    if spec.http_log:
        data["http_log"] = True
    return data


def to_yaml(specs: list[ForwardSpec]) -> str:
    if not specs:
        return "[]\n"
    return yaml.safe_dump(
        [spec_to_forward(s) for s in specs], sort_keys=False, allow_unicode=True, width=100
    )


def _forward_specs(item: Any) -> list[ForwardSpec]:
    if not isinstance(item, dict):
        raise InputError("a forward must be a mapping of its fields")
    unknown = sorted(str(k) for k in item if k not in FORWARD_KEYS and k not in _SESSION_KEYS)
    if unknown:
        raise InputError(f"unknown key {unknown[0]!r}; keys are " + ", ".join(FORWARD_KEYS))
    address = item.get("address", item.get("addresses", "localhost"))
    if isinstance(address, str):
        addresses = tuple(a.strip() for a in address.split(",") if a.strip())
    elif isinstance(address, list):
        addresses = tuple(str(a) for a in address)
    else:
        raise InputError("address must be text, e.g. localhost or 127.0.0.1,::1")
    common: dict[str, Any] = {
        "target": item.get("target"),
        "namespace": item.get("namespace"),
        "context": item.get("context"),
        "kubeconfig": item.get("kubeconfig"),
        "addresses": addresses or ("localhost",),
        "reconnect": item.get("reconnect", True),
        "protocol": item.get("protocol", "auto"),
        "http_log": item.get("http_log", False),
    }
    if "target" not in item:
        raise InputError("a forward needs a target (e.g. svc/web)")
    name = item.get("name")
    if "ports" not in item:
        if "remote_port" not in item:
            raise InputError("a forward needs ports (e.g. [8080:80])")
        return [
            ForwardSpec(
                **common,
                remote_port=item["remote_port"],
                local_port=item.get("local_port", 0),
                name=name,
            )
        ]
    ports = item["ports"]
    if isinstance(ports, str | int):
        ports = [ports]
    if not isinstance(ports, list) or not ports:
        raise InputError("ports must be a list of [LOCAL:]REMOTE, e.g. [8080:80]")
    specs = []
    for raw in ports:
        mapping = parse_port_mapping(str(raw))
        if mapping.local_from_remote:
            raise InputError(
                f"give a local port for the named remote port {mapping.remote!r}"
                f" (e.g. 8443:{mapping.remote}, or :{mapping.remote} for a free one)"
            )
        own = name
        if name and len(ports) > 1:
            own = f"{name}-{mapping.remote}"
        specs.append(
            ForwardSpec(
                **common, remote_port=mapping.remote, local_port=mapping.local_port, name=own
            )
        )
    return specs


def from_yaml(text: str, source: str = "-") -> list[ForwardSpec]:
    """The forwards of a YAML list (as :func:`to_yaml` writes it). Unreadable on any error,
    naming the file and the forward."""
    try:
        data = load_yaml(text, max_nodes=YAML_MAX_NODES)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise Unreadable(f"{where}: not valid YAML: {exc.problem or exc}") from None
    except (yaml.YAMLError, YamlLimitError) as exc:
        raise Unreadable(f"{source}: not readable as YAML: {exc}") from None
    if data is None:
        return []
    if isinstance(data, dict) and isinstance(data.get("forwards"), list):
        data = data["forwards"]
    if not isinstance(data, list):
        raise Unreadable(f"{source}:1: expected a list of forwards (as portfwd import writes)")
    specs: list[ForwardSpec] = []
    for index, item in enumerate(data):
        label = f"forward {index + 1}"
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            label += f" ({item['name']})"
        try:
            specs.extend(_forward_specs(item))
        except InputError as exc:
            raise Unreadable(f"{source}: {label}: {exc}") from None
        except TypeError:
            raise Unreadable(f"{source}: {label}: a field has the wrong type") from None
    return specs
