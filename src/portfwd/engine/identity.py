"""What a forward *is*, so every way in agrees on "this one already runs".

One rule for the profiles view, the dashboard's Group column, `portfwd up` (in-process and
into the daemon), `portfwd add`, the session and import. Names are labels users give or
portfwd makes up (`web-80`); two profiles, an import and a seed may all call different
forwards `api`. Matching by name made `up` skip a forward because another target of that name
ran, and the profiles view count a forward active that was not. So a forward is its

- cluster: the kubeconfig context (and the kubeconfig file, where both sides name one),
- namespace, target kind and name, remote port (as written: `80` or `http`),
- and where it listens, where that is fixed: the local port and the listen addresses.

A wanted forward with a free local port (`:80`) is the running forward of the same target and
remote port whatever port it got. A context or namespace that one side leaves unsaid (the
kubeconfig's current one) is taken from the running forward's resolution when it has one,
else it does not tell them apart. Pure: no I/O.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from portfwd.engine.model import ForwardSnapshot, ForwardSpec
from portfwd.errors import InputError
from portfwd.kube.targets import PortMapping, Target, parse_target

# `localhost` listens on both loopbacks (tunnel/addresses.py); a forward on 127.0.0.1 and one
# on localhost share 127.0.0.1, so they are the same listener for matching.
_LOCALHOST = frozenset({"127.0.0.1", "::1"})


@dataclass(frozen=True)
class Identity:
    """A forward's identity (see the module docstring). None: not said (the default)."""

    context: str | None
    namespace: str | None
    kubeconfig: str | None
    kind: str
    name: str
    remote: str
    local_port: int  # 0: free (any port matches)
    hosts: frozenset[str]

    def where(self) -> tuple[object, ...]:
        """What the forward is, without where it listens: equal for `:80` and `8080:80`."""
        return (self.context, self.namespace, self.kind, self.name, self.remote)

    def describe(self) -> str:
        """`svc/web 80 (context sandbox, namespace demo)`, for one-line messages."""
        where = [f"context {self.context}"] if self.context else []
        where += [f"namespace {self.namespace}"] if self.namespace else []
        text = f"{Target(self.kind, self.name)} {self.remote}"
        return f"{text} ({', '.join(where)})" if where else text


def _hosts(addresses: Iterable[str]) -> frozenset[str]:
    hosts: set[str] = set()
    for address in addresses:
        host = address.strip().lower().strip("[]")
        hosts |= _LOCALHOST if host == "localhost" else {host}
    return frozenset(hosts)


def _kubeconfig(path: str | None) -> str | None:
    return os.path.abspath(os.path.expanduser(path)) if path else None


def identity(
    spec: ForwardSpec, *, context: str | None = None, namespace: str | None = None
) -> Identity:
    """`spec`'s identity; `context` and `namespace` fill in what the spec leaves unsaid (the
    defaults a front end would start it with)."""
    try:
        target = spec.parsed_target
    except InputError:  # pragma: no cover - a spec is checked when it is made
        target = parse_target(spec.target)
    return Identity(
        context=spec.context or context or None,
        namespace=spec.namespace or namespace or None,
        kubeconfig=_kubeconfig(spec.kubeconfig),
        kind=target.kind,
        name=target.name,
        remote=str(spec.remote_port),
        local_port=spec.local_port,
        hosts=_hosts(spec.addresses),
    )


def running_identity(snap: ForwardSnapshot) -> Identity:
    """A running forward's identity: its spec, with the context and namespace it resolved
    to where the spec left them unsaid, and the port it got for a free one."""
    found = identity(snap.spec, context=snap.context or None, namespace=snap.namespace or None)
    if found.local_port == 0 and snap.bound:
        found = replace(found, local_port=snap.bound[0][1])
    return found


def _agree(a: str | None, b: str | None) -> bool:
    return a is None or b is None or a == b


def same(wanted: Identity, have: Identity, *, resolved: bool = True) -> bool:
    """`wanted` (a profile entry, a new `add`, a saved forward) is the forward `have`.

    `resolved`: `have` is a running forward's (its unsaid context and namespace filled in
    from what it resolved): a side that still leaves one unsaid means the default, which
    the other side's value is. Between two specs (False) an unsaid context or namespace is
    only the same as an unsaid one. A kubeconfig file tells forwards apart only where both
    name one (the daemon pins the file; a profile seldom names it)."""
    if (wanted.kind, wanted.name, wanted.remote) != (have.kind, have.name, have.remote):
        return False
    if not _agree(wanted.kubeconfig, have.kubeconfig):
        return False
    if resolved:
        if not (_agree(wanted.context, have.context) and _agree(wanted.namespace, have.namespace)):
            return False
    elif (wanted.context, wanted.namespace) != (have.context, have.namespace):
        return False
    # A fixed port wanted is that port: a forward on a free port is another one, unless it
    # got that very port (`have` of a running forward holds the port it bound).
    if wanted.local_port and wanted.local_port != have.local_port:
        return False
    # Where both listen on a fixed port, they listen on the same addresses (one shared is
    # enough: the second could not bind it).
    return not (wanted.local_port and have.local_port) or bool(wanted.hosts & have.hosts)


