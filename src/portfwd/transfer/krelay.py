"""krelay's targets file (`kubectl relay -f targets.txt`): one kubectl-style target per line.

A line is `[-n NS] [-l ADDRESS] TYPE/NAME PORT...`, as krelay reads it: `#` and `//` start a
comment line, fields are split on blanks (no quotes), a port may end in `@tcp` or `@udp`.
krelay listens on 127.0.0.1 unless `-l` says otherwise; so do the imported forwards.
What portfwd cannot do is skipped with the reason: UDP ports, and `ip/...` / `host/...`
targets (krelay reaches those through its relay pod in the cluster).
"""

from __future__ import annotations

from portfwd.engine.model import ForwardSpec
from portfwd.transfer.kubectl_lines import _Skip, import_words
from portfwd.transfer.result import Imported, Names

_RELAY_ONLY = {
    "ip": "an IP address reached through krelay's relay pod",
    "host": "a host name reached through krelay's relay pod",
}


def check_relay_target(target: str) -> None:
    """Raise _Skip for krelay targets portfwd has no equivalent of."""
    kind = target.partition("/")[0].lower() if "/" in target else ""
    if kind in _RELAY_ONLY:
        raise _Skip(
            f"{_RELAY_ONLY[kind]}: portfwd forwards to pods, services and workloads only"
            " (no relay pod)"
        )
    if kind in ("ds", "daemonset", "daemonsets", "daemonset.apps"):
        raise _Skip("portfwd does not forward to daemonsets: name one of its pods (pod/NAME)")


def relay_port(word: str) -> tuple[str, str | None]:
    """krelay's `PORT[@tcp|@udp]` -> (the kubectl-style port, a skip reason or None)."""
    port, at, proto = word.partition("@")
    if not at or proto.lower() == "tcp" or not proto:
        return port, None
    if proto.lower() == "udp":
        return port, "UDP: krelay relays it through its pod in the cluster; portfwd is TCP only"
    return port, f"unknown protocol {proto!r} (krelay knows tcp and udp)"


def parse_krelay_targets(text: str, source: str = "-", names: Names | None = None) -> Imported:
    names = names or Names()
    seen: dict[ForwardSpec, str] = {}
    result = Imported()
    for number, raw in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("//"):
            continue
        where = f"{source}:{number}"
        words = ["kubectl-relay", *line.split()]
        import_words(result, words, line, names=names, where=where, seen=seen)
    return result
