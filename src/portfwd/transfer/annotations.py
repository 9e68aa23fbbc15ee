"""Forwards declared on a live cluster: k9s's pod annotations and kftray's service annotations.

k9s (FastForwards, on **pods**, usually through the pod template):
`k9scli.io/auto-port-forwards` and `k9scli.io/port-forwards`, a comma list of
`container::[local:]port` (port number or name) or plain `[local:]port`. Without a local
port, k9s binds the container port's number; so do these forwards. A pod made by a Deployment
(through its ReplicaSet) or a StatefulSet is imported as that workload (`deploy/web`), once
for all its replicas: pods come and go, the workload stays.

kftray (on **services**): `kftray.app/enabled: "true"` and optionally
`kftray.app/configs: "alias-local-remote,..."` (split on `-` into exactly three parts, so an
alias has no `-`; `remote` is a number or a service port name). kftray sends the number to
the pod's port; portfwd forwards `svc/NAME` by the Service's port, so a number is read as the
service port whose targetPort it is. Without `configs`, every TCP port of the service becomes a
forward with local port = its targetPort, as kftray does.

The parsers are pure (object dicts as the API returns them); :func:`scan_cluster` lists pods
and services through portfwd's own client.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import replace
from typing import Any

from portfwd.engine.model import ForwardSpec
from portfwd.errors import InputError
from portfwd.kube.targets import is_valid_port_name
from portfwd.transfer.result import Imported, Names, Note, Skipped, generated_name

K9S_AUTO = "k9scli.io/auto-port-forwards"
K9S_PRESELECT = "k9scli.io/port-forwards"
KFTRAY_ENABLED = "kftray.app/enabled"
KFTRAY_CONFIGS = "kftray.app/configs"

_K9S_RX = re.compile(r"\A([\w-]+)::(\d*):?(\d*|[\w-]*)\Z")
_K9S_PLAIN_RX = re.compile(r"\A(\d*):?(\d*|[\w-]*)\Z")
_DIGITS = re.compile(r"\d+")


class _Skip(Exception):
    pass


def _meta(obj: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    annotations = meta.get("annotations")
    if not isinstance(annotations, dict):
        annotations = {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or ""), annotations


def _spec(
    target: str,
    remote: int | str,
    local: int,
    ns: str,
    context: str | None,
    kubeconfig: str | None,
    addresses: tuple[str, ...],
) -> ForwardSpec:
    return ForwardSpec(
        target=target,
        remote_port=remote,
        local_port=local,
        namespace=ns or None,
        context=context,
        kubeconfig=kubeconfig,
        addresses=addresses,
    )


def _named(spec: ForwardSpec, name: str) -> ForwardSpec:
    return replace(spec, name=name)


# --- k9s -----------------------------------------------------------------------------------


def _port_number(text: str, what: str) -> int:
    if len(text) > 5 or not 0 < int(text) <= 65535:
        raise _Skip(f"{what} {text} is out of range 1..65535")
    return int(text)


def parse_k9s_value(item: str) -> tuple[str | None, str, str]:
    """One `container::[local:]port` or `[local:]port` -> (container, local, port); raises
    _Skip. `local` is '' when not given; `port` is a number or a port name."""
    text = item.strip()
    plain = _K9S_PLAIN_RX.match(text)
    if plain and text:
        first, second = plain.group(1), plain.group(2)
        if not second:
            return None, first, first
        return None, first, second
    full = _K9S_RX.match(text)
    if full is None:
        raise _Skip("expected container::[local:]port (a port number or name)")
    container, local, port = full.group(1), full.group(2), full.group(3)
    if not port:
        port = local
    if not port:
        raise _Skip("no port given")
    return container, local, port


def _container_ports(pod: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    result: dict[str, list[dict[str, Any]]] = {}
    for c in spec.get("containers") or []:
        if isinstance(c, dict):
            ports = [p for p in c.get("ports") or [] if isinstance(p, dict)]
            result[str(c.get("name") or "")] = ports
    return result


def _owner_target(pod: dict[str, Any], name: str) -> tuple[str, str]:
    """The target for a pod: its Deployment or StatefulSet when it has one; and a note."""
    meta = pod.get("metadata") if isinstance(pod.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
    assert isinstance(labels, dict)
    for ref in meta.get("ownerReferences") or []:
        if not isinstance(ref, dict) or not ref.get("controller", True):
            continue
        kind, owner = ref.get("kind"), str(ref.get("name") or "")
        if kind == "StatefulSet" and owner:
            return f"sts/{owner}", f"pod {name} belongs to sts/{owner}: forwarding to that"
        if kind == "ReplicaSet" and owner:
            suffix = "-" + str(labels.get("pod-template-hash") or "")
            if suffix != "-" and owner.endswith(suffix) and len(owner) > len(suffix):
                deploy = owner[: -len(suffix)]
                return (
                    f"deploy/{deploy}",
                    f"pod {name} belongs to deploy/{deploy}: forwarding to that",
                )
            return f"rs/{owner}", f"pod {name} belongs to rs/{owner}: forwarding to that"
    return f"pod/{name}", ""


def _k9s_one(item: str, containers: dict[str, list[dict[str, Any]]]) -> tuple[int | str, int]:
    """(remote, local) for one annotation item of a pod with `containers`."""
    container, local_text, port = parse_k9s_value(item)
    if container is not None and container not in containers:
        known = ", ".join(sorted(containers)) or "none"
        raise _Skip(f"the pod has no container {container!r} (containers: {known})")
    searched = (
        containers[container]
        if container is not None
        else [p for ps in containers.values() for p in ps]
    )
    if _DIGITS.fullmatch(port):
        remote: int | str = _port_number(port, "port")
        number = remote
    else:
        if not is_valid_port_name(port):
            raise _Skip(f"{port!r} is neither a port number nor a port name")
        found = [p for p in searched if p.get("name") == port]
        if not found:
            raise _Skip(f"no container port named {port!r}")
        remote, number = port, int(found[0].get("containerPort") or 0)
    local = _port_number(local_text, "local port") if local_text else int(number)
    return remote, local


def from_pods(
    pods: list[dict[str, Any]],
    *,
    context: str | None = None,
    kubeconfig: str | None = None,
    names: Names | None = None,
) -> Imported:
    """The k9s FastForwards of `pods` (pods without the annotations are no entries)."""
    names = names or Names()
    result = Imported()
    seen: dict[tuple[Any, ...], str] = {}
    for pod in pods:
        ns, name, annotations = _meta(pod)
        containers = _container_ports(pod)
        target, owner_note = _owner_target(pod, name)
        for key in (K9S_AUTO, K9S_PRESELECT):
            value = annotations.get(key)
            if not isinstance(value, str):
                continue
            where = f"{ns}/pod/{name}"
            for item in value.split(","):
                if not item.strip():
                    continue
                entry = f"{key}: {item.strip()}"
                try:
                    remote, local = _k9s_one(item, containers)
                    spec = _spec(target, remote, local, ns, context, kubeconfig, ("localhost",))
                except _Skip as exc:
                    result.skipped.append(Skipped.of(where, entry, str(exc)))
                    continue
                except InputError as exc:
                    result.skipped.append(Skipped.of(where, entry, str(exc)))
                    continue
                identity = (spec.target, spec.namespace, spec.remote_port, spec.local_port)
                if identity in seen:
                    continue  # another replica of the same workload, or both annotations
                seen[identity] = where
                result.specs.append(_named(spec, names.take(generated_name(target, remote))))
                if owner_note:
                    result.notes.append(Note.of(where, owner_note))
    return result


# --- kftray --------------------------------------------------------------------------------


def _service_ports(svc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = svc.get("spec") if isinstance(svc.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    return [p for p in spec.get("ports") or [] if isinstance(p, dict)]


def _kftray_remote(remote: str, ports: list[dict[str, Any]]) -> tuple[int | str, str]:
    """kftray's `remote` (a port name, or the pod's port number) as svc/NAME's remote port."""
    if not _DIGITS.fullmatch(remote):
        if any(p.get("name") == remote for p in ports):
            return remote, ""
        raise _Skip(f"the service has no port named {remote!r}")
    number = _port_number(remote, "remote port")
    for p in ports:
        if p.get("targetPort") == number or (
            p.get("targetPort") is None and p.get("port") == number
        ):
            return int(p.get("port") or 0), ""
    for p in ports:
        if p.get("port") == number:
            return (
                number,
                f"{number} read as the Service's port (its targetPort is {p.get('targetPort')!r})",
            )
    raise _Skip(
        f"the service has no port with targetPort {number}: kftray forwards to the pod's port"
        f" {number} directly; add it as deploy/NAME LOCAL:{number}"
    )