def is_same_spec(
    wanted: ForwardSpec,
    have: ForwardSpec,
    *,
    context: str | None = None,
    namespace: str | None = None,
) -> bool:
    """Two specs (no engine state) are one forward; `context`/`namespace` are the defaults
    both were made with."""
    return same(
        identity(wanted, context=context, namespace=namespace),
        identity(have, context=context, namespace=namespace),
        resolved=False,
    )


def find_running(
    wanted: ForwardSpec,
    snapshots: Iterable[ForwardSnapshot],
    *,
    context: str | None = None,
    namespace: str | None = None,
) -> ForwardSnapshot | None:
    """The engine's forward that `wanted` is, else None. Of several, the one of the same
    name first (a label agreeing), then the first in the engine's order."""
    me = identity(wanted, context=context, namespace=namespace)
    found = [s for s in snapshots if same(me, running_identity(s))]
    named = [s for s in found if wanted.name and s.spec.name == wanted.name]
    best = named or found
    return best[0] if best else None


def name_clash(
    wanted: ForwardSpec,
    snapshots: Iterable[ForwardSnapshot],
    *,
    context: str | None = None,
    namespace: str | None = None,
) -> ForwardSnapshot | None:
    """A forward of another target that carries `wanted`'s name (names are labels: never a
    match, but the engine keeps one forward per name)."""
    if not wanted.name:
        return None
    me = identity(wanted, context=context, namespace=namespace)
    for snap in snapshots:
        if snap.spec.name == wanted.name and not same(me, running_identity(snap)):
            return snap
    return None


def clash_line(wanted: ForwardSpec, other: ForwardSnapshot) -> str:
    """The one line that says a name is taken by another forward."""
    them = running_identity(other).describe()
    me = identity(wanted).describe()
    return (
        f"{wanted.name}: the name is already used by forward {other.id} for {them}, "
        f"not {me}; not started (rename one of them)"
    )


def split_running(
    wanted: Iterable[ForwardSpec],
    snapshots: Iterable[ForwardSnapshot],
    *,
    context: str | None = None,
    namespace: str | None = None,
) -> tuple[
    list[tuple[ForwardSpec, ForwardSnapshot]],
    list[tuple[ForwardSpec, ForwardSnapshot]],
    list[ForwardSpec],
]:
    """Sort the forwards a profile or group would start: (those the engine has already,
    with its forward), (those whose name another forward carries, with it), the rest. Each
    engine forward stands for one wanted forward at most, and the rest holds no two of one
    identity (a profile listing a forward twice starts it once)."""
    snaps = list(snapshots)
    taken: set[str] = set()
    there: list[tuple[ForwardSpec, ForwardSnapshot]] = []
    clashes: list[tuple[ForwardSpec, ForwardSnapshot]] = []
    rest: list[ForwardSpec] = []
    for spec in wanted:
        free = [s for s in snaps if s.id not in taken]
        snap = find_running(spec, free, context=context, namespace=namespace)
        if snap is not None:
            taken.add(snap.id)
            there.append((spec, snap))
            continue
        other = name_clash(spec, snaps, context=context, namespace=namespace)
        if other is not None:
            clashes.append((spec, other))
        elif not any(is_same_spec(spec, r, context=context, namespace=namespace) for r in rest):
            rest.append(spec)
    return there, clashes, rest


def port_names(name: str | None, mappings: Sequence[PortMapping]) -> list[str | None]:
    """The names of one forward per port: NAME for one port, else NAME-REMOTE, or NAME-LOCAL
    where two ports forward to one remote port (`19103:80 19104:80`), else NAME-1, NAME-2.
    Unique, so a command never refuses its own second forward's name."""
    if not name:
        return [None] * len(mappings)
    if len(mappings) == 1:
        return [name]
    remote = [str(m.remote) for m in mappings]
    local = [str(m.local_port or "") for m in mappings]
    for labels in (remote, local):
        if all(labels) and len(set(labels)) == len(labels):
            return [f"{name}-{label}" for label in labels]
    return [f"{name}-{i}" for i in range(1, len(mappings) + 1)]
