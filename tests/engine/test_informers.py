"""Informer and InformerPool over a fake watch: cache contents, restarts, errors, sharing.

`FakeWatch` (also used by test_follow.py and test_forward_states.py) keeps objects per
resource; each `watch()` lists what matches its selectors, says SYNCED, then streams changes.
`cut(exc)` ends every running watch with `exc` and makes new ones fail until `heal()`.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections import defaultdict
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from portfwd.engine.informers import Informer, InformerPool
from portfwd.errors import PortfwdError
from portfwd.kube.backoff import Backoff
from portfwd.kube.errors import ClusterUnreachable, Forbidden
from portfwd.kube.objects import Pod
from portfwd.kube.watch import SYNCED, WatchEvent
from tests.kube.test_resolve import NS, pod
from tests.support.wait import eventually

WEB = {"app": "web"}


def unreachable() -> ClusterUnreachable:
    return ClusterUnreachable(
        "cannot reach the API server at 127.0.0.1:1 (refused)", cause="refused"
    )


def forbidden(resource: str) -> Forbidden:
    return Forbidden(f'cannot watch resource "{resource}": forbidden', status=403)


def _matches(obj: dict[str, Any], label_selector: str | None, field_selector: str | None) -> bool:
    meta = obj.get("metadata") or {}
    if field_selector:
        key, _, value = field_selector.partition("=")
        assert key == "metadata.name", field_selector
        if meta.get("name") != value:
            return False
    if label_selector:
        labels = meta.get("labels") or {}
        for part in label_selector.split(","):
            key, _, value = part.partition("=")
            if labels.get(key) != value:
                return False
    return True


@dataclass
class _Stream:
    resource: str
    label_selector: str | None
    field_selector: str | None
    queue: asyncio.Queue[WatchEvent | BaseException] = field(default_factory=asyncio.Queue)


class FakeWatch:
    """The `watch()` of a KubeClient over objects held in memory."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.down: PortfwdError | None = None
        self.forbidden: set[str] = set()
        self.streams: list[_Stream] = []
        self.calls: list[tuple[str, str | None, str | None]] = []
        self.namespace = NS
        self.context = "fake"

    def watch(
        self,
        resource: str,
        ns: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        retries: int | None = None,
    ) -> AsyncGenerator[WatchEvent, None]:
        self.calls.append((resource, label_selector, field_selector))
        return self._watch(resource, label_selector, field_selector)

    async def _watch(
        self, resource: str, label_selector: str | None, field_selector: str | None
    ) -> AsyncGenerator[WatchEvent, None]:
        await asyncio.sleep(0)
        if resource in self.forbidden:
            raise forbidden(resource)
        if self.down is not None:
            raise self.down
        stream = _Stream(resource, label_selector, field_selector)
        self.streams.append(stream)
        try:
            for obj in list(self.objects[resource].values()):
                if _matches(obj, label_selector, field_selector):
                    yield WatchEvent("ADDED", copy.deepcopy(obj))
            yield WatchEvent(SYNCED, {"resourceVersion": "1"})
            while True:
                item = await stream.queue.get()
                if isinstance(item, BaseException):
                    raise item
                if _matches(item.object, label_selector, field_selector):
                    yield item
        finally:
            self.streams.remove(stream)

    def _send(self, resource: str, event: WatchEvent | BaseException) -> None:
        for stream in self.streams:
            if stream.resource == resource:
                stream.queue.put_nowait(event)

    def put(self, resource: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        kind = "MODIFIED" if name in self.objects[resource] else "ADDED"
        self.objects[resource][name] = obj
        self._send(resource, WatchEvent(kind, copy.deepcopy(obj)))

    def delete(self, resource: str, name: str, *, quietly: bool = False) -> None:
        """`quietly`: gone while nobody watched (the event is lost; a relist must notice)."""
        obj = self.objects[resource].pop(name)
        if not quietly:
            self._send(resource, WatchEvent("DELETED", obj))

    def cut(self, exc: PortfwdError | None = None) -> None:
        self.down = exc or unreachable()
        for stream in list(self.streams):
            stream.queue.put_nowait(self.down)

    def heal(self) -> None:
        self.down = None

    def watching(self, resource: str) -> int:
        return sum(1 for s in self.streams if s.resource == resource)


def web_pod(name: str, *, ready: bool = True, minute: int = 0, **kw: Any) -> dict[str, Any]:
    return pod(
        name,
        labels=dict(WEB),
        ports=[{"name": "http", "containerPort": 9000}],
        ready=ready,
        created=f"2026-11-24T00:{minute:02d}:00Z",
        **kw,
    )


@pytest_asyncio.fixture
async def pool() -> AsyncIterator[InformerPool]:
    p = InformerPool()
    try:
        yield p
    finally:
        await asyncio.wait_for(p.close(), 10)


def names(informer: Informer[Any]) -> set[str]:
    return set(informer.objects)


async def closed_informer(informer: Informer[Any]) -> None:
    await asyncio.wait_for(informer.close(), 10)


# --- cache -----------------------------------------------------------------------------------


async def test_list_then_events_fill_the_cache() -> None:
    fw = FakeWatch()
    fw.put("pods", web_pod("web-1"))
    fw.put("pods", web_pod("web-2"))
    fw.put("pods", pod("other", labels={"app": "api"}))
    inf: Informer[Pod] = Informer(fw, "pods", NS, label_selector="app=web")  # type: ignore[arg-type]
    changed = asyncio.Event()
    inf.listen(changed)
    inf.start()
    try:
        await eventually(lambda: inf.synced)
        assert names(inf) == {"web-1", "web-2"}
        assert all(isinstance(p, Pod) for p in inf.objects.values())
        assert changed.is_set() and inf.error is None and inf.attempt == 0
        changed.clear()
        fw.put("pods", web_pod("web-3"))
        await eventually(lambda: "web-3" in inf.objects)
        assert changed.is_set()
        changed.clear()
        fw.put("pods", web_pod("web-1", ready=False))
        await eventually(lambda: not inf.objects["web-1"].ready)
        assert changed.is_set()
        changed.clear()
        fw.delete("pods", "web-2")
        await eventually(lambda: "web-2" not in inf.objects)
        assert changed.is_set()
        assert names(inf) == {"web-1", "web-3"}
    finally:
        await closed_informer(inf)


async def test_a_restart_drops_what_was_deleted_while_down() -> None:
    fw = FakeWatch()
    fw.put("pods", web_pod("web-1"))
    fw.put("pods", web_pod("web-2"))
    inf: Informer[Pod] = Informer(
        fw,  # type: ignore[arg-type]
        "pods",
        NS,
        backoff=Backoff(initial=0.05, cap=0.05, jitter=0),
    )
    changed = asyncio.Event()
    inf.listen(changed)
    inf.start()
    try:
        await eventually(lambda: inf.synced)
        changed.clear()
        fw.cut()
        await eventually(lambda: inf.error is not None)
        assert changed.is_set() and not inf.synced
        assert isinstance(inf.error, ClusterUnreachable)
        assert inf.attempt >= 1
        assert names(inf) == {"web-1", "web-2"}  # the last known view is kept meanwhile
        fw.delete("pods", "web-2", quietly=True)
        fw.put("pods", web_pod("web-4"))
        changed.clear()
        fw.heal()
        await eventually(lambda: inf.synced)
        assert names(inf) == {"web-1", "web-4"}
        assert inf.error is None and inf.attempt == 0 and inf.next_retry_at is None
        assert changed.is_set()
    finally:
        await closed_informer(inf)


async def test_while_down_error_attempt_and_next_retry_are_set() -> None:
    fw = FakeWatch()
    fw.down = unreachable()
    inf: Informer[Pod] = Informer(
        fw,  # type: ignore[arg-type]
        "pods",
        NS,
        backoff=Backoff(initial=30, cap=30, jitter=0),
    )
    changed = asyncio.Event()
    inf.listen(changed)
    inf.start()
    try:
        await eventually(lambda: inf.next_retry_at is not None)
        assert changed.is_set()
        assert isinstance(inf.error, ClusterUnreachable)
        assert inf.attempt == 1 and not inf.synced and not inf.forbidden
        assert inf.next_retry_at is not None
        assert inf.next_retry_at > time.time() + 20  # a wall-clock time, about 30 s ahead
        assert len(fw.calls) == 1
        # retry_now wakes the waiting informer at once (instead of in 30 s).
        fw.heal()
        fw.put("pods", web_pod("web-1"))
        inf.retry_now()
        await eventually(lambda: inf.synced)
        assert inf.error is None and inf.next_retry_at is None and inf.attempt == 0
        assert names(inf) == {"web-1"} and len(fw.calls) == 2
    finally:
        await closed_informer(inf)


async def test_retry_now_while_still_down_counts_from_one_again() -> None:
    fw = FakeWatch()
    fw.down = unreachable()
    inf: Informer[Pod] = Informer(
        fw,  # type: ignore[arg-type]
        "pods",
        NS,
        backoff=Backoff(initial=30, cap=30, jitter=0),
    )
    inf.start()
    try:
        await eventually(lambda: inf.next_retry_at is not None)
        inf.retry_now()
        await eventually(lambda: len(fw.calls) == 2 and inf.next_retry_at is not None)
        assert inf.attempt == 1  # reset by the manual retry, then one failure
    finally:
        await closed_informer(inf)


async def test_forbidden_is_not_retried() -> None:
    fw = FakeWatch()
    fw.forbidden.add("endpointslices")
    inf: Informer[Any] = Informer(fw, "endpointslices", NS)  # type: ignore[arg-type]
    changed = asyncio.Event()
    inf.listen(changed)
    inf.start()
    try:
        await eventually(lambda: inf.forbidden)
        assert changed.is_set()
        assert isinstance(inf.error, Forbidden)
        assert not inf.synced and inf.next_retry_at is None
        assert inf._task is not None
        await asyncio.wait_for(asyncio.shield(inf._task), 5)  # the task ended: no retry loop
        assert len(fw.calls) == 1
    finally:
        await closed_informer(inf)


async def test_a_subscriber_that_unlistens_is_not_woken() -> None:
    fw = FakeWatch()
    inf: Informer[Pod] = Informer(fw, "pods", NS)  # type: ignore[arg-type]
    kept, dropped = asyncio.Event(), asyncio.Event()
    inf.listen(kept)
    inf.listen(dropped)
    inf.start()
    try:
        await eventually(lambda: inf.synced)
        inf.unlisten(dropped)
        kept.clear()
        dropped.clear()
        fw.put("pods", web_pod("web-1"))
        await eventually(kept.is_set)
        assert not dropped.is_set()
    finally:
        await closed_informer(inf)


async def test_restart_lists_again() -> None:
    fw = FakeWatch()
    fw.put("pods", web_pod("web-1"))
    inf: Informer[Pod] = Informer(fw, "pods", NS)  # type: ignore[arg-type]
    inf.start()
    try:
        await eventually(lambda: inf.synced)
        fw.delete("pods", "web-1", quietly=True)
        inf.restart()
        await eventually(lambda: len(fw.calls) == 2 and not inf.objects)
        await eventually(lambda: fw.watching("pods") == 1)  # the old watch was closed
    finally:
        await closed_informer(inf)
    assert fw.watching("pods") == 0


# --- pool ------------------------------------------------------------------------------------


def _tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def test_pool_shares_identical_keys_and_splits_different_selectors(
    pool: InformerPool,
) -> None:
    fw = FakeWatch()
    before = _tasks()
    a = pool.acquire(fw, "pods", NS, label_selector="app=web")  # type: ignore[arg-type]
    b = pool.acquire(fw, "pods", NS, label_selector="app=web")  # type: ignore[arg-type]
    c = pool.acquire(fw, "pods", NS, label_selector="app=api")  # type: ignore[arg-type]
    d = pool.acquire(fw, "pods", "other", label_selector="app=web")  # type: ignore[arg-type]
    e = pool.acquire(fw, "pods", NS, field_selector="metadata.name=web-1")  # type: ignore[arg-type]
    assert a is b
    assert len({id(a), id(c), id(d), id(e)}) == 4
    assert len(pool) == 4 and a.refs == 2
    await eventually(lambda: a.synced and c.synced and d.synced and e.synced)
    assert len(fw.calls) == 4  # one watch for the two holders of `a`
    pool.release(a)
    assert len(pool) == 4 and a.refs == 1 and a._task is not None and not a._task.done()
    task = a._task
    pool.release(b)
    assert len(pool) == 3
    await eventually(task.done)
    for informer in (c, d, e):
        pool.release(informer)
    assert len(pool) == 0
    await eventually(lambda: _tasks() <= before)
    assert fw.streams == []


async def test_pool_acquire_after_release_to_zero_starts_a_new_informer(
    pool: InformerPool,
) -> None:
    fw = FakeWatch()
    a = pool.acquire(fw, "pods", NS)  # type: ignore[arg-type]
    pool.release(a)
    b = pool.acquire(fw, "pods", NS)  # type: ignore[arg-type]
    assert b is not a and b.refs == 1
    await eventually(lambda: b.synced)
    pool.release(b)


async def test_pool_close_leaves_no_task() -> None:
    fw = FakeWatch()
    before = _tasks()
    p = InformerPool()
    fw.down = unreachable()
    waiting = p.acquire(fw, "pods", NS)  # type: ignore[arg-type]
    fw.heal()
    fw.put("services", {"metadata": {"name": "web", "namespace": NS}, "spec": {}})
    running = p.acquire(fw, "services", NS)  # type: ignore[arg-type]
    released = p.acquire(fw, "deployments", NS)  # type: ignore[arg-type]
    p.release(released)  # its close is in flight when the pool closes
    await eventually(lambda: running.synced)
    await asyncio.wait_for(p.close(), 10)
    assert _tasks() <= before
    assert len(p) == 0 and fw.streams == []
    assert waiting._listeners == set()


async def test_pool_restart_all_and_retry_now(pool: InformerPool) -> None:
    fw = FakeWatch()
    fw.forbidden.add("endpointslices")
    pods = pool.acquire(fw, "pods", NS)  # type: ignore[arg-type]
    slices = pool.acquire(fw, "endpointslices", NS)  # type: ignore[arg-type]
    await eventually(lambda: pods.synced and slices.forbidden)
    pool.restart_all()
    await eventually(lambda: len(fw.calls) == 3 and pods.synced and slices.forbidden)
    # retry_now leaves healthy and forbidden informers alone
    pool.retry_now()
    await asyncio.sleep(0.05)
    assert len(fw.calls) == 3  # a 403 is not restarted: it stays a 403
    pool.release(pods)
    pool.release(slices)


@pytest.mark.parametrize("exc", [RuntimeError("boom")])
async def test_an_unexpected_watch_failure_stops_that_informer_only(exc: Exception) -> None:
    class Broken(FakeWatch):
        def watch(self, *a: Any, **kw: Any) -> AsyncGenerator[WatchEvent, None]:
            raise exc

    inf: Informer[Pod] = Informer(Broken(), "pods", NS)  # type: ignore[arg-type]
    inf.start()
    try:
        await eventually(lambda: inf.forbidden)
        assert inf.error is not None and "boom" in str(inf.error)
    finally:
        await closed_informer(inf)
