"""The Kubernetes kinds portfwd knows, in one table: every other list of kinds derives from it.

A :class:`Kind` says how users write it (kubectl's names: `svc`, `service`, `services`,
`deploy.apps` ...), where the API serves it, how its objects are read, and what portfwd does
with it: forward to it (a target), list it unasked (the picker, the browse view, shell
completion), and what breaks without the right to read it (`portfwd doctor`). The target
parser, the API client, the engine's watches, the catalog, the TUI and completion all ask
this module, so a kind `portfwd forward` accepts is one the picker, quick add and completion
know too.

The table's order is the order messages and `portfwd doctor` name kinds in (pods first:
every forward ends at a pod); the UI lists services first (:data:`LISTED`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import quote

from portfwd.kube.objects import EndpointSlice, Namespace, Pod, Service, Workload


@dataclass(frozen=True)
class Kind:
    """One kind: its names, its place in the API, and what portfwd does with it."""

    name: str  # singular, lower case: what a Target's `kind` holds ("service")
    short: str  # kubectl's short name; how portfwd writes targets back ("svc/web")
    plural: str  # the API resource ("services")
    parse: Callable[[dict[str, Any]], Any] = field(compare=False, repr=False)
    group: str = ""  # the API group; "" is the core group
    version: str = "v1"
    namespaced: bool = True
    aliases: tuple[str, ...] = ()  # further short names kubectl accepts ("po")
    target: bool = False  # a port-forward target (`svc/NAME`)
    workload: bool = False  # a target whose pods its selector matches (deploy, sts, rs)
    listed: bool = False  # the picker, the browse view and completion offer it unasked
    picks: str = ""  # how a forward to it chooses its pod (the picker's help)
    needed_for: str = ""  # what needs the right to read it (`portfwd doctor`)
    required: bool = False  # without that right forwards fail (doctor: ✗, not !)

    @property
    def api_prefix(self) -> str:
        """`/api/v1` for the core group, `/apis/GROUP/VERSION` for the others."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def path(self, namespace: str | None, name: str | None = None) -> str:
        """The REST path of the collection (in `namespace`, for a namespaced kind), or of one
        object by `name`."""
        path = self.api_prefix
        if self.namespaced and namespace is not None:
            path += f"/namespaces/{quote(namespace, safe='')}"
        path += f"/{self.plural}"
        if name is not None:
            path += f"/{quote(name, safe='')}"
        return path

    @property
    def spellings(self) -> tuple[str, ...]:
        """Every lower-case word kubectl resolves to this kind: the short name, the aliases,
        singular and plural, and for a named API group each of them with `.GROUP` and
        `.VERSION.GROUP` (`deploy.apps`, `deployments.v1.apps`)."""
        words = tuple(dict.fromkeys((self.short, *self.aliases, self.name, self.plural)))
        if not self.group:
            return words
        qualified = [f"{w}.{self.group}" for w in words]
        qualified += [f"{w}.{self.version}.{self.group}" for w in words]
        return (*words, *qualified)

    def label(self, name: str) -> str:
        """`svc/web`: an object of this kind as portfwd writes a target."""
        return f"{self.short}/{name}"


def _workload(kind: str) -> Callable[[dict[str, Any]], Workload]:
    return partial(Workload.from_dict, kind)


SERVICE = Kind(
    "service",
    "svc",
    "services",
    Service.from_dict,
    target=True,
    listed=True,
    picks="follows the Service's ready endpoints (like kubectl: targetPort translated)",
    needed_for="svc/ targets",
    required=True,
)
POD = Kind(
    "pod",
    "pod",
    "pods",
    Pod.from_dict,
    aliases=("po",),
    target=True,
    listed=True,
    picks="one pod, by name",
    needed_for="every forward (pods are what a forward connects to)",
    required=True,
)
DEPLOYMENT = Kind(
    "deployment",
    "deploy",
    "deployments",
    _workload("deployment"),
    group="apps",
    target=True,
    workload=True,
    listed=True,
    picks="a ready pod of the Deployment",
    needed_for="deploy/ targets",
)
STATEFULSET = Kind(
    "statefulset",
    "sts",
    "statefulsets",
    _workload("statefulset"),
    group="apps",
    target=True,
    workload=True,
    listed=True,
    picks="a ready pod of the StatefulSet",
    needed_for="sts/ targets",
)
# A Deployment's ReplicaSets (old ones with no pods among them) would crowd the lists: a
# ReplicaSet is forwarded to when named (`rs/web-5d9`, or `rs` typed in the picker).
REPLICASET = Kind(
    "replicaset",
    "rs",
    "replicasets",
    _workload("replicaset"),
    group="apps",
    target=True,
    workload=True,
    picks="a ready pod of the ReplicaSet",
    needed_for="rs/ targets",
)
ENDPOINTSLICE = Kind(
    "endpointslice",
    "endpointslice",
    "endpointslices",
    EndpointSlice.from_dict,
    group="discovery.k8s.io",
    needed_for="svc/ targets (their Ready pods)",
    required=True,
)
NAMESPACE = Kind("namespace", "ns", "namespaces", Namespace.from_dict, namespaced=False)

KINDS: tuple[Kind, ...] = (
    POD,
    SERVICE,
    ENDPOINTSLICE,
    DEPLOYMENT,
    STATEFULSET,
    REPLICASET,
    NAMESPACE,
)
TARGETS: tuple[Kind, ...] = tuple(k for k in KINDS if k.target)
# What the picker, the browse view and completion list, in their order: services first
# (what people forward to most), then the table's order.
LISTED: tuple[Kind, ...] = tuple(
    sorted((k for k in KINDS if k.listed), key=lambda k: k is not SERVICE)
)
WORKLOADS: tuple[Kind, ...] = tuple(k for k in KINDS if k.workload)

_BY_NAME = {k.name: k for k in KINDS}
_BY_PLURAL = {k.plural: k for k in KINDS}
_TARGET_SPELLINGS = {word: k for k in TARGETS for word in k.spellings}


def by_name(name: str) -> Kind:
    """The kind a Target's `kind` names (`service`); ValueError for one portfwd lacks."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown kind {name!r}") from None


def by_resource(resource: str) -> Kind:
    """The kind of an API resource (`services`); ValueError for one portfwd lacks."""
    try:
        return _BY_PLURAL[resource]
    except KeyError:
        raise ValueError(f"unknown resource {resource!r}") from None


def target_kind(word: str) -> Kind | None:
    """The target kind a kubectl spelling names (`svc`, `deployments.apps`, `RS` ...), or
    None for one portfwd does not forward to."""
    return _TARGET_SPELLINGS.get(word.lower())


def accepted_prefixes() -> str:
    """`pod/, po/, svc/, service/, ...`: the target types an error message offers."""
    words = (w for k in TARGETS for w in dict.fromkeys((k.short, *k.aliases, k.name)))
    return ", ".join(f"{w}/" for w in words)
