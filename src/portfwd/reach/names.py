"""Cluster names, as `portfwd ns` writes them into a hosts file and the proxy reads them.

A Service is `SVC.NS`, `SVC.NS.svc` or `SVC.NS.svc.cluster.local` (cluster DNS's own forms);
a pod of a headless Service is `POD.SVC.NS` with the same endings. Those name the *default*
cluster: the first `--context` given (or the kubeconfig's current context). Every cluster,
the default one included, is also reachable by putting its context in place of
`cluster.local`: `web.demo.svc.sandbox-2`, `postgres-0.postgres.data.svc.prod-eu`. A context
name is made a DNS label first (lowercase; anything but letters, digits and `-` becomes `-`),
so two clusters' Services with one name stay distinct: `web.demo` is the default cluster's,
`web.demo.svc.CONTEXT` each cluster's own. (`.svc.` is the separator: a namespace may not be
called `svc` for these names to work.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CLUSTER_DOMAIN = "cluster.local"
_LABEL_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_NOT_LABEL = re.compile(r"[^a-z0-9-]+")


def context_label(context: str) -> str:
    """`context` as one DNS label (`arn:aws:eks:...:cluster/prod` -> `arn-aws-eks-...-prod`)."""
    label = _NOT_LABEL.sub("-", context.lower()).strip("-")
    return label[:63].strip("-") or "context"


@dataclass(frozen=True)
class ClusterName:
    """What a host name names: a Service (pod "") or one pod of a headless Service."""

    namespace: str
    service: str
    pod: str = ""
    context: str | None = None  # a context label; None: the default cluster


def parse_name(host: str) -> ClusterName | None:
    """The cluster name `host` is, or None when it is not one (the proxy refuses those)."""
    host = host.rstrip(".").lower()
    if not host or len(host) > 253:
        return None
    context: str | None = None
    if host.endswith(".svc." + CLUSTER_DOMAIN):
        head = host[: -len(".svc." + CLUSTER_DOMAIN)]
    elif host.endswith(".svc"):
        head = host[: -len(".svc")]
    elif ".svc." in host:
        head, _, context = host.rpartition(".svc.")
        if "." in context or not _LABEL_RE.fullmatch(context):
            return None
    else:
        head = host
    parts = head.split(".")
    if not all(_LABEL_RE.fullmatch(p) for p in parts):
        return None
    if len(parts) == 2:
        return ClusterName(namespace=parts[1], service=parts[0], context=context)
    if len(parts) == 3:
        return ClusterName(namespace=parts[2], service=parts[1], pod=parts[0], context=context)
    return None


def host_names(
    namespace: str, service: str, pod: str, context: str, *, default: bool, bare: bool
) -> list[str]:
    """The names of one Service (or headless pod): the cluster DNS forms for the default
    cluster, the context form for every cluster, and with `bare` the short one (`web`)."""
    head = f"{pod}.{service}.{namespace}" if pod else f"{service}.{namespace}"
    names: list[str] = []
    if bare:
        names.append(f"{pod}.{service}" if pod else service)
    if default:
        names += [head, f"{head}.svc", f"{head}.svc.{CLUSTER_DOMAIN}"]
    names.append(f"{head}.svc.{context_label(context)}")
    return names
