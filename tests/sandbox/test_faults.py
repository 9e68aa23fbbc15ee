"""The sandbox's fault controls: rollout restart and its completion, the rolling update's
surge, terminating pods and their connections, and the port-forward upgrade counter."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from portfwd.constants import PORTFORWARD_V4_BINARY
from portfwd.sandbox.cluster import SandboxCluster
from portfwd.sandbox.store import Event

from .helpers import ssl_ctx

LIMIT = 30.0

THREE_REPLICAS = {
    "namespaces": [
        {
            "name": "roll",
            "deployments": [
                {
                    "name": "app",
                    "replicas": 3,
                    "labels": {"app": "app"},
                    "containers": [
                        {
                            "name": "app",
                            "image": "sandbox/echo:1.0",
                            "ports": [{"name": "echo", "containerPort": 9000, "backend": "echo"}],
                        }
                    ],
                }
            ],
        }
    ]
}


def ready(pod: dict[str, Any]) -> bool:
    conds = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def terminating(pod: dict[str, Any]) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


async def test_rollout_restart_surges_one_and_never_drops_below_three() -> None:
    """maxSurge 25% / maxUnavailable 25% of 3 replicas = surge 1, unavailable 0."""
    async with SandboxCluster(THREE_REPLICAS) as sb:
        old = set(sb.pod_names("roll"))
        assert len(old) == 3
        seen: list[tuple[str, int, int]] = []  # (what happened, live pods, live Ready pods)

        def on_event(ev: Event) -> None:
            if ev.resource != "pods":
                return
            pods = [p for p in sb.store.list("pods", "roll") if not terminating(p)]
            name = ev.new["metadata"]["name"]
            what = "new" if name not in old else "old"
            if ev.type == "ADDED":
                what += " created"
            elif terminating(ev.new) or ev.type == "DELETED":
                what += " terminating" if ev.type == "MODIFIED" else " gone"
            elif ready(ev.new):
                what += " ready"
            else:
                what += " changed"
            seen.append((what, len(pods), sum(ready(p) for p in pods)))

        sb.store.listeners.append(on_event)
        try:
            await sb.rollout_restart("roll", "app")
            assert await sb.wait_rollout("roll", "app", within=LIMIT)
        finally:
            sb.store.listeners.remove(on_event)

        new = set(sb.pod_names("roll"))
        assert len(new) == 3 and not new & old
        assert max(live for _, live, _ in seen) == 4  # one surge pod at a time
        assert min(ok for _, _, ok in seen) == 3  # never fewer than 3 Ready
        whats = [w for w, _, _ in seen]
        assert (
            whats.index("new created") < whats.index("new ready") < whats.index("old terminating")
        )
        dep = sb.get_object("deployments", "roll", "app")
        assert dep is not None
        annotations = dep["spec"]["template"]["metadata"]["annotations"]
        assert "kubectl.kubernetes.io/restartedAt" in annotations
        assert dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"


async def test_two_restarts_in_a_row_are_two_rollouts(sandbox: SandboxCluster) -> None:
    await sandbox.rollout_restart("demo", "echo")
    assert await sandbox.wait_rollout("demo", "echo", within=LIMIT)
    first = set(sandbox.pod_names("demo", {"app": "echo"}))
    await sandbox.rollout_restart("demo", "echo")
    assert await sandbox.wait_rollout("demo", "echo", within=LIMIT)
    second = set(sandbox.pod_names("demo", {"app": "echo"}))
    assert len(second) == 2 and not first & second


async def test_wait_rollout_needs_every_replica_ready(sandbox: SandboxCluster) -> None:
    # demo/web has one NotReady replica: not a complete rollout, and nothing will change.
    assert not await sandbox.wait_rollout("demo", "web", within=0.2)
    await sandbox.rollout_restart("demo", "web")
    assert await sandbox.wait_rollout("demo", "web", within=LIMIT)
    pods = [
        sandbox.get_object("pods", "demo", n) for n in sandbox.pod_names("demo", {"app": "web"})
    ]
    assert len(pods) == 3 and all(p is not None and ready(p) for p in pods)
    assert not await sandbox.wait_rollout("demo", "no-such", within=0.1)


async def test_rollout_restart_of_a_statefulset(sandbox: SandboxCluster) -> None:
    uids = {
        n: sandbox.get_object("pods", "data", n)["metadata"]["uid"]  # type: ignore[index]
        for n in sandbox.pod_names("data", {"app": "postgres"})
    }
    await sandbox.rollout_restart("data", "postgres", resource="statefulsets")
    assert await sandbox.wait_rollout("data", "postgres", within=LIMIT, resource="statefulsets")
    for name, uid in uids.items():
        pod = sandbox.get_object("pods", "data", name)
        assert pod is not None and pod["metadata"]["uid"] != uid and ready(pod)


async def test_rollout_restart_of_nothing(sandbox: SandboxCluster) -> None:
    with pytest.raises(KeyError):
        await sandbox.rollout_restart("demo", "no-such")
    with pytest.raises(ValueError, match="cannot restart pods"):
        await sandbox.rollout_restart("demo", "toolbox", resource="pods")


async def dial_toolbox(sb: SandboxCluster) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    pod = sb.get_object("pods", "demo", "toolbox")
    assert pod is not None
    return await sb.dial("demo", "toolbox", pod["metadata"]["uid"], 7000)


async def line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"hello\n")
    await writer.drain()
    return await asyncio.wait_for(reader.readline(), LIMIT)


async def test_terminating_pod_drops_connections_at_once_by_default() -> None:
    async with SandboxCluster(termination_grace=600) as sb:
        reader, writer = await dial_toolbox(sb)
        assert await line(reader, writer) == b"toolbox hello\n"
        pod = sb.get_object("pods", "demo", "toolbox")
        assert pod is not None
        await sb.delete_pod("demo", "toolbox")
        assert await asyncio.wait_for(reader.read(), LIMIT) == b""
        writer.close()
        terminating_pod = sb.get_object("pods", "demo", "toolbox")
        assert terminating_pod is not None and terminating(terminating_pod)
        with pytest.raises(ConnectionRefusedError):
            await dial_toolbox(sb)


async def test_terminating_pod_can_keep_serving_until_it_is_gone() -> None:
    async with SandboxCluster(termination_grace=600, terminating_keeps_connections=True) as sb:
        reader, writer = await dial_toolbox(sb)
        await sb.delete_pod("demo", "toolbox")
        assert await line(reader, writer) == b"toolbox hello\n"  # the open one still works
        r2, w2 = await dial_toolbox(sb)  # and a new one to the terminating pod
        assert await line(r2, w2) == b"toolbox hello\n"
        sb.force_delete_pod("demo", "toolbox")  # the container is gone: both drop
        assert await asyncio.wait_for(reader.read(), LIMIT) == b""
        assert await asyncio.wait_for(r2.read(), LIMIT) == b""
        writer.close()
        w2.close()


async def test_terminating_pod_goes_after_the_grace_and_drops_connections() -> None:
    async with SandboxCluster(termination_grace=0.2, terminating_keeps_connections=True) as sb:
        reader, writer = await dial_toolbox(sb)
        await sb.delete_pod("demo", "toolbox")
        assert await sb.wait_for(lambda: sb.get_object("pods", "demo", "toolbox") is None)
        assert await asyncio.wait_for(reader.read(), LIMIT) == b""
        writer.close()


async def test_portforward_requests_counts_upgrades(sandbox: SandboxCluster) -> None:
    assert sandbox.portforward_requests == 0
    url = sandbox.url + "/api/v1/namespaces/demo/pods/toolbox/portforward"
    headers = {"Authorization": f"Bearer {sandbox.tokens.admin}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=LIMIT)) as s:
        with pytest.raises(aiohttp.WSServerHandshakeError):  # a bad port: no upgrade
            await s.ws_connect(
                url + "?ports=0",
                protocols=(PORTFORWARD_V4_BINARY,),
                headers=headers,
                ssl=ssl_ctx(sandbox),
            )
        assert sandbox.portforward_requests == 0
        async with s.ws_connect(
            url + "?ports=7000",
            protocols=(PORTFORWARD_V4_BINARY,),
            headers=headers,
            ssl=ssl_ctx(sandbox),
        ) as ws:
            first = await ws.receive_bytes(timeout=LIMIT)  # the data channel's port prefix
            assert first == b"\x00" + (7000).to_bytes(2, "little")
            assert sandbox.portforward_requests == 1
