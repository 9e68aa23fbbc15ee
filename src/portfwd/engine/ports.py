"""The ports a front end offers and how many endpoints back each Service: the small facts both
the one-shot catalog and the live browse view share, kept below them both."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from portfwd.kube.objects import EndpointSlice

UDP_REASON = "UDP cannot be port-forwarded (Kubernetes port-forward is TCP only)"


@dataclass(frozen=True)
class PortChoice:
    port: int  # the number to forward to (Service port for services, container port else)
    name: str = ""
    protocol: str = "TCP"
    detail: str = ""  # e.g. "→ targetPort echo"

    @property
    def disabled_reason(self) -> str:
        return UDP_REASON if self.protocol.upper() != "TCP" else ""


def endpoint_counts(slices: Sequence[EndpointSlice]) -> dict[str, tuple[int, int]]:
    """Service name -> (ready, all) endpoints, each pod (or address) counted once."""
    seen: dict[str, tuple[set[str], set[str]]] = {}
    for sl in slices:
        ready, total = seen.setdefault(sl.service_name, (set(), set()))
        for ep in sl.endpoints:
            ident = ep.target_ref.name if ep.target_ref else ",".join(ep.addresses)
            total.add(ident)
            if ep.ready:
                ready.add(ident)
    return {name: (len(ready), len(total)) for name, (ready, total) in seen.items()}
