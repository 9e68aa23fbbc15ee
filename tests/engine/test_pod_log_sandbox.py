"""The pod log of a forward, followed (engine/podlogs.py) against the sandbox: new lines as the
pod writes them, the new pod's log after the forward moves, a container choice, the missing
right named on a 403, and a pod that writes megabytes a second kept in bounded memory with
what was dropped counted."""

from __future__ import annotations

import asyncio

import pytest

from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState
from portfwd.engine.podlogs import MAX_LINES, PodLogPage
from portfwd.sandbox.cluster import SandboxCluster
from tests.support.wait import eventually

pytestmark = pytest.mark.timeout(120)

TWO_CONTAINERS = {
    "namespaces": [
        {
            "name": "demo",
            "pods": [
                {
                    "name": "duo",
                    "labels": {"app": "duo"},
                    "containers": [
                        {"name": "proxy", "image": "sandbox/proxy:1", "ports": []},
                        {
                            "name": "app",
                            "image": "sandbox/app:1",
                            "ports": [{"containerPort": 8080, "backend": "http"}],
                        },
                    ],
                }
            ],
        }
    ]
}


class Reader:
    """A view's side: reads after the last line it has, keeps every line it got."""

    def __init__(self, manager: Manager, fid: str) -> None:
        self.manager, self.fid = manager, fid
        self.lines: list[str] = []
        self.page = PodLogPage()
        self.after = 0
        self.skipped = 0

    async def read(self, container: str | None = None) -> PodLogPage:
        page = await self.manager.pod_log(self.fid, container, self.after, wait=1)
        self.lines.extend(page.lines)
        self.skipped += page.skipped
        self.after, self.page = page.next, page
        return page

    async def until(self, check: object, limit: float = 20) -> None:
        async def loop() -> None:
            while not check():  # type: ignore[operator]
                await self.read()

        await asyncio.wait_for(loop(), limit)


async def test_the_tail_follows_new_lines_and_the_forward_to_another_pod(
    manager: Manager, sandbox: SandboxCluster
) -> None:
    fid = await manager.add(ForwardSpec(target="deploy/echo", remote_port=9000, namespace="demo"))
    first = manager.get(fid)
    assert first.state is ForwardState.ACTIVE, first.reason
    reader = Reader(manager, fid)
    await reader.until(lambda: any("container echo started" in line for line in reader.lines))
    assert reader.page.pod == first.pod and reader.page.container == "echo"
    assert reader.page.error == ""

    sandbox.say("demo", first.pod, "GET /healthz 200", "evil \x1b[31mred\x1b[0m \x07")
    await reader.until(lambda: "GET /healthz 200" in reader.lines)
    evil = next(line for line in reader.lines if line.startswith("evil"))
    assert "\x1b" not in evil and "\x07" not in evil and "red" in evil  # escaped, kept

    await sandbox.delete_pod("demo", first.pod)
    await eventually(lambda: manager.get(fid).pod not in ("", first.pod), limit=20)
    moved = manager.get(fid).pod
    await reader.until(lambda: reader.page.pod == moved)
    await reader.until(
        lambda: any("container echo started on" in line for line in reader.lines[-5:])
    )
    assert any(f"pod {moved} (the forward moved from {first.pod})" in line for line in reader.lines)
    sandbox.say("demo", moved, "after the move")
    await reader.until(lambda: "after the move" in reader.lines)


async def test_a_pod_with_two_containers_offers_both(tmp_path: object) -> None:
    cluster = SandboxCluster(TWO_CONTAINERS)
    await asyncio.wait_for(cluster.start(), 30)
    mgr = Manager(kubeconfig=str(cluster.kubeconfig_path))
    try:
        fid = await mgr.add(ForwardSpec(target="pod/duo", remote_port=8080, namespace="demo"))
        assert mgr.get(fid).state is ForwardState.ACTIVE, mgr.get(fid).reason
        reader = Reader(mgr, fid)
        # The container serving the forwarded port comes first.
        await reader.until(lambda: any("container app started" in x for x in reader.lines))
        assert reader.page.containers == ("proxy", "app") and reader.page.container == "app"
        await reader.read("proxy")
        await reader.until(lambda: any("container proxy started" in x for x in reader.lines))
        assert reader.page.container == "proxy"
    finally:
        await asyncio.wait_for(mgr.shutdown(), 20)
        await asyncio.wait_for(cluster.stop(), 30)


async def test_a_403_on_pods_log_names_the_missing_right(
    manager: Manager, sandbox: SandboxCluster
) -> None:
    # pf-create may port-forward (SPDY) and read pods, not their logs: the usual Role.
    spec = ForwardSpec(
        target="deploy/echo",
        remote_port=9000,
        namespace="demo",
        context="sandbox-pf-create",
        protocol="spdy",
    )
    fid = await manager.add(spec)
    assert manager.get(fid).state is ForwardState.ACTIVE, manager.get(fid).reason
    reader = Reader(manager, fid)
    await reader.until(lambda: reader.page.error != "")
    assert 'user "pf-create" may not get pods/log in namespace "demo"' in reader.page.error
    assert 'grant "get" on pods/log' in reader.page.error
    assert "\n" not in reader.page.error


async def test_a_pod_writing_megabytes_a_second_stays_bounded_and_counts_what_it_drops(
    manager: Manager, sandbox: SandboxCluster
) -> None:
    fid = await manager.add(ForwardSpec(target="deploy/echo", remote_port=9000, namespace="demo"))
    pod = manager.get(fid).pod
    sandbox.set_chatty("demo", pod)
    reader = Reader(manager, fid)
    await reader.until(lambda: reader.page.dropped > 50_000, limit=60)
    tail = manager.pod_logs.tails[fid]
    assert len(tail.lines) <= MAX_LINES
    assert any("chatter" in line for line in reader.lines)
    assert 0 < reader.page.dropped <= tail.dropped  # the tail's count, as of that read
    sandbox.set_chatty("demo", pod, False)
