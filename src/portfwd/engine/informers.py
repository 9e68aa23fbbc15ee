"""Watch caches shared by forwards: one watch per (cluster, resource, namespace, selector).

A forward that follows a Service needs to know, the moment it happens, that its pod was
deleted or turned not Ready; polling would be late and would load the API server. An
:class:`Informer` lists then watches once and keeps the objects in memory, and every forward
that needs the same view shares it (two forwards to two ports of one Service: one watch).

Subscribers are woken through an :class:`asyncio.Event` they own and clear; an informer never
awaits a subscriber, so a slow forward cannot hold up the watch or the other forwards.

When the API server cannot be reached the informer says so (`error`, `attempt`,
`next_retry_at`), retries with a jittered backoff (many informers recovering after an API
server restart do not all relist at the same instant) and relists when it is back; objects
deleted meanwhile are dropped from the cache. A 403 is not retried: the subscriber decides
what to do without a watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from portfwd.errors import PortfwdError
from portfwd.kube import kinds
from portfwd.kube.backoff import Backoff
from portfwd.kube.client import KubeClient
from portfwd.kube.errors import Forbidden, NotFound
from portfwd.kube.watch import SYNCED

log = logging.getLogger(__name__)

T = TypeVar("T")

InformerKey = tuple[int, str, str, str | None, str | None]


def _key(
    client: KubeClient, resource: str, ns: str, labels: str | None, fields: str | None
) -> InformerKey:
    return (id(client), resource, ns, labels, fields)


def _name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("name") or "") if isinstance(meta, dict) else ""


class Informer(Generic[T]):
    """A list+watch of one resource in one namespace, as typed objects by name."""

    def __init__(
        self,
        client: KubeClient,
        resource: str,
        namespace: str,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self._parse: Callable[[dict[str, Any]], T] = kinds.by_resource(resource).parse
        self.objects: dict[str, T] = {}
        self.synced = False  # the cache is complete (a list arrived and the watch runs)
        self.listed = False  # a first list arrived once (the cache holds something real)
        self.error: PortfwdError | None = None  # why the watch is down right now
        self.forbidden = False  # a 403: no watch, the subscriber must do without
        self.next_retry_at: float | None = None  # wall clock of the next attempt
        self._backoff = backoff or Backoff()
        self._listeners: set[asyncio.Event] = set()
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Task[None]] = (
            set()
        )  # cancelled by restart(), awaited in close()
        self.refs = 0

    @property
    def key(self) -> InformerKey:
        """What makes two informers the same watch (the pool shares on it)."""
        return _key(
            self.client, self.resource, self.namespace, self.label_selector, self.field_selector
        )

    @property
    def attempt(self) -> int:
        return self._backoff.attempt if self.error is not None else 0

    @property
    def what(self) -> str:
        sel = self.label_selector or self.field_selector
        return f"{self.resource} in {self.namespace}" + (f" ({sel})" if sel else "")

    # -- subscribers ----------------------------------------------------------------------

    def listen(self, event: asyncio.Event) -> None:
        self._listeners.add(event)

    def unlisten(self, event: asyncio.Event) -> None:
        self._listeners.discard(event)

    def _notify(self) -> None:
        for event in self._listeners:
            event.set()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"informer {self.what}")

    def restart(self) -> None:
        """Drop the current watch connection and list again (after a sleep the TCP
        connection may be dead without anyone knowing); also retries a failed watch now."""
        if self.forbidden:
            return  # a 403 stays a 403: the subscriber already works without this watch
        old, self._task = self._task, None
        if old is not None and not old.done():
            old.cancel()
            self._stopping.add(old)
            old.add_done_callback(self._stopping.discard)
        self._backoff.reset()
        self._task = asyncio.create_task(self._run(), name=f"informer {self.what}")

    def retry_now(self) -> None:
        """A waiting informer tries again at once (manual restart)."""
        self._backoff.reset()
        self._kick.set()

    async def close(self) -> None:
        task, self._task = self._task, None
        self._listeners.clear()
        tasks = [t for t in (task, *self._stopping) if t is not None]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await self._watch_once()
                return  # the client was closed
            except asyncio.CancelledError:
                raise
            except Forbidden as exc:
                self.forbidden, self.synced, self.error = True, False, exc
                self.next_retry_at = None
                log.info("cannot watch %s: %s", self.what, exc)
                self._notify()
                return
            except NotFound as exc:  # no such API (an old server without EndpointSlices)
                self.forbidden, self.synced, self.error = True, False, exc
                self.next_retry_at = None
                self._notify()
                return
            except PortfwdError as exc:
                await self._wait_retry(exc)
            except Exception as exc:  # a bug (or a client that cannot watch): no watch
                log.exception("watch %s failed", self.what)
                self.forbidden, self.synced = True, False
                self.error = PortfwdError(f"watch {self.what} failed: {exc!r}")
                self._notify()
                return

    async def _wait_retry(self, exc: PortfwdError) -> None:
        delay = self._backoff.failure()
        self.synced, self.error = False, exc
        self.next_retry_at = time.time() + delay
        log.debug("watch %s failed (%s); retry in %.1f s", self.what, exc, delay)
        self._notify()
        self._kick.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._kick.wait()
        self.next_retry_at = None

    async def _watch_once(self) -> None:
        fresh: dict[str, T] | None = {}  # the first list of this watch, until SYNCED
        events = self.client.watch(
            self.resource,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            retries=1,
        )
        async with contextlib.aclosing(events) as stream:
            async for event in stream:
                if event.type == SYNCED:
                    if fresh is not None:
                        self.objects, fresh = fresh, None
                    self.synced, self.error, self.next_retry_at = True, None, None
                    self.listed = True
                    self._backoff.success()
                    self._notify()
                    continue
                if event.type not in ("ADDED", "MODIFIED", "DELETED"):
                    continue
                name = _name(event.object)
                cache = fresh if fresh is not None else self.objects
                if event.type == "DELETED":
                    cache.pop(name, None)
                else:
                    try:
                        cache[name] = self._parse(event.object)
                    except (KeyError, TypeError, ValueError) as exc:  # a malformed object
                        log.warning("ignoring a malformed %s %r: %s", self.resource, name, exc)
                        continue
                if fresh is None:
                    self._notify()


class InformerPool:
    """The informers of all forwards; an informer lives while some forward holds it."""

    def __init__(self) -> None:
        self._informers: dict[InformerKey, Informer[Any]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def acquire(
        self,
        client: KubeClient,
        resource: str,
        namespace: str,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Informer[Any]:
        key = _key(client, resource, namespace, label_selector, field_selector)
        informer = self._informers.get(key)
        if informer is None or informer.client is not client:
            informer = Informer(
                client,
                resource,
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
            )
            self._informers[key] = informer
            informer.start()
        informer.refs += 1
        return informer

    def release(self, informer: Informer[Any]) -> None:
        informer.refs -= 1
        if informer.refs > 0:
            return
        if self._informers.get(informer.key) is informer:
            del self._informers[informer.key]
        task = asyncio.create_task(informer.close(), name=f"close informer {informer.what}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def restart_all(self) -> None:
        for informer in self._informers.values():
            informer.restart()

    def retry_now(self) -> None:
        for informer in self._informers.values():
            if informer.error is not None and not informer.forbidden:
                informer.retry_now()

    def __len__(self) -> int:
        return len(self._informers)

    async def close(self) -> None:
        informers = list(self._informers.values())
        self._informers.clear()
        await asyncio.gather(*(i.close() for i in informers), return_exceptions=True)
        while self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)
