"""Parsing of what the user types: `TYPE/NAME` targets and `[LOCAL:]REMOTE` port mappings.

The rules follow `kubectl port-forward` (kubectl's names for the target's kind, from the one
table of kinds, `portfwd.kube.kinds`; client-go's `parsePorts` and kubectl's `splitPort` for
ports), so a command line that works with kubectl works here. Parsing is pure: no cluster
access. Every failure is an :class:`InputError` whose one-line message quotes the input and
shows the expected form.

Ports:

- `8080:80`   local 8080 -> remote 80
- `80`        local 80 -> remote 80 (the same number on both sides)
- `:80`       a free local port (0) -> remote 80; `0:80` means the same, as in kubectl
- `8443:https` local 8443 -> the remote port named `https` (service port name for a Service,
  container port name for a pod)
- `https`     the remote port named `https`; the local port is the port number that name
  resolves to, as kubectl does (for a Service: the *service* port number, for a pod: the
  container port number). This is unknown until resolution, so the mapping carries
  `local_port=0, local_from_remote=True` and :func:`portfwd.kube.resolve.local_port_for`
  supplies the number afterwards.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from portfwd.errors import InputError
from portfwd.kube import kinds
from portfwd.safetext import escape_controls

_ACCEPTED = kinds.accepted_prefixes()

# DNS-1123 subdomain: what pods, services and workloads may be named (services are stricter,
# the API server enforces that; we only need to catch typos and garbage early).
_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NAME_MAX = 253

# IANA_SVC_NAME: what a port may be named (Kubernetes validation.IsValidPortName).
_PORT_NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_PORT_NAME_MAX = 15

_DIGITS_RE = re.compile(r"[0-9]+")


def printable(text: str) -> str:
    """`text` with control characters escaped, so input quoted in a message stays one line
    (the one escaping style of portfwd: see `portfwd.safetext`)."""
    return escape_controls(text)


def quote(text: str) -> str:
    """Quote user input for a one-line message: control characters escaped, JSON style."""
    return printable(json.dumps(text, ensure_ascii=False))


_PORT_FORM = "expected [LOCAL:]REMOTE, e.g. 8080:80, 80, :80 or 8443:https"


@dataclass(frozen=True)
class Target:
    """What to forward to: a target kind's name (`portfwd.kube.kinds`) and an object name."""

    kind: str
    name: str

    def __str__(self) -> str:
        """`svc/web`: kubectl's short name, as portfwd writes targets back."""
        try:
            return kinds.by_name(self.kind).label(self.name)
        except ValueError:  # not a kind portfwd knows (resolution says so)
            return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class PortMapping:
    """One `[LOCAL:]REMOTE` pair.

    `local_port` 0 means "pick a free port", unless `local_from_remote` is set: then the user
    typed only a port *name* and the local port is the number that name resolves to (see the
    module docstring and :func:`portfwd.kube.resolve.local_port_for`).
    """

    local_port: int
    remote: int | str
    local_from_remote: bool = False

    def __str__(self) -> str:
        if self.local_from_remote or (
            isinstance(self.remote, int) and self.local_port == self.remote
        ):
            return str(self.remote)
        local = str(self.local_port) if self.local_port else ""
        return f"{local}:{self.remote}"


def is_valid_name(name: str) -> bool:
    return len(name) <= _NAME_MAX and _NAME_RE.fullmatch(name) is not None


def is_valid_port_name(name: str) -> bool:
    """Kubernetes' IANA_SVC_NAME rule: <= 15 chars, [a-z0-9-], a letter, no '--', no edge '-'."""
    return (
        len(name) <= _PORT_NAME_MAX
        and _PORT_NAME_RE.fullmatch(name) is not None
        and "--" not in name
        and any("a" <= c <= "z" for c in name)
    )


def parse_target(text: str) -> Target:
    """`TYPE/NAME` or a bare pod `NAME`, with kubectl's type aliases (case-insensitive)."""
    stripped = text.strip()
    if not stripped:
        raise InputError("missing target: expected TYPE/NAME (e.g. svc/web) or a pod name")
    if "/" in stripped:
        raw_kind, _, name = stripped.partition("/")
        found = kinds.target_kind(raw_kind)
        if found is None:
            raise InputError(
                f"unknown target type {quote(raw_kind)} in {quote(stripped)}: "
                f"use one of {_ACCEPTED} or a bare pod name"
            )
    else:
        found, name = kinds.POD, stripped
    if not name:
        raise InputError(
            f"missing name in target {quote(stripped)}: expected TYPE/NAME, e.g. svc/web"
        )
    if not is_valid_name(name):
        raise InputError(
            f"invalid name {quote(name)} in target {quote(stripped)}: names use lowercase letters,"
            " digits, '-' and '.', and start and end with a letter or digit"
        )
    return Target(kind=found.name, name=name)


def _port_number(part: str, text: str, side: str, *, allow_zero: bool) -> int:
    # Bounded before int(): a 5000-digit string would trip Python's int-conversion limit.
    significant = part.lstrip("0") or "0"
    value = int(significant) if len(significant) <= 5 else 65536
    if value > 65535 or (value == 0 and not allow_zero):
        low = 0 if allow_zero else 1
        raise InputError(
            f"invalid {side} port {quote(part)} in {quote(text)}: "
            f"ports are {low}..65535; {_PORT_FORM}"
        )
    return value


def _remote(part: str, text: str) -> int | str:
    if _DIGITS_RE.fullmatch(part):
        return _port_number(part, text, "remote", allow_zero=False)
    if is_valid_port_name(part):
        return part
    if not part:
        raise InputError(f"missing remote port in {quote(text)}: {_PORT_FORM}")
    raise InputError(
        f"invalid remote port {quote(part)} in {quote(text)}: a number 1..65535 or a port name"
        f" (up to 15 lowercase letters, digits and '-'); {_PORT_FORM}"
    )


def parse_port_mapping(text: str) -> PortMapping:
    """`8080:80`, `80`, `:80`, `0:80`, `8443:https` or `https`, as kubectl accepts them."""
    stripped = text.strip()
    if not stripped:
        raise InputError(f"missing port: {_PORT_FORM}")
    parts = stripped.split(":")
    if len(parts) > 2:
        raise InputError(f"invalid port {quote(stripped)}: {_PORT_FORM}")
    if len(parts) == 1:
        remote = _remote(parts[0], stripped)
        if isinstance(remote, int):
            return PortMapping(local_port=remote, remote=remote)
        return PortMapping(local_port=0, remote=remote, local_from_remote=True)
    local_part, remote_part = parts
    if local_part == "":
        local = 0
    elif _DIGITS_RE.fullmatch(local_part):
        local = _port_number(local_part, stripped, "local", allow_zero=True)
    else:
        raise InputError(
            f"invalid local port {quote(local_part)} in {quote(stripped)}: "
            f"a number 0..65535 or nothing (a free port); {_PORT_FORM}"
        )
    return PortMapping(local_port=local, remote=_remote(remote_part, stripped))
