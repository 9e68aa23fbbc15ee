"""What `portfwd run` tells its command: variables and `{name.port}` in its arguments.

Per forward NAME: `PORTFWD_<NAME>_HOST` (where a local client connects), `PORTFWD_<NAME>_PORT`
(the local port) and `PORTFWD_<NAME>_ADDR` (HOST:PORT, IPv6 in brackets). NAME is the forward's
name upper-cased, each character that is not a letter or a digit made `_` (`my-db` ->
`PORTFWD_MY_DB_PORT`), so every shell can read it. Two forwards whose names map to the same
variable are refused before anything starts, naming both.

In ARGS, `{name.host}`, `{name.port}` and `{name.addr}` are replaced by the same values (name as
the forward is named); a `{x.port}` for a name no forward has is refused, naming the ones there
are. Nothing else in ARGS is touched and nothing is given to a shell.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from portfwd.errors import InputError
from portfwd.kube.targets import parse_target, quote

_UNSAFE = re.compile(r"[^A-Za-z0-9]")
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9][A-Za-z0-9._-]*)\.(host|port|addr)\}")


@dataclass(frozen=True)
class Where:
    host: str
    port: int
    addr: str


def var_stem(name: str) -> str:
    return "PORTFWD_" + _UNSAFE.sub("_", name).upper()


def default_name(target: str) -> str:
    """`svc/echo` -> `echo`: what a forward is called in variables when it has no --name."""
    return parse_target(target).name


def check_names(names: Sequence[str]) -> None:
    """InputError naming both forwards when two names give one variable (or are the same)."""
    seen: dict[str, str] = {}
    for name in names:
        stem = var_stem(name)
        if stem in seen:
            other = seen[stem]
            same = "are both named" if other == name else "map to the same variables"
            raise InputError(
                f"forwards {quote(other)} and {quote(name)} {same} ({stem}_PORT); "
                "give them distinct names (--name, or the profile's names)"
            )
        seen[stem] = name


def check_placeholders(args: Sequence[str], names: Sequence[str]) -> None:
    """InputError for a `{x.port}` whose x is not a forward's name (before anything starts)."""
    known = set(names)
    for arg in args:
        for match in _PLACEHOLDER.finditer(arg):
            if match.group(1) not in known:
                there = ", ".join(sorted(known)) or "none"
                raise InputError(
                    f"{quote(match.group(0))} names no forward (the forwards: {there})"
                )


def environment(where: Mapping[str, Where]) -> dict[str, str]:
    env: dict[str, str] = {}
    for name, w in where.items():
        stem = var_stem(name)
        env[f"{stem}_HOST"] = w.host
        env[f"{stem}_PORT"] = str(w.port)
        env[f"{stem}_ADDR"] = w.addr
    return env


def substitute(args: Sequence[str], where: Mapping[str, Where]) -> list[str]:
    def value(match: re.Match[str]) -> str:
        w = where.get(match.group(1))
        if w is None:
            return match.group(0)
        field = match.group(2)
        return w.host if field == "host" else str(w.port) if field == "port" else w.addr

    return [_PLACEHOLDER.sub(value, arg) for arg in args]