def from_services(
    services: list[dict[str, Any]],
    *,
    context: str | None = None,
    kubeconfig: str | None = None,
    names: Names | None = None,
) -> Imported:
    """The kftray annotations of `services` (services without `enabled: "true"` are none)."""
    names = names or Names()
    result = Imported()
    addresses = ("127.0.0.1",)  # kftray's default local address
    for svc in services:
        ns, name, annotations = _meta(svc)
        where = f"{ns}/svc/{name}"
        enabled = annotations.get(KFTRAY_ENABLED)
        configs = annotations.get(KFTRAY_CONFIGS)
        if enabled != "true":
            if isinstance(configs, str):
                result.skipped.append(
                    Skipped.of(
                        where,
                        f"{KFTRAY_CONFIGS}: {configs}",
                        f'{KFTRAY_ENABLED} is not "true" (kftray ignores this service too)',
                    )
                )
            continue
        ports = _service_ports(svc)
        target = f"svc/{name}"
        if isinstance(configs, str):
            for item in configs.split(","):
                if not item.strip():
                    continue
                entry = f"{KFTRAY_CONFIGS}: {item.strip()}"
                try:
                    parts = item.strip().split("-")
                    if len(parts) != 3:
                        raise _Skip("expected alias-local-remote (the alias cannot hold '-')")
                    alias, local_text, remote_text = parts
                    if not _DIGITS.fullmatch(local_text):
                        raise _Skip(f"local port {local_text!r} is not a number")
                    local = _port_number(local_text, "local port")
                    remote, note = _kftray_remote(remote_text, ports)
                    spec = _spec(target, remote, local, ns, context, kubeconfig, addresses)
                except (_Skip, InputError) as exc:
                    result.skipped.append(Skipped.of(where, entry, str(exc)))
                    continue
                result.specs.append(_named(spec, names.take(alias)))
                if note:
                    result.notes.append(Note.of(where, note))
            continue
        tcp = []
        for p in ports:
            if str(p.get("protocol") or "TCP").upper() != "TCP":
                shown = f"port {p.get('name') or p.get('port')} ({p.get('protocol')})"
                result.skipped.append(
                    Skipped.of(where, shown, "not TCP: portfwd forwards TCP only")
                )
                continue
            tcp.append(p)
        for p in tcp:
            entry = f"port {p.get('name') or p.get('port')}"
            target_port = p.get("targetPort")
            port = p.get("port")
            try:
                if not isinstance(port, int):
                    raise _Skip("the service port has no number")
                local = target_port if isinstance(target_port, int) else port
                spec = _spec(target, port, local, ns, context, kubeconfig, addresses)
            except (_Skip, InputError) as exc:
                result.skipped.append(Skipped.of(where, entry, str(exc)))
                continue
            wanted = name if len(tcp) == 1 else generated_name(target, port)
            result.specs.append(_named(spec, names.take(wanted)))
    return result


# --- the cluster -----------------------------------------------------------------------------


def _absolute(path: str) -> str:
    """The kubeconfig as an absolute path: it is written into profiles, read from anywhere."""
    return os.path.abspath(os.path.expanduser(path))


async def scan_cluster(
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
    all_namespaces: bool = False,
    names: Names | None = None,
) -> Imported:
    """List pods and services (one namespace: `namespace` or the context's; or all) and read
    their annotations. Errors reaching the cluster are PortfwdError (one line)."""
    from portfwd.kube.client import KubeClient
    from portfwd.kube.config import load_connection

    if kubeconfig:
        kubeconfig = _absolute(kubeconfig)
    conn = await asyncio.to_thread(load_connection, kubeconfig, context, namespace)
    async with KubeClient(conn, heartbeat=None) as client:
        ns = None if all_namespaces else (namespace or client.namespace)
        pods, _ = await client.list_raw("pods", ns)
        services, _ = await client.list_raw("services", ns)
    names = names or Names()
    shown_context = context or conn.context
    result = from_pods(pods, context=shown_context, kubeconfig=kubeconfig, names=names)
    result.extend(
        from_services(services, context=shown_context, kubeconfig=kubeconfig, names=names)
    )
    return result
