"""Checking a parsed `profiles.yaml` and building its profiles, with every problem located.

The input is ruamel.yaml's round-trip tree (mappings and lists that remember the line and
column of each key and item). Every problem becomes a :class:`ProfileProblem` at the place
to fix (`profiles.yaml:14:7: unknown key "namspace" (did you mean "namespace"?)`); all of
them are collected, not only the first, and a profile with a problem is left out while the
others are kept. Pure apart from `known_contexts`, the caller's way to list a kubeconfig's
contexts (None: it could not be read, so contexts are not checked).
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from portfwd.engine.model import NAME_RE
from portfwd.engine.probe_spec import DEFAULT_PROBE_INTERVAL, interval_from, parse_probe
from portfwd.errors import InputError
from portfwd.humanize import parse_duration
from portfwd.kube.targets import is_valid_name, parse_port_mapping, parse_target, quote
from portfwd.store.profiles_model import (
    Defaults,
    Profile,
    ProfileForward,
    ProfileNamespace,
    ProfileProblem,
    ProfilesFile,
)
from portfwd.tunnel.addresses import parse_addresses

SCHEMA_VERSION = 1
TOP_KEYS = ("version", "profiles")
PROFILE_KEYS = ("description", "defaults", "forwards", "namespaces", "groups")
DEFAULTS_KEYS = ("kubeconfig", "context", "namespace", "address")
FORWARD_KEYS = (
    "name",
    "target",
    "ports",
    "context",
    "namespace",
    "address",
    "reconnect",
    "kubeconfig",
    "spread",
    "probe",
    "probe_interval",
    "lazy",
    "idle_after",
    "idle_stop",
    "http_log",
)
NAMESPACE_KEYS = ("namespace", "context", "kubeconfig", "selector", "exclude")
_NAME_RULE = "up to 63 letters, digits, '.', '_' and '-', starting with a letter or digit"

KnownContexts = Callable[[str | None], list[str] | None]


def _pos(
    node: Any, key: Any = None, *, item: int | None = None, value: bool = False
) -> tuple[int, int]:
    """1-based (line, column) of a mapping's key (or its value), a list's item, or a node."""
    lc = getattr(node, "lc", None)
    if lc is None:
        return (1, 1)
    try:
        if item is not None:
            line, col = lc.item(item)
        elif key is not None:
            line, col = lc.value(key) if value else lc.key(key)
        else:
            line, col = lc.line, lc.col
    except (KeyError, IndexError, TypeError, AttributeError):
        line, col = lc.line or 0, lc.col or 0
    return (int(line) + 1, int(col) + 1)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    return "text"


def did_you_mean(word: str, known: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {quote(close[0])}?)" if close else ""


@dataclass
class _Place:
    """Where a value that applies to a forward was written (for messages about it)."""

    node: Any
    key: str


class Checker:
    def __init__(self, path: str, known_contexts: KnownContexts | None = None) -> None:
        self.path = path
        self.known_contexts = known_contexts
        self.problems: list[ProfileProblem] = []
        self._contexts: dict[str | None, list[str] | None] = {}
        self._profile: str | None = None
        self._context_reported: set[tuple[int, int]] = set()

    # -- reporting ---------------------------------------------------------------------------

    def problem(self, where: tuple[int, int], message: str) -> None:
        self.problems.append(
            ProfileProblem(self.path, where[0], where[1], message, profile=self._profile)
        )

    def _unknown_keys(self, node: Any, known: tuple[str, ...], what: str) -> None:
        for key in node:
            if key not in known:
                shown = quote(str(key))
                hint = did_you_mean(str(key), known) or f" ({what} takes {', '.join(known)})"
                self.problem(_pos(node, key), f"unknown key {shown}{hint}")

    def _text(self, node: Any, key: str, what: str) -> str | None:
        """An optional, non-empty text value."""
        if key not in node or node[key] is None:
            return None
        value = node[key]
        if not isinstance(value, str) or not value.strip():
            self.problem(
                _pos(node, key, value=True), f"{what} must be non-empty text, not {_kind(value)}"
            )
            return None
        return value.strip()

    def _duration(self, node: Any, key: str) -> float | None:
        """An optional duration such as 10m or 1h30m (lazy forwards' idle_after, idle_stop)."""
        if node.get(key) is None:
            return None
        value = node[key]
        try:
            if not isinstance(value, str):
                raise InputError(f"{_kind(value)} is not a duration")
            return parse_duration(value)
        except InputError as exc:
            self.problem(
                _pos(node, key, value=True), f"{key} must be a duration such as 10m: {exc}"
            )
            return None

    def _namespace(self, node: Any) -> str | None:
        ns = self._text(node, "namespace", "namespace")
        if ns is not None and not is_valid_name(ns):
            self.problem(
                _pos(node, "namespace", value=True),
                f"invalid namespace {quote(ns)}: lowercase letters, digits and '-'",
            )
            return None
        return ns

    def _address(self, node: Any) -> tuple[str, ...] | None:
        if "address" not in node or node["address"] is None:
            return None
        raw = node["address"]
        where = _pos(node, "address", value=True)
        if isinstance(raw, str):
            items = [a.strip() for a in raw.split(",") if a.strip()]
        elif isinstance(raw, list) and all(isinstance(a, str) for a in raw):
            items = [a.strip() for a in raw if a.strip()]
        else:
            self.problem(where, f"address must be text or a list of text, not {_kind(raw)}")
            return None
        try:
            parse_addresses(items)
        except InputError as exc:
            self.problem(where, str(exc).replace("--address", "address:"))
            return None
        return tuple(items)

    # -- the file ----------------------------------------------------------------------------

    def check_file(self, doc: Any) -> ProfilesFile:
        result = ProfilesFile(path=self.path)
        if doc is None:
            return result
        if not isinstance(doc, dict):
            self.problem(
                _pos(doc), f"the file must be a mapping with `profiles:`, not {_kind(doc)}"
            )
            result.problems = self.problems
            return result
        self._unknown_keys(doc, TOP_KEYS, "the file")
        version = doc.get("version", SCHEMA_VERSION)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            self.problem(_pos(doc, "version", value=True), "version must be 1")
        elif version > SCHEMA_VERSION:
            self.problem(
                _pos(doc, "version", value=True),
                f"written for a newer portfwd (version {version}); this one reads version "
                f"{SCHEMA_VERSION}: upgrade portfwd",
            )
            result.problems = self.problems
            return result
        profiles = doc.get("profiles")
        if profiles is None:
            result.problems = self.problems
            return result
        if not isinstance(profiles, dict):
            self.problem(
                _pos(doc, "profiles", value=True),
                f"profiles must be a mapping of profile names, not {_kind(profiles)}",
            )
            result.problems = self.problems
            return result
        for name, body in profiles.items():
            before = len(self.problems)
            self._profile = str(name)
            result.order.append(str(name))
            profile = self.check_profile(profiles, name, body)
            self._profile = None
            if profile is not None and len(self.problems) == before:
                result.profiles[profile.name] = profile
            else:
                result.broken.append(str(name))
        self.problems.sort(key=lambda p: (p.line, p.column))  # in file order (stable)
        result.problems = self.problems
        return result

    # -- one profile -------------------------------------------------------------------------

    def check_profile(self, parent: Any, name: Any, body: Any) -> Profile | None:
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            self.problem(_pos(parent, name), f"profile name {quote(str(name))}: {_NAME_RULE}")
            return None
        if body is None:
            body = {}
        if not isinstance(body, dict):
            self.problem(
                _pos(parent, name, value=True),
                f"profile {quote(name)} must be a mapping (description, defaults, forwards, "
                f"namespaces, groups), not {_kind(body)}",
            )
            return None
        self._unknown_keys(body, PROFILE_KEYS, "a profile")
        description = body.get("description") or ""
        if not isinstance(description, str):
            self.problem(_pos(body, "description", value=True), "description must be text")
            description = ""
        defaults = self._defaults(body)
        forwards = self._forwards(body, defaults)
        namespaces = self._namespaces(body, defaults)
        groups = self._groups(body, forwards)
        profile = Profile(
            name=name,
            description=description.strip(),
            defaults=defaults,
            forwards=tuple(f for f, _ in forwards),
            groups=groups,
            namespaces=tuple(namespaces),
        )
        self._check_specs(profile, forwards)
        return profile

    def _defaults(self, body: Any) -> Defaults:
        node = body.get("defaults")
        if node is None:
            return Defaults()
        if not isinstance(node, dict):
            self.problem(_pos(body, "defaults", value=True), "defaults must be a mapping")
            return Defaults()
        self._unknown_keys(node, DEFAULTS_KEYS, "defaults")
        defaults = Defaults(
            kubeconfig=self._text(node, "kubeconfig", "kubeconfig"),
            context=self._text(node, "context", "context"),
            namespace=self._namespace(node),
            address=self._address(node),
        )
        if defaults.context is not None:
            self._check_context(defaults.context, defaults.kubeconfig, _Place(node, "context"))
        return defaults

    def _forwards(self, body: Any, defaults: Defaults) -> list[tuple[ProfileForward, Any]]:
        node = body.get("forwards")
        if node is None:
            return []
        if not isinstance(node, list):
            self.problem(_pos(body, "forwards", value=True), "forwards must be a list")
            return []
        found: list[tuple[ProfileForward, Any]] = []
        names: dict[str, tuple[int, int]] = {}
        for i, entry in enumerate(node):
            fwd = self._forward(node, i, entry, defaults)
            if fwd is None:
                continue
            if fwd.name in names:
                line = names[fwd.name][0]
                self.problem(
                    _pos(entry, "name", value=True),
                    f"forward name {quote(fwd.name)} is used twice in this profile (also line "
                    f"{line}); give each forward its own name",
                )
                continue
            names[fwd.name] = _pos(entry, "name", value=True)
            found.append((fwd, entry))
        return found

    def _forward(self, seq: Any, i: int, entry: Any, defaults: Defaults) -> ProfileForward | None:
        if not isinstance(entry, dict):
            self.problem(
                _pos(seq, item=i),
                f"a forward must be a mapping (name, target, ports, ...), not {_kind(entry)}",
            )
            return None
        before = len(self.problems)
        self._unknown_keys(entry, FORWARD_KEYS, "a forward")
        for key in ("name", "target", "ports"):
            if entry.get(key) is None:
                self.problem(_pos(entry), f"this forward has no {key}")
        name = self._text(entry, "name", "name")
        if name is not None and not NAME_RE.fullmatch(name):
            self.problem(
                _pos(entry, "name", value=True), f"forward name {quote(name)}: {_NAME_RULE}"
            )
        target = self._text(entry, "target", "target")
        if target is not None:
            try:
                parse_target(target)
            except InputError as exc:
                self.problem(_pos(entry, "target", value=True), str(exc))
        ports = self._ports(entry)
        reconnect = entry.get("reconnect", True)
        if not isinstance(reconnect, bool):
            self.problem(
                _pos(entry, "reconnect", value=True),
                f"reconnect must be true or false, not {quote(str(reconnect))}",
            )
        spread = entry.get("spread", False)
        if not isinstance(spread, bool):
            self.problem(
                _pos(entry, "spread", value=True),
                f"spread must be true or false, not {quote(str(spread))}",
            )
        elif spread and target is not None and _is_pod(target):
            self.problem(
                _pos(entry, "spread", value=True),
                f"spread needs several pods behind the target; {quote(target)} is one pod",
            )
        probe, probe_interval = self._probe(entry)
        lazy = entry.get("lazy", False)
        if not isinstance(lazy, bool):
            self.problem(
                _pos(entry, "lazy", value=True),
                f"lazy must be true or false, not {quote(str(lazy))}",
            )
        idle_after, idle_stop = (
            self._duration(entry, "idle_after"),
            self._duration(entry, "idle_stop"),
        )
        http_log = entry.get("http_log", False)
        if not isinstance(http_log, bool):
            self.problem(
                _pos(entry, "http_log", value=True),
                f"http_log must be true or false, not {quote(str(http_log))}",
            )
        fwd_context = self._text(entry, "context", "context")
        kubeconfig = self._text(entry, "kubeconfig", "kubeconfig")
        namespace = self._namespace(entry)
        address = self._address(entry)
        if fwd_context is not None:
            self._check_context(
                fwd_context, kubeconfig or defaults.kubeconfig, _Place(entry, "context")
            )
        if len(self.problems) != before or name is None or target is None or not ports:
            return None
        return ProfileForward(
            name=name,
            target=target,
            ports=ports,
            context=fwd_context,
            namespace=namespace,
            address=address,
            reconnect=bool(reconnect),
            kubeconfig=kubeconfig,
            spread=bool(spread),
            probe=probe,
            probe_interval=probe_interval,
            lazy=lazy is True,
            idle_after=idle_after,
            idle_stop=idle_stop,
            http_log=bool(http_log),
        )

    def _probe(self, entry: Any) -> tuple[str, float]:
        """`probe:` and `probe_interval:` of a forward (issue 19 §1), each checked as the
        command line checks --probe and --probe-interval."""
        text, interval = "", DEFAULT_PROBE_INTERVAL
        raw = entry.get("probe")
        if raw is not None:
            try:
                probe = parse_probe(raw if isinstance(raw, str) else repr(raw))
                text = probe.text if probe is not None else ""
            except InputError as exc:
                self.problem(_pos(entry, "probe", value=True), str(exc))
        raw_interval = entry.get("probe_interval")
        if raw_interval is not None:
            try:
                interval = interval_from(raw_interval)
            except InputError as exc:
                self.problem(_pos(entry, "probe_interval", value=True), str(exc))
        return text, interval

    def _namespaces(self, body: Any, defaults: Defaults) -> list[ProfileNamespace]:
        node = body.get("namespaces")
        if node is None:
            return []
        if not isinstance(node, list):
            self.problem(_pos(body, "namespaces", value=True), "namespaces must be a list")
            return []
        found: list[ProfileNamespace] = []
        seen: dict[tuple[str | None, str], int] = {}
        for i, entry in enumerate(node):
            if not isinstance(entry, dict):
                self.problem(
                    _pos(node, item=i),
                    "a namespaces entry must be a mapping (namespace, context, selector, "
                    f"exclude), not {_kind(entry)}",
                )
                continue
            one = self._namespace_entry(entry, defaults)
            if one is None:
                continue
            key = (one.context or defaults.context, one.namespace)
            where = _pos(entry, "namespace", value=True)
            if key in seen:
                self.problem(
                    where,
                    f"namespace {quote(one.namespace)} is listed twice (also line "
                    f"{seen[key]}); merge the two entries",
                )
                continue
            seen[key] = where[0]
            found.append(one)
        return found

    def _namespace_entry(self, entry: Any, defaults: Defaults) -> ProfileNamespace | None:
        before = len(self.problems)
        self._unknown_keys(entry, NAMESPACE_KEYS, "a namespaces entry")
        if entry.get("namespace") is None:
            self.problem(_pos(entry), "this namespaces entry has no namespace")
        namespace = self._namespace(entry)
        context = self._text(entry, "context", "context")
        kubeconfig = self._text(entry, "kubeconfig", "kubeconfig")
        selector = self._text(entry, "selector", "selector")
        exclude = self._exclude(entry)
        if context is not None:
            self._check_context(
                context, kubeconfig or defaults.kubeconfig, _Place(entry, "context")
            )
        if len(self.problems) != before or namespace is None or exclude is None:
            return None
        return ProfileNamespace(namespace, context, kubeconfig, selector, exclude)

    def _exclude(self, entry: Any) -> tuple[str, ...] | None:
        """Service names left out: a name or a list of names (None: a problem)."""
        raw = entry.get("exclude")
        if raw is None:
            return ()
        if isinstance(raw, str):
            items = [(raw, _pos(entry, "exclude", value=True))]
        elif isinstance(raw, list):
            items = [(v, _pos(raw, item=i)) for i, v in enumerate(raw)]
        else:
            self.problem(
                _pos(entry, "exclude", value=True),
                f"exclude must be a Service name or a list of them, not {_kind(raw)}",
            )
            return None
        names: list[str] = []
        ok = True
        for value, where in items:
            if not isinstance(value, str) or not is_valid_name(value.strip()):
                self.problem(where, f"exclude: {quote(str(value))} is not a Service name")
                ok = False
                continue
            names.append(value.strip())
        return tuple(names) if ok else None

    def _ports(self, entry: Any) -> tuple[str, ...]:
        raw = entry.get("ports")
        if raw is None:
            return ()
        items: list[tuple[Any, tuple[int, int]]]
        if isinstance(raw, list):
            items = [(p, _pos(raw, item=i)) for i, p in enumerate(raw)]
            if not items:
                self.problem(_pos(entry, "ports", value=True), "ports is empty; give at least one")
        else:
            items = [(raw, _pos(entry, "ports", value=True))]
        ports: list[str] = []
        for value, where in items:
            if isinstance(value, bool) or not isinstance(value, str | int):
                self.problem(where, f'a port must be text such as "8080:80", not {_kind(value)}')
                continue
            text = str(value).strip()
            try:
                mapping = parse_port_mapping(text)
            except InputError as exc:
                self.problem(where, str(exc))
                continue
            if mapping.local_from_remote:
                self.problem(
                    where,
                    f"give a local port for the named remote port {quote(text)} "
                    f'(e.g. "8443:{text}", or ":{text}" for a free one)',
                )
                continue
            ports.append(text)
        return tuple(ports)

    def _groups(
        self, body: Any, forwards: list[tuple[ProfileForward, Any]]
    ) -> dict[str, tuple[str, ...]]:
        node = body.get("groups")
        if node is None:
            return {}
        if not isinstance(node, dict):
            self.problem(
                _pos(body, "groups", value=True),
                "groups must be a mapping of group names to lists of forward names",
            )
            return {}
        known = [f.name for f, _ in forwards]
        groups: dict[str, tuple[str, ...]] = {}
        for group, members in node.items():
            if not isinstance(group, str) or not NAME_RE.fullmatch(group):
                self.problem(_pos(node, group), f"group name {quote(str(group))}: {_NAME_RULE}")
                continue
            if isinstance(members, str):
                members_list: list[Any] = [members]
                places = [_pos(node, group, value=True)]
            elif isinstance(members, list):
                members_list = list(members)
                places = [_pos(members, item=i) for i in range(len(members))]
            else:
                self.problem(
                    _pos(node, group, value=True),
                    f"group {quote(group)} must be a list of forward names, not {_kind(members)}",
                )
                continue
            names: list[str] = []
            for member, where in zip(members_list, places, strict=True):
                if not isinstance(member, str) or member not in known:
                    shown = quote(str(member))
                    hint = did_you_mean(str(member), known) or (
                        f"; its forwards are {', '.join(known)}" if known else "; it has none"
                    )
                    self.problem(
                        where,
                        f"group {quote(group)} names {shown}, which is not a forward of this "
                        f"profile{hint}",
                    )
                    continue
                if member not in names:
                    names.append(member)
            groups[group] = tuple(names)
        return groups

    # -- across forwards ---------------------------------------------------------------------

    def _check_context(self, context: str, kubeconfig: str | None, place: _Place) -> None:
        if self.known_contexts is None:
            return
        if kubeconfig not in self._contexts:
            self._contexts[kubeconfig] = self.known_contexts(kubeconfig)
        known = self._contexts[kubeconfig]
        if known is None or context in known:
            return
        where = _pos(place.node, place.key, value=True)
        if where in self._context_reported:
            return
        self._context_reported.add(where)
        config = f"kubeconfig {quote(kubeconfig)}" if kubeconfig else "the kubeconfig"
        listed = ", ".join(known) if known else "none"
        self.problem(
            where,
            f"unknown context {quote(context)}{did_you_mean(context, known)}: "
            f"{config} has {listed}",
        )

    def _check_specs(self, profile: Profile, forwards: list[tuple[ProfileForward, Any]]) -> None:
        """What only the built specs show: engine names and local ports used twice."""
        nodes = {f.name: node for f, node in forwards}
        seen_names: dict[str, str] = {}
        listening: list[tuple[str, int, str, str]] = []  # (host, port, forward, spec name)
        try:
            built = profile.specs()
        except InputError as exc:  # a checked forward never gets here; a safety net
            self.problem(_pos(nodes.get(profile.forwards[0].name)), str(exc))
            return
        index: dict[str, int] = {}
        for fwd, spec in built:
            node = nodes[fwd.name]
            nth = index[fwd.name] = index.get(fwd.name, -1) + 1  # which of its ports
            assert spec.name is not None
            other = seen_names.get(spec.name)
            if other is not None and other != fwd.name:
                self.problem(
                    _pos(node, "name", value=True),
                    f"forward {quote(fwd.name)} is run as {quote(spec.name)}, the name of "
                    f"forward {quote(other)} too; rename one",
                )
            seen_names[spec.name] = fwd.name
            if not spec.local_port:
                continue
            hosts = [a.host for a in parse_addresses(spec.addresses)]
            for host, port, owner, other_spec in listening:
                if port == spec.local_port and other_spec != spec.name and _overlap(host, hosts):
                    self.problem(
                        self._port_place(node, nth),
                        f"forward {quote(fwd.name)} listens on {_host_port(host, port)}, as "
                        + (
                            f"forward {quote(owner)} does"
                            if owner != fwd.name
                            else "it already does"
                        )
                        + "; give one of them another local port",
                    )
                    break
            listening.extend((h, spec.local_port, fwd.name, spec.name) for h in hosts)

    def _port_place(self, node: Any, nth: int) -> tuple[int, int]:
        """Where the forward's `nth` port is written (a checked list has every one)."""
        raw = node.get("ports")
        if isinstance(raw, list) and nth < len(raw):
            return _pos(raw, item=nth)
        return _pos(node, "ports", value=True)


def _overlap(host: str, hosts: list[str]) -> bool:
    """Does listening on `host` clash with listening on any of `hosts` (the same port)?"""
    a = ipaddress.ip_address(host)
    for other in hosts:
        b = ipaddress.ip_address(other)
        if a == b:
            return True
        if a.version == b.version and (a.is_unspecified or b.is_unspecified):
            return True
    return False


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_pod(target: str) -> bool:
    try:
        return parse_target(target).kind == "pod"
    except InputError:
        return False  # reported as the target's problem
