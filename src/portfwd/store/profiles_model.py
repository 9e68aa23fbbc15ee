"""Profiles as values: what a `profiles.yaml` holds once it has been checked.

A :class:`Profile` is a named, saved set of forwards with optional defaults and groups
(named subsets; a forward may be in several). Each :class:`ProfileForward` is written the
way kubectl takes it (a target, ports such as ``"8080:80"`` or ``":http"``), and
:meth:`Profile.specs` turns them into the engine's :class:`ForwardSpec` values, one per
port, with the defaults applied (the forward's own value, then the profile's defaults, then
the command line's, then the kubeconfig's). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from portfwd.engine.identity import is_same_spec, port_names
from portfwd.engine.model import IDLE_AFTER, ForwardSpec
from portfwd.engine.probe_spec import DEFAULT_PROBE_INTERVAL
from portfwd.kube.targets import parse_port_mapping

DEFAULT_ADDRESSES: tuple[str, ...] = ("localhost",)


@dataclass(frozen=True)
class Defaults:
    """What a profile's forwards use when they do not say (None: not set)."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    address: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ProfileForward:
    """One entry of a profile's `forwards:` list."""

    name: str
    target: str
    ports: tuple[str, ...]  # as kubectl writes them: "8080:80", "80", ":http", "8443:https"
    context: str | None = None
    namespace: str | None = None
    address: tuple[str, ...] | None = None
    reconnect: bool = True
    kubeconfig: str | None = None
    spread: bool = False  # new connections over every Ready pod (see ForwardSpec.spread)
    probe: str = ""  # "tcp" or "http:/PATH": is the pod's port answering (ForwardSpec.probe)
    probe_interval: float = DEFAULT_PROBE_INTERVAL
    lazy: bool = False  # tunnel on first use, closed when idle (see ForwardSpec.lazy)
    idle_after: float | None = None  # seconds; set: lazy (None: the default)
    idle_stop: float | None = None  # seconds without traffic before it stops (None: never)
    http_log: bool = False  # the HTTP request log (see ForwardSpec.http_log)

    def spec_names(self) -> list[str]:
        """The engine names of its forwards: NAME, or NAME-REMOTE for each of several ports
        (NAME-LOCAL where two share a remote port), as `portfwd add --name` names them."""
        mappings = [parse_port_mapping(p) for p in self.ports]
        return [label or self.name for label in port_names(self.name, mappings)]


@dataclass(frozen=True)
class ProfileNamespace:
    """One entry of a profile's `namespaces:` list: every Service of a namespace, as
    `portfwd ns NAMESPACE [--context C] [-l SELECTOR] [--exclude NAME...]` forwards them."""

    namespace: str
    context: str | None = None
    kubeconfig: str | None = None
    selector: str | None = None
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class Profile:
    name: str
    description: str = ""
    defaults: Defaults = field(default_factory=Defaults)
    forwards: tuple[ProfileForward, ...] = ()
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    namespaces: tuple[ProfileNamespace, ...] = ()

    def namespace_runs(
        self, *, kubeconfig: str | None = None, context: str | None = None
    ) -> list[ProfileNamespace]:
        """The `namespaces:` entries with the context and kubeconfig filled in as a
        forward's are (the entry's, the profile's defaults, the command line's)."""
        d = self.defaults
        return [
            ProfileNamespace(
                namespace=n.namespace,
                context=n.context or d.context or context,
                kubeconfig=n.kubeconfig or d.kubeconfig or kubeconfig,
                selector=n.selector,
                exclude=n.exclude,
            )
            for n in self.namespaces
        ]

    def forward(self, name: str) -> ProfileForward:
        """KeyError for an unknown name."""
        for fwd in self.forwards:
            if fwd.name == name:
                return fwd
        raise KeyError(name)

    def select(self, groups: Sequence[str] = ()) -> list[ProfileForward]:
        """The forwards of these groups (every forward when none is named), in the profile's
        order, each once. KeyError naming the first unknown group."""
        if not groups:
            return list(self.forwards)
        wanted: set[str] = set()
        for group in groups:
            if group not in self.groups:
                raise KeyError(group)
            wanted.update(self.groups[group])
        return [f for f in self.forwards if f.name in wanted]

    def specs(
        self,
        groups: Sequence[str] = (),
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        namespace: str | None = None,
    ) -> list[tuple[ProfileForward, ForwardSpec]]:
        """One ForwardSpec per port of each selected forward, with its profile forward.

        `kubeconfig`, `context`, `namespace`: the command line's, used where neither the
        forward nor the profile's defaults give one. Raises InputError for a value the
        engine refuses (a checked profile has none) and KeyError for an unknown group."""
        return [
            (fwd, spec)
            for fwd in self.select(groups)
            for spec in self._specs_of(
                fwd, kubeconfig=kubeconfig, context=context, namespace=namespace
            )
        ]

    def specs_of(
        self,
        fwd: ProfileForward,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        namespace: str | None = None,
    ) -> list[ForwardSpec]:
        """`fwd`'s specs, one per port, with the defaults applied (see `specs`)."""
        return list(
            self._specs_of(fwd, kubeconfig=kubeconfig, context=context, namespace=namespace)
        )

    def _specs_of(
        self,
        fwd: ProfileForward,
        *,
        kubeconfig: str | None,
        context: str | None,
        namespace: str | None,
    ) -> Iterable[ForwardSpec]:
        d = self.defaults
        addresses = fwd.address or d.address or DEFAULT_ADDRESSES
        for port, name in zip(fwd.ports, fwd.spec_names(), strict=True):
            mapping = parse_port_mapping(port)
            yield ForwardSpec(
                target=fwd.target,
                remote_port=mapping.remote,
                local_port=mapping.local_port,
                namespace=fwd.namespace or d.namespace or namespace,
                context=fwd.context or d.context or context,
                kubeconfig=fwd.kubeconfig or d.kubeconfig or kubeconfig,
                addresses=addresses,
                reconnect=fwd.reconnect,
                name=name,
                spread=fwd.spread,
                probe=fwd.probe,
                probe_interval=fwd.probe_interval,
                lazy=fwd.lazy or fwd.idle_after is not None,
                idle_after=fwd.idle_after or IDLE_AFTER,
                idle_stop=fwd.idle_stop or 0.0,
                http_log=fwd.http_log,
            )


