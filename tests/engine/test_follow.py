"""Follower.evaluate over informers filled by a fake watch: the five outcomes, stickiness,
selector changes, pod targets, an unreachable API server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest_asyncio

from portfwd.engine.follow import Follower, Gone, Outcome, Ready, Syncing, Unwatched, Waiting
from portfwd.engine.informers import InformerPool
from portfwd.kube.errors import ClusterUnreachable
from portfwd.kube.targets import Target
from tests.kube.test_resolve import NS, eps, service, workload
from tests.support.wait import eventually

from .test_informers import WEB, FakeWatch, web_pod

SVC = Target("service", "web")
DEPLOY = Target("deployment", "web")


def web_service(selector: dict[str, str] | None = None) -> dict[str, Any]:
    return service("web", [{"name": "web", "port": 80, "targetPort": 9000}], selector or WEB)


@pytest_asyncio.fixture
async def pool() -> AsyncIterator[InformerPool]:
    p = InformerPool()
    try:
        yield p
    finally:
        await asyncio.wait_for(p.close(), 10)


class Harness:
    def __init__(self, pool: InformerPool, fw: FakeWatch, target: Target, remote: int) -> None:
        self.pool = pool
        self.fw = fw
        self.changed = asyncio.Event()
        self.follower = Follower(pool, fw, NS, target, remote, self.changed)  # type: ignore[arg-type]

    async def until(self, pred: Callable[[Outcome], bool], prefer: str | None = None) -> Outcome:
        """Evaluate on every change until `pred` holds (bounded)."""
        result: list[Outcome] = []

        def check() -> bool:
            outcome = self.follower.evaluate(prefer)
            result[:] = [outcome]
            return pred(outcome)

        await eventually(check)
        return result[0]


def is_ready(name: str) -> Callable[[Outcome], bool]:
    return lambda o: isinstance(o, Ready) and o.resolution.pod.name == name


def deploy_cluster() -> FakeWatch:
    fw = FakeWatch()
    fw.put("deployments", workload("deployment", "web", WEB))
    fw.put("pods", web_pod("web-old", minute=1))
    fw.put("pods", web_pod("web-new", minute=5))
    return fw


def service_cluster() -> FakeWatch:
    fw = deploy_cluster()
    fw.put("services", web_service())
    fw.put("endpointslices", eps("web", [("web-old", True, False), ("web-new", True, False)]))
    return fw


async def test_syncing_until_the_first_list_arrives(pool: InformerPool) -> None:
    h = Harness(pool, deploy_cluster(), DEPLOY, 9000)
    assert isinstance(h.follower.evaluate(None), Syncing)  # not started
    h.follower.start()
    assert isinstance(h.follower.evaluate(None), Syncing)  # list in flight
    outcome = await h.until(lambda o: not isinstance(o, Syncing))
    assert isinstance(outcome, Ready)
    assert outcome.resolution.pod.name == "web-old"  # oldest Ready pod
    assert outcome.resolution.container_port == 9000
    h.follower.close()


async def test_workload_is_sticky_and_moves_when_its_pod_goes(pool: InformerPool) -> None:
    h = Harness(pool, deploy_cluster(), DEPLOY, 9000)
    h.follower.start()
    await h.until(is_ready("web-new"), prefer="web-new")
    assert h.changed.is_set()
    h.changed.clear()
    h.fw.delete("pods", "web-new")
    await eventually(h.changed.is_set)
    outcome = await h.until(is_ready("web-old"), prefer="web-new")
    assert isinstance(outcome, Ready)
    h.follower.close()


async def test_waiting_when_no_pod_is_ready(pool: InformerPool) -> None:
    h = Harness(pool, deploy_cluster(), DEPLOY, 9000)
    h.follower.start()
    await h.until(is_ready("web-old"))
    h.fw.put("pods", web_pod("web-old", minute=1, ready=False))
    h.fw.put("pods", web_pod("web-new", minute=5, ready=False))
    outcome = await h.until(lambda o: isinstance(o, Waiting))
    assert isinstance(outcome, Waiting)
    assert outcome.usable is None and outcome.attempt == 0 and outcome.next_retry_at is None
    assert "Ready" in outcome.reason
    h.fw.put("pods", web_pod("web-new", minute=5))
    await h.until(is_ready("web-new"))
    h.follower.close()


async def test_service_ready_gone_and_back(pool: InformerPool) -> None:
    h = Harness(pool, service_cluster(), SVC, 80)
    h.follower.start()
    outcome = await h.until(is_ready("web-old"))
    assert isinstance(outcome, Ready) and outcome.resolution.container_port == 9000
    await h.until(is_ready("web-new"), prefer="web-new")  # sticky
    h.fw.delete("services", "web")
    gone = await h.until(lambda o: isinstance(o, Gone))
    assert isinstance(gone, Gone)
    assert gone.message == "svc/web was deleted; waiting for it to return"
    h.fw.put("services", web_service())
    await h.until(is_ready("web-old"))
    h.follower.close()


async def test_service_that_never_existed(pool: InformerPool) -> None:
    fw = deploy_cluster()
    h = Harness(pool, fw, SVC, 80)
    h.follower.start()
    gone = await h.until(lambda o: not isinstance(o, Syncing))
    assert isinstance(gone, Gone) and "svc/web does not exist" in gone.reason
    h.follower.close()


async def test_service_port_removed_is_gone(pool: InformerPool) -> None:
    h = Harness(pool, service_cluster(), SVC, 80)
    h.follower.start()
    await h.until(is_ready("web-old"))
    h.fw.put("services", service("web", [{"name": "x", "port": 81, "targetPort": 9000}], WEB))
    gone = await h.until(lambda o: isinstance(o, Gone))
    assert isinstance(gone, Gone) and "80" in gone.reason
    h.follower.close()


async def test_service_endpoint_not_ready_moves(pool: InformerPool) -> None:
    h = Harness(pool, service_cluster(), SVC, 80)
    h.follower.start()
    await h.until(is_ready("web-new"), prefer="web-new")
    h.fw.put("endpointslices", eps("web", [("web-old", True, False), ("web-new", False, True)]))
    await h.until(is_ready("web-old"), prefer="web-new")
    h.follower.close()


async def test_service_selector_change_resubscribes_pods(pool: InformerPool) -> None:
    fw = service_cluster()
    v2 = web_pod("v2-1", minute=9)
    v2["metadata"]["labels"] = {"app": "web", "v": "2"}
    fw.put("pods", v2)
    h = Harness(pool, fw, SVC, 80)
    h.follower.start()
    await h.until(is_ready("web-old"))
    pods_queries = [c[1] for c in fw.calls if c[0] == "pods"]
    assert pods_queries == ["app=web"]
    fw.put("services", web_service({"app": "web", "v": "2"}))
    fw.put("endpointslices", eps("web", [("v2-1", True, False)]))
    await h.until(is_ready("v2-1"), prefer="web-old")
    assert [c[1] for c in fw.calls if c[0] == "pods"] == ["app=web", "app=web,v=2"]
    # the old pods informer was released: one pods watch left
    await eventually(lambda: fw.watching("pods") == 1)
    h.follower.close()
    await eventually(lambda: len(pool) == 0 and fw.streams == [])


async def test_pod_target_not_ready_is_waiting_but_usable(pool: InformerPool) -> None:
    fw = FakeWatch()
    fw.put("pods", web_pod("web-1", ready=False))
    h = Harness(pool, fw, Target("pod", "web-1"), 9000)
    h.follower.start()
    outcome = await h.until(lambda o: not isinstance(o, Syncing))
    assert isinstance(outcome, Waiting)
    assert outcome.usable is not None and outcome.usable.pod.name == "web-1"
    assert "not Ready" in outcome.reason
    fw.put("pods", web_pod("web-1"))
    await h.until(is_ready("web-1"))
    fw.put("pods", web_pod("web-1", deleting=True))
    term = await h.until(lambda o: isinstance(o, Waiting))
    assert isinstance(term, Waiting) and "terminating" in term.reason and term.usable is not None
    fw.delete("pods", "web-1")
    gone = await h.until(lambda o: isinstance(o, Gone))
    assert isinstance(gone, Gone) and "pod/web-1 was deleted" in gone.reason
    fw.put("pods", web_pod("web-1"))
    await h.until(is_ready("web-1"))
    h.follower.close()


async def test_pod_target_pending_is_waiting_without_a_usable_pod(pool: InformerPool) -> None:
    fw = FakeWatch()
    fw.put("pods", web_pod("web-1", phase="Pending", ready=False))
    h = Harness(pool, fw, Target("pod", "web-1"), 9000)
    h.follower.start()
    outcome = await h.until(lambda o: not isinstance(o, Syncing))
    assert isinstance(outcome, Waiting) and outcome.usable is None
    h.follower.close()


async def test_forbidden_owner_or_pods_is_unwatched(pool: InformerPool) -> None:
    fw = deploy_cluster()
    fw.forbidden.add("deployments")
    h = Harness(pool, fw, DEPLOY, 9000)
    h.follower.start()
    outcome = await h.until(lambda o: not isinstance(o, Syncing))
    assert isinstance(outcome, Unwatched) and "deployments" in outcome.reason
    h.follower.close()

    fw2 = service_cluster()
    fw2.forbidden.add("pods")
    h2 = Harness(pool, fw2, SVC, 80)
    h2.follower.start()
    outcome = await h2.until(lambda o: isinstance(o, Unwatched))
    assert isinstance(outcome, Unwatched) and "pods" in outcome.reason
    h2.follower.close()


async def test_forbidden_endpointslices_chooses_by_pod_readiness(pool: InformerPool) -> None:
    fw = service_cluster()
    fw.forbidden.add("endpointslices")
    h = Harness(pool, fw, SVC, 80)
    h.follower.start()
    await h.until(is_ready("web-old"))
    fw.put("pods", web_pod("web-old", minute=1, ready=False))
    await h.until(is_ready("web-new"), prefer="web-old")
    h.follower.close()


async def test_api_down_is_waiting_with_the_informer_retry(pool: InformerPool) -> None:
    h = Harness(pool, service_cluster(), SVC, 80)
    h.follower.start()
    await h.until(is_ready("web-old"))
    h.fw.cut(ClusterUnreachable("cannot reach the API server (refused)", cause="refused"))

    def waiting_with_timer(o: Outcome) -> bool:
        return isinstance(o, Waiting) and o.next_retry_at is not None and o.attempt >= 1

    outcome = await h.until(waiting_with_timer)
    assert isinstance(outcome, Waiting)
    assert outcome.reason == "cannot reach the API server (refused)"
    assert outcome.usable is None
    h.fw.heal()
    await h.until(is_ready("web-old"))
    h.follower.close()


async def test_close_releases_every_informer(pool: InformerPool) -> None:
    fw = service_cluster()
    h = Harness(pool, fw, SVC, 80)
    h.follower.start()
    await h.until(is_ready("web-old"))
    assert len(pool) == 3  # service, its slices, its pods
    other = Harness(pool, fw, SVC, 80)
    other.follower.start()
    await other.until(is_ready("web-old"))
    assert len(pool) == 3  # shared
    h.follower.close()
    assert len(pool) == 3
    other.follower.close()
    assert len(pool) == 0
    h.changed.clear()
    fw.put("pods", web_pod("web-9", minute=9))
    await eventually(lambda: fw.streams == [])
    assert not h.changed.is_set()
    assert isinstance(h.follower.evaluate(None), Syncing)
