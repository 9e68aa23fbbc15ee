"""What a failure means for a forward, and what is known about its tunnel.

A forward sorts every failure into one of three: it heals by itself (retry on a backoff
timer: the API server is down, no pod is Ready yet), it needs the user (give up: a 403, a bad
target), or it is the tunnel's and must be *probed* before connections go there again (an
upgrade failed, a session was lost). :class:`TunnelHealth` holds that last kind: the fault to
probe, the pod that failed its probe, and a refusal no retry fixes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from portfwd.engine.follow import Follower, Ready, Waiting
from portfwd.errors import NoReadyPod, PortfwdError
from portfwd.kube.errors import ApiError, ClusterUnreachable, Forbidden, Unauthorized
from portfwd.kube.resolve import Resolution
from portfwd.kube.targets import Target
from portfwd.tunnel.pool import PodTunnel
from portfwd.tunnel.protocol import TunnelError

# Causes of an unreachable cluster that may heal by themselves; a bad CA or proxy will not.
TRANSIENT_CAUSES = frozenset({"refused", "timeout", "lost", "dns", "local"})


@dataclass(frozen=True)
class Retry:
    """A failure the forward retries on its own backoff timer (not a watch's)."""

    reason: str
    usable: Resolution | None = None


class GiveUp(Exception):
    """A failure no retry can fix (403, bad input): the forward goes to ERROR, unbound."""


def transient(exc: BaseException) -> bool:
    """May this failure heal by itself (so a reconnecting forward retries it)?"""
    if isinstance(exc, ClusterUnreachable):
        return exc.cause in TRANSIENT_CAUSES
    if isinstance(exc, NoReadyPod | TunnelError | OSError):
        return True
    if isinstance(exc, ApiError) and not isinstance(exc, Forbidden | Unauthorized):
        return exc.status >= 500 or exc.status in (404, 409, 429)
    return False


def describe(exc: BaseException) -> str:
    """The one line for a failure: portfwd's own errors are already sentences."""
    return str(exc) if isinstance(exc, PortfwdError) else f"{type(exc).__name__}: {exc}"


def pod_check(target: Target | None, resolution: Resolution) -> Ready | Waiting:
    """A `pod/NAME` target is usable while Running but only *active* while Ready."""
    pod = resolution.pod
    if target is not None and target.kind == "pod":
        if pod.terminating:
            return Waiting(f"pod {pod.name} is terminating", usable=resolution)
        if not pod.ready:
            why = pod.not_ready_reason()
            return Waiting(f"pod {pod.name} is Running but not Ready ({why})", usable=resolution)
    return Ready(resolution)


class TunnelHealth:
    """The tunnel's faults since it last worked, and the probes that clear them."""

    def __init__(self, namespace: str = "") -> None:
        self.namespace = namespace
        self.fault: str | None = None  # a tunnel failure to check with a probe
        self.fault_pod: str | None = None  # the pod that failed (probe it on the timer only)
        self.fatal: str | None = None  # a connection saw a failure no retry fixes (403)

    def reset(self) -> None:
        self.fault = self.fault_pod = self.fatal = None

    def failed(self, exc: BaseException, text: str) -> None:
        """A port-forward could not be opened: the tunnel, not the pod's backend, failed."""
        if isinstance(exc, Forbidden | Unauthorized):
            self.fatal = text
        else:
            self.fault = text
            self.fault_pod = None  # probe at once: the watch may not know yet

    def healed(self) -> None:
        self.fault = self.fault_pod = None

    async def check(self, tunnel: PodTunnel, resolution: Resolution) -> str:
        """Check the tunnel to the chosen pod (before going active); the protocol's name.

        A port-forward is authorized per upgrade, so without this a user lacking
        `pods/portforward` would see an ACTIVE forward whose every connection fails. For SPDY
        this opens (or pings) the pod's session, which new connections then use at once.
        """
        pod = resolution.pod
        return await tunnel.check(self.namespace, pod.name, resolution.container_port, pod.meta.uid)

    async def probe(
        self, tunnel: PodTunnel | None, resolution: Resolution
    ) -> tuple[Ready | Retry, str | None]:
        """After a tunnel failure: does a port-forward to the chosen pod work again? Also the
        protocol's name when a probe ran and worked."""
        if self.fault is None or tunnel is None:
            return Ready(resolution), None
        try:
            name = await self.check(tunnel, resolution)
        except (Forbidden, Unauthorized) as exc:
            raise GiveUp(str(exc)) from None
        except (PortfwdError, OSError) as exc:
            self.fault_pod = resolution.pod.name
            return Retry(describe(exc)), None
        self.healed()
        return Ready(resolution), name

    async def probe_each(
        self,
        tunnel: PodTunnel | None,
        follower: Follower,
        first: Resolution,
        note: Callable[[str], None],
    ) -> tuple[Ready | Retry, str | None]:
        """Probe the chosen pod, then each other Ready pod in turn while the probes fail.

        The API may call a pod Ready whose node's kubelet is unreachable (the node
        controller needs ~40 s to notice): a tunnel to it fails while another pod serves.
        Each pod is probed at most once per attempt; when all fail, the backoff timer
        retries them all. `note` gets one line per pod given up on.
        """
        avoid: set[str] = set()
        result, name = await self.probe(tunnel, first)
        while isinstance(result, Retry) and self.fault_pod is not None:
            avoid.add(self.fault_pod)
            other = follower.evaluate(None, avoid)
            if not isinstance(other, Ready) or other.resolution.pod.name in avoid:
                break  # no other pod (a pod target has only one): the timer retries
            note(
                f"pod {self.fault_pod} cannot be reached ({result.reason}); "
                f"trying pod {other.resolution.pod.name}"
            )
            result, name = await self.probe(tunnel, other.resolution)
        return result, name
