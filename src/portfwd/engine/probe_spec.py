"""What `--probe` asks for, as text and as a value: `tcp`, or `http:/PATH`.

Pure parsing (no I/O), shared by the spec's own validation, the command line, the profiles
file and the daemon protocol, so a probe is written the same way everywhere. The text form is
what is stored (`ForwardSpec.probe`); "" means no probe (the default).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from portfwd.errors import InputError

PROBE_KINDS = ("tcp", "http")
DEFAULT_PROBE_INTERVAL = 10.0
MIN_PROBE_INTERVAL = 1.0
MAX_PROBE_INTERVAL = 3600.0
_PATH_MAX = 1024
_FORMS = "use tcp, or http:/PATH (e.g. http:/healthz)"


@dataclass(frozen=True)
class ProbeSpec:
    kind: str  # "tcp" or "http"
    path: str = ""  # the HTTP GET's path, "/..." ("" for tcp)

    @property
    def text(self) -> str:
        return "tcp" if self.kind == "tcp" else f"http:{self.path}"


def parse_probe(text: str) -> ProbeSpec | None:
    """The probe of `text` ("" or "off": none); InputError (one line) when it is not one."""
    if not isinstance(text, str):
        raise InputError(f"probe {text!r} is not text; {_FORMS}")
    raw = text.strip()
    if raw in ("", "off", "none"):
        return None
    if raw == "tcp":
        return ProbeSpec("tcp")
    if raw == "http":
        return ProbeSpec("http", "/")
    kind, sep, path = raw.partition(":")
    if kind != "http" or not sep:
        raise InputError(f"unknown probe {_quoted(raw)}; {_FORMS}")
    if not path.startswith("/"):
        raise InputError(f"the probe's path {_quoted(path)} must start with /; {_FORMS}")
    if len(path) > _PATH_MAX or any(c <= " " or c == "\x7f" for c in path):
        raise InputError(
            f"the probe's path {_quoted(path[:60])} is not usable: no spaces or control "
            f"characters, at most {_PATH_MAX} characters (percent-encode them)"
        )
    return ProbeSpec("http", path)


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def interval_from(value: object) -> float:
    """A probe interval as a profile writes it: seconds (10), or a duration ("10s", "1m30s");
    InputError unless it is one in 1 s..1 h."""
    if isinstance(value, str):
        text, pos, total = value.strip(), 0, 0.0
        while pos < len(text) and (match := _DURATION.match(text, pos)) is not None:
            total += float(match[1]) * _UNITS[match[2]]
            pos = match.end()
        if not text or pos != len(text):
            raise InputError(
                f"probe interval {_quoted(value)} is not a number of seconds or a duration "
                "such as 10s or 1m"
            )
        value = total
    return check_interval(value)


def check_interval(value: object) -> float:
    """Seconds between probes; InputError unless a number in 1..3600."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"probe interval {value!r} is not a number of seconds")
    if not MIN_PROBE_INTERVAL <= value <= MAX_PROBE_INTERVAL:
        raise InputError(
            f"probe interval {value:g} s is out of range; use "
            f"{MIN_PROBE_INTERVAL:g}..{MAX_PROBE_INTERVAL:g} seconds"
        )
    return float(value)


def _quoted(text: str) -> str:
    shown = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return f'"{shown}"'