@dataclass(frozen=True)
class ProfileProblem:
    """One thing wrong in a profiles file, where it is (1-based line and column)."""

    path: str  # as shown to the user
    line: int
    column: int
    message: str
    profile: str | None = None  # the profile it is in (None: the file as a whole)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


@dataclass
class ProfilesFile:
    """What loading a profiles file gave: the profiles that checked out, and every problem.

    A profile with a problem is left out of `profiles`; the others are usable."""

    path: str
    profiles: dict[str, Profile] = field(default_factory=dict)
    problems: list[ProfileProblem] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)  # profiles left out for their problems
    existed: bool = True
    order: list[str] = field(default_factory=list)  # every profile's name, in file order

    @property
    def names(self) -> list[str]:
        """Every profile the file names, the broken ones too, in file order."""
        seen = [*self.order, *self.profiles, *self.broken]
        return list(dict.fromkeys(seen))


def _base_name(spec: ForwardSpec) -> str:
    if spec.name:
        return spec.name
    from portfwd.kube.targets import parse_target

    return f"{parse_target(spec.target).name}-{spec.remote_port}"[:63].rstrip(".-_")


def profile_from_specs(
    name: str, specs: Iterable[ForwardSpec], *, description: str = ""
) -> Profile:
    """A profile of these forwards (one port each), e.g. a session's; names are the specs'
    own, else TARGET-REMOTE, made unique with -2, -3 ... Addresses that are the default
    (`localhost`) are left out, as are contexts, namespaces and kubeconfigs not set."""
    return Profile(name=name, description=description, forwards=_forwards_of(specs, set()))


def add_specs(profile: Profile, specs: Iterable[ForwardSpec]) -> Profile:
    """`profile` with these forwards added after its own (names made unique against its
    forwards'); its description, defaults and groups stay. A forward it already has (the
    same forward by `engine/identity.py`, as the profile's defaults make it; the same local
    port too, so `:80` and `8080:80` are kept apart in the file) is not added twice."""
    have = [s for f in profile.forwards for s in profile.specs_of(f)]
    fresh: list[ForwardSpec] = []
    for spec in specs:
        (as_saved,) = _forwards_of([spec], set())
        mine = profile.specs_of(as_saved)
        if not any(_is_in(s, have) for s in mine):
            fresh.append(spec)
            have += mine
    new = _forwards_of(fresh, {f.name for f in profile.forwards})
    from dataclasses import replace

    return replace(profile, forwards=(*profile.forwards, *new))


def _is_in(spec: ForwardSpec, have: list[ForwardSpec]) -> bool:
    return any(is_same_spec(spec, h) and spec.local_port == h.local_port for h in have)


def profile_forward_specs(fwd: ProfileForward) -> list[ForwardSpec]:
    """One profile forward's specs, as a profile without defaults makes them."""
    return Profile(name="-", forwards=(fwd,)).specs_of(fwd)


def _forwards_of(specs: Iterable[ForwardSpec], used: set[str]) -> tuple[ProfileForward, ...]:
    from portfwd.kube.targets import PortMapping

    forwards: list[ProfileForward] = []
    for spec in specs:
        base = _base_name(spec)
        fname, n = base, 2
        while fname in used:
            fname = f"{base[:59]}-{n}"
            n += 1
        used.add(fname)
        port = str(PortMapping(local_port=spec.local_port, remote=spec.remote_port))
        forwards.append(
            ProfileForward(
                name=fname,
                target=spec.target,
                ports=(port,),
                context=spec.context,
                namespace=spec.namespace,
                address=None if spec.addresses == DEFAULT_ADDRESSES else spec.addresses,
                reconnect=spec.reconnect,
                kubeconfig=spec.kubeconfig,
                spread=spec.spread,
                probe=spec.probe,
                probe_interval=spec.probe_interval,
                lazy=spec.lazy,
                idle_after=spec.idle_after if spec.idle_after != IDLE_AFTER else None,
                idle_stop=spec.idle_stop or None,
                http_log=spec.http_log,
            )
        )
    return tuple(forwards)
