"""What an import found: the forwards it could read, and every entry it could not, with why.

An importer never drops an entry silently: each entry of the source becomes specs, a
:class:`Skipped` (the entry could not be imported; the reason says what to do), or both specs
and :class:`Note` lines (imported, but something of the source was not carried over, such as
kftray's hosts-file alias). Sources name where the entry was: `file:line` for text formats,
`file[index]` for a JSON array, `ns/pod` for cluster objects.

Generated names follow :data:`portfwd.engine.model.NAME_RE` and are unique in one import
(:class:`Names`): `web-80`, `web-80-2`, ...
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from portfwd.engine.model import NAME_RE, ForwardSpec
from portfwd.errors import PortfwdError
from portfwd.safetext import escape_controls

ENTRY_SHOWN_MAX = 160  # characters of an entry shown in a Skipped line


def shown_entry(text: str) -> str:
    """An entry's text for a message: one line, control characters escaped, bounded."""
    one_line = " ".join(text.split())
    if len(one_line) > ENTRY_SHOWN_MAX:
        one_line = one_line[: ENTRY_SHOWN_MAX - 3] + "..."
    return escape_controls(one_line)


@dataclass(frozen=True)
class Skipped:
    """An entry that was not imported. All three fields are safe to print (escaped)."""

    source: str  # file:line, file[index] or ns/name
    entry: str  # the entry's text, escaped and shortened
    reason: str  # why, and what to do instead

    @staticmethod
    def of(source: str, entry: str, reason: str) -> Skipped:
        return Skipped(escape_controls(source), shown_entry(entry), escape_controls(reason))

    def __str__(self) -> str:
        return f"{self.source}: skipped {self.entry}: {self.reason}"


@dataclass(frozen=True)
class Note:
    """Something of an imported entry that was not carried over, or was read a certain way."""

    source: str
    message: str

    @staticmethod
    def of(source: str, message: str) -> Note:
        return Note(escape_controls(source), escape_controls(message))

    def __str__(self) -> str:
        return f"{self.source}: note: {self.message}"


@dataclass
class Imported:
    specs: list[ForwardSpec] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    def extend(self, other: Imported) -> None:
        self.specs.extend(other.specs)
        self.skipped.extend(other.skipped)
        self.notes.extend(other.notes)


_NOT_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
NAME_MAX = 63


def name_base(text: str) -> str:
    """`text` made into a usable forward name (invalid characters become '-'); may be ''."""
    cleaned = _NOT_NAME_CHARS.sub("-", text).strip("-._")
    return cleaned[:NAME_MAX].rstrip("-._")


class Names:
    """Hands out forward names unique within one import (and apart from `taken`)."""

    def __init__(self, taken: set[str] | None = None) -> None:
        self._taken: set[str] = set(taken or ())

    def take(self, wanted: str) -> str:
        base = name_base(wanted) or "forward"
        if not NAME_RE.fullmatch(base):  # e.g. starting with '.' after cleaning
            base = "f-" + base
        candidate, n = base, 1
        while candidate in self._taken:
            n += 1
            suffix = f"-{n}"
            candidate = base[: NAME_MAX - len(suffix)] + suffix
        self._taken.add(candidate)
        return candidate


def generated_name(target: str, remote: int | str) -> str:
    """`svc/web`, 80 -> `web-80` (the target's name and the remote port)."""
    name = target.partition("/")[2] or target
    return f"{name}-{remote}"


@dataclass
class Exported:
    """An export: its text, the forwards the format cannot hold, and what it could not keep."""

    text: str
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


class Unreadable(PortfwdError):
    """The input as a whole cannot be read (not text, not JSON, not a list): exit 2."""


def _hosts(addresses: tuple[str, ...]) -> set[str]:
    hosts: set[str] = set()
    for a in addresses:
        hosts |= {"127.0.0.1", "::1"} if a.lower() == "localhost" else {a.strip("[]")}
    return hosts


def _overlap(a: set[str], b: set[str]) -> bool:
    if a & b:
        return True
    for wildcard, version in (("0.0.0.0", 4), ("::", 6)):
        for one, other in ((a, b), (b, a)):
            if wildcard in one and any(_version(h) == version for h in other):
                return True
    return False


def _version(host: str) -> int:
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return 0


def port_clashes(specs: list[ForwardSpec]) -> list[Note]:
    """A note for every two forwards that would listen on the same local address and port
    (0, a free port, never clashes)."""
    notes: list[Note] = []
    seen: list[tuple[ForwardSpec, set[str]]] = []
    for spec in specs:
        if not spec.local_port:
            continue
        hosts = _hosts(spec.addresses)
        for other, other_hosts in seen:
            if other.local_port == spec.local_port and _overlap(hosts, other_hosts):
                notes.append(
                    Note.of(
                        spec.name or spec.target,
                        f"listens on local port {spec.local_port} as {other.name or other.target}"
                        " does: only one of them can run at a time; change one local port",
                    )
                )
                break
        seen.append((spec, hosts))
    return notes
