"""What one line of an import may be skipped for, and krelay's own words (its targets and
`PORT@proto`), kept below both the kubectl-line parser and the krelay targets file so neither
imports the other."""

from __future__ import annotations


class _Skip(Exception):
    """A command or line that cannot be imported, with the reason the user is shown."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
