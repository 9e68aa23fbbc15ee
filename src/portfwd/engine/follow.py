"""Where a forward should go right now, from watch caches instead of API calls.

A :class:`Follower` holds the informers one target needs:

- `svc/NAME`: the Service (by name), its EndpointSlices (by the service-name label) and the
  pods its selector matches (re-subscribed when the selector changes);
- `deploy|sts|rs/NAME`: the workload (by name) and the pods of its selector;
- `pod/NAME`: that pod (by name), so a StatefulSet pod that comes back is noticed.

`evaluate()` applies kubectl's rules (`portfwd.kube.resolve.choose_for_*`) to what the caches
hold, preferring the pod already in use, and answers one of four outcomes. It does no I/O, so
a forward can evaluate on every watch event without loading the API server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from portfwd.constants import LABEL_SERVICE_NAME
from portfwd.engine.informers import Informer, InformerPool
from portfwd.errors import NoReadyPod, ResolveError
from portfwd.kube import kinds
from portfwd.kube.client import KubeClient
from portfwd.kube.errors import ClusterUnreachable
from portfwd.kube.objects import EndpointSlice, Pod, Service, Workload, selector_from_map
from portfwd.kube.resolve import (
    Resolution,
    choose_for_pod,
    choose_for_service,
    choose_for_workload,
    spread_for_service,
    spread_for_workload,
)
from portfwd.kube.targets import Target


@dataclass(frozen=True)
class Ready:
    """A pod can take connections now."""

    resolution: Resolution


@dataclass(frozen=True)
class Waiting:
    """Nothing usable now, but this may change by itself (no Ready pod, API unreachable).

    `usable`: a pod connections may still be sent to meanwhile (a `pod/NAME` target that is
    Running but not Ready: kubectl forwards to it, so do we, but the state says the truth).
    `attempt` / `next_retry_at`: the retry that will end the wait, when one is scheduled.
    """

    reason: str
    usable: Resolution | None = None
    attempt: int = 0
    next_retry_at: float | None = None


@dataclass(frozen=True)
class Gone:
    """The target itself is gone or no longer fits (deleted, its port removed): only a change
    to the cluster brings it back, and the watch will see that change.

    `reason` is what happened; `waits` what a forward that keeps watching waits for (one
    with auto-reconnect off says only the reason, and stops).
    """

    reason: str
    waits: str = ""

    @property
    def message(self) -> str:
        return f"{self.reason}; {self.waits}" if self.waits else self.reason


@dataclass(frozen=True)
class Unwatched:
    """A watch is not allowed (403) or not served: the forward must ask the API itself."""

    reason: str


@dataclass(frozen=True)
class Syncing:
    """The caches are not filled yet (first list in flight): no opinion."""


Outcome = Ready | Waiting | Gone | Unwatched | Syncing


class Follower:
    def __init__(
        self,
        pool: InformerPool,
        client: KubeClient,
        namespace: str,
        target: Target,
        remote: int | str,
        changed: asyncio.Event,
    ) -> None:
        self._pool = pool
        self._client = client
        self.namespace = namespace
        self.target = target
        self.remote = remote
        self._changed = changed
        self._owner: Informer[Any] | None = None  # the target object's own informer
        self._pods: Informer[Any] | None = None
        self._slices: Informer[Any] | None = None
        self._seen_target = False

    @property
    def label(self) -> str:
        return str(self.target)

    def _acquire(
        self, resource: str, *, label_selector: str | None = None, field_selector: str | None = None
    ) -> Informer[Any]:
        informer = self._pool.acquire(
            self._client,
            resource,
            self.namespace,
            label_selector=label_selector,
            field_selector=field_selector,
        )
        informer.listen(self._changed)
        if informer.synced or informer.error is not None:
            self._changed.set()  # shared and already filled: evaluate at once
        return informer

    def _release(self, informer: Informer[Any] | None) -> None:
        if informer is not None:
            informer.unlisten(self._changed)
            self._pool.release(informer)

    def start(self) -> None:
        kind = kinds.by_name(self.target.kind)
        self._owner = self._acquire(kind.plural, field_selector=f"metadata.name={self.target.name}")
        if kind is kinds.SERVICE:
            self._slices = self._acquire(
                kinds.ENDPOINTSLICE.plural,
                label_selector=f"{LABEL_SERVICE_NAME}={self.target.name}",
            )

    def close(self) -> None:
        for informer in (self._owner, self._pods, self._slices):
            self._release(informer)
        self._owner = self._pods = self._slices = None

    def _pods_for(self, query: str) -> Informer[Any]:
        if self._pods is None or self._pods.label_selector != query:
            self._release(self._pods)
            self._pods = self._acquire(kinds.POD.plural, label_selector=query)
        return self._pods

    @staticmethod
    def _down(informers: Sequence[Informer[Any] | None]) -> Waiting | Syncing | None:
        """An informer that cannot watch right now decides the outcome."""
        for informer in informers:
            if informer is None:
                continue
            if informer.error is not None and not informer.forbidden:
                error = informer.error
                text = str(error)
                if not isinstance(error, ClusterUnreachable):  # that one names the server
                    text = f"cannot watch {informer.resource}: {text}"
                return Waiting(
                    text,
                    attempt=informer.attempt,
                    next_retry_at=informer.next_retry_at,
                )
            if not informer.synced and not informer.forbidden:
                return Syncing()
        return None

    def evaluate(self, prefer: str | None, avoid: Collection[str] = ()) -> Outcome:
        """The outcome for the caches' current content. `avoid`: pods whose tunnel just
        failed although the API says they are Ready (their node's kubelet is unreachable):
        another Ready pod is chosen if there is one."""
        owner = self._owner
        if owner is None:
            return Syncing()
        if owner.forbidden:
            return Unwatched(f"cannot watch {owner.resource}: {owner.error}")
        down = self._down([owner])
        if down is not None:
            return down
        obj = owner.objects.get(self.target.name)
        if obj is None:
            how = "was deleted" if self._seen_target else "does not exist"
            back = "a pod of that name" if self.target.kind == "pod" else "it"
            return Gone(f"{self.label} {how}", f"waiting for {back} to return")
        self._seen_target = True
        try:
            if isinstance(obj, Pod):
                return self._pod_outcome(obj)
            if isinstance(obj, Service):
                return self._service_outcome(obj, prefer, avoid)
            assert isinstance(obj, Workload)
            return self._workload_outcome(obj, prefer, avoid)
        except NoReadyPod as exc:
            return Waiting(str(exc))
        except ResolveError as exc:
            return Gone(str(exc))

    def _pod_outcome(self, pod: Pod) -> Outcome:
        resolution = choose_for_pod(self.target, pod, self.remote)
        if pod.terminating:
            return Waiting(f"pod {pod.name} is terminating", usable=resolution)
        if not pod.ready:
            return Waiting(
                f"pod {pod.name} is Running but not Ready ({pod.not_ready_reason()})",
                usable=resolution,
            )
        return Ready(resolution)

    def _service_outcome(self, svc: Service, prefer: str | None, avoid: Collection[str]) -> Outcome:
        if svc.selector is None or svc.type == "ExternalName":
            choose_for_service(self.target, svc, [], None, self.remote)  # raises the reason
        pods = self._pods_for(selector_from_map(svc.selector or {}).to_query())
        slices_informer = self._slices
        if pods.forbidden:
            return Unwatched(f"cannot watch pods: {pods.error}")
        down = self._down([pods, slices_informer])
        if down is not None:
            return down
        slices: list[EndpointSlice] | None = None
        if slices_informer is not None and not slices_informer.forbidden:
            slices = list(slices_informer.objects.values())
        candidates = [p for p in pods.objects.values() if p.name not in avoid]
        resolution = choose_for_service(
            self.target, svc, candidates, slices, self.remote, prefer=prefer
        )
        return Ready(resolution)

    def _workload_outcome(
        self, workload: Workload, prefer: str | None, avoid: Collection[str]
    ) -> Outcome:
        if workload.selector.empty:
            choose_for_workload(self.target, workload, [], self.remote)  # raises the reason
        pods = self._pods_for(workload.selector.to_query())
        if pods.forbidden:
            return Unwatched(f"cannot watch pods: {pods.error}")
        down = self._down([pods])
        if down is not None:
            return down
        candidates = [p for p in pods.objects.values() if p.name not in avoid]
        resolution = choose_for_workload(
            self.target, workload, candidates, self.remote, prefer=prefer
        )
        return Ready(resolution)

    def spread(self, avoid: Collection[str] = ()) -> list[Resolution]:
        """Every pod a Service-like forward (`--spread`) may use now, from the same caches
        `evaluate` read (call it after a Ready outcome); [] when that is not known."""
        owner, pods = self._owner, self._pods
        obj = owner.objects.get(self.target.name) if owner is not None else None
        if pods is None or not isinstance(obj, Service | Workload):
            return []
        candidates = [p for p in pods.objects.values() if p.name not in avoid]
        try:
            if isinstance(obj, Service):
                slices = self._slices
                usable = slices is not None and not slices.forbidden
                found = list(slices.objects.values()) if usable and slices is not None else None
                return spread_for_service(self.target, obj, candidates, found, self.remote)
            return spread_for_workload(self.target, obj, candidates, self.remote)
        except ResolveError:
            return []
