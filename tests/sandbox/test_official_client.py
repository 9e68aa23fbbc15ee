"""The official `kubernetes` Python client (test-only oracle) reads and watches the sandbox."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from portfwd.sandbox.cluster import SandboxCluster

kubernetes = pytest.importorskip("kubernetes")


def _api(sb: SandboxCluster, context: str = "sandbox") -> Any:
    cfg = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(sb.kubeconfig_path), context=context, client_configuration=cfg
    )
    return kubernetes.client.ApiClient(cfg)


async def test_list_pods_with_label_selector(sandbox: SandboxCluster) -> None:
    def work() -> list[str]:
        with _api(sandbox) as api:
            v1 = kubernetes.client.CoreV1Api(api)
            pods = v1.list_namespaced_pod("demo", label_selector="app in (echo)")
            return sorted(p.metadata.name for p in pods.items)

    names = await asyncio.to_thread(work)
    assert names == sorted(sandbox.pod_names("demo", {"app": "echo"}))
    assert len(names) == 2


async def test_cert_context_and_apps_api(sandbox: SandboxCluster) -> None:
    def work() -> tuple[int, list[str]]:
        with _api(sandbox, "sandbox-cert") as api:
            apps = kubernetes.client.AppsV1Api(api)
            dep = apps.read_namespaced_deployment("web", "demo")
            disc = kubernetes.client.DiscoveryV1Api(api)
            slices = disc.list_namespaced_endpoint_slice(
                "demo", label_selector="kubernetes.io/service-name=web"
            )
            return dep.status.ready_replicas, [
                e.target_ref.name for s in slices.items for e in s.endpoints
            ]

    ready, endpoints = await asyncio.to_thread(work)
    assert ready == 2
    assert sorted(endpoints) == sorted(sandbox.pod_names("demo", {"app": "web"}))


async def test_forbidden_is_an_api_exception(sandbox: SandboxCluster) -> None:
    def work() -> Any:
        with _api(sandbox, "sandbox-nobody") as api:
            try:
                kubernetes.client.CoreV1Api(api).list_namespaced_pod("demo")
            except kubernetes.client.ApiException as exc:
                return exc
        return None

    exc = await asyncio.to_thread(work)
    assert exc is not None and exc.status == 403


async def test_watch_sees_deletion_and_replacement(sandbox: SandboxCluster) -> None:
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    stop = threading.Event()

    def work() -> None:
        with _api(sandbox) as api:
            v1 = kubernetes.client.CoreV1Api(api)
            w = kubernetes.watch.Watch()
            for ev in w.stream(
                v1.list_namespaced_pod, "demo", label_selector="app=echo", timeout_seconds=30
            ):
                loop.call_soon_threadsafe(
                    events.put_nowait, (ev["type"], ev["object"].metadata.name)
                )
                if stop.is_set():
                    w.stop()

    thread = asyncio.ensure_future(asyncio.to_thread(work))
    try:
        seen = {await asyncio.wait_for(events.get(), 20) for _ in range(2)}
        assert {t for t, _ in seen} == {"ADDED"}
        victim = sorted(n for _, n in seen)[0]
        await sandbox.delete_pod("demo", victim)

        # The replacement is created as soon as the victim starts terminating, so its
        # ADDED may come before the victim's DELETED.
        async def both() -> str:
            deleted, added = False, ""
            while not (deleted and added):
                t, name = await events.get()
                deleted = deleted or (t == "DELETED" and name == victim)
                if t == "ADDED" and name != victim:
                    added = name
            return added

        new = await asyncio.wait_for(both(), 20)
        assert new.startswith("echo-")
    finally:
        stop.set()
        # One more event so the blocking watch loop in the thread sees `stop`.
        poke = sandbox.pod_names("demo", {"app": "echo"})[0]
        await sandbox.set_pod_ready("demo", poke, False)
        await sandbox.set_pod_ready("demo", poke, True)
        await asyncio.wait_for(thread, 40)
