"""The probe through the tunnel (issue 19 §1): `◐ degraded` with the reason while the pod's
port does not answer, active again when it does; the PING's round trip among the facts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio

from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState, LogKind
from portfwd.sandbox.cluster import SandboxCluster
from tests.support.wait import eventually


@pytest_asyncio.fixture
async def manager(sandbox: SandboxCluster) -> AsyncIterator[Manager]:
    mgr = Manager(kubeconfig=str(sandbox.kubeconfig_path), ping_interval=1)
    try:
        yield mgr
    finally:
        await asyncio.wait_for(mgr.shutdown(), 10)


def _health_lines(mgr: Manager, fid: str) -> list[str]:
    return [e.message for e in mgr.logs(fid) if e.kind is LogKind.HEALTH]


async def test_refusing_backend_degrades_and_recovers(
    manager: Manager, sandbox: SandboxCluster
) -> None:
    spec = ForwardSpec(target="svc/web", remote_port=80, probe="http:/healthz", probe_interval=2)
    fid = await manager.add(spec)
    await eventually(lambda: manager.get(fid).health.probe_ok is True)
    snap = manager.get(fid)
    assert snap.state is ForwardState.ACTIVE
    assert snap.health.probe_result == "HTTP 200 OK"

    await sandbox.set_backend_refusing("demo", snap.pod, 8080)
    await eventually(lambda: manager.get(fid).state is ForwardState.DEGRADED)
    down = manager.get(fid)
    assert down.reason == "probe http:/healthz: refused (nothing listens on the port)"
    assert down.health.probe_ok is False
    assert down.bound and down.pod == snap.pod  # still bound and routed: only the port is down

    await sandbox.set_backend_refusing("demo", snap.pod, 8080, refusing=False)
    await eventually(lambda: manager.get(fid).state is ForwardState.ACTIVE)
    assert manager.get(fid).reason == ""
    lines = _health_lines(manager, fid)
    # One line per change, never one per probe (a loaded machine may add a timeout episode).
    assert len(lines) < 10, lines
    assert lines[0] == "probe http:/healthz answers (HTTP 200 OK)"
    refused = "degraded: probe http:/healthz: refused (nothing listens on the port)"
    assert refused in lines
    assert lines[-1] == "probe http:/healthz answers (HTTP 200 OK): active again"


async def test_hung_backend_times_out(manager: Manager, sandbox: SandboxCluster) -> None:
    spec = ForwardSpec(target="svc/web", remote_port=80, probe="http:/", probe_interval=2)
    fid = await manager.add(spec)
    await eventually(lambda: manager.get(fid).health.probe_ok is True)
    pod = manager.get(fid).pod
    await sandbox.set_backend_silent("demo", pod, 8080)
    await eventually(lambda: manager.get(fid).state is ForwardState.DEGRADED)
    assert manager.get(fid).reason == "probe http:/: no answer within 1.6 s (timeout)"
    await sandbox.set_backend_silent("demo", pod, 8080, silent=False)
    await eventually(lambda: manager.get(fid).state is ForwardState.ACTIVE)


async def test_probe_path_that_404s(manager: Manager) -> None:
    spec = ForwardSpec(target="svc/web", remote_port=80, probe="http:/nope", probe_interval=1)
    fid = await manager.add(spec)
    await eventually(lambda: manager.get(fid).state is ForwardState.DEGRADED)
    assert manager.get(fid).reason == "probe http:/nope: HTTP 404 Not Found"


async def test_http_probe_to_a_port_that_is_not_http(manager: Manager) -> None:
    spec = ForwardSpec(target="svc/echo", remote_port="tcp", probe="http:/healthz")
    fid = await manager.add(spec)
    await eventually(lambda: manager.get(fid).state is ForwardState.DEGRADED)
    reason = manager.get(fid).reason
    assert reason == 'probe http:/healthz: not HTTP: the answer starts with "GET /healthz HTT"'


async def test_tcp_probe_and_ping_round_trip(manager: Manager, sandbox: SandboxCluster) -> None:
    spec = ForwardSpec(target="svc/echo", remote_port="tcp", probe="tcp", probe_interval=1)
    fid = await manager.add(spec)
    await eventually(lambda: manager.get(fid).health.probe_ok is True)
    assert manager.get(fid).health.probe_result == "connected"
    # The session's own PING (every second here) shows up with its round trip.
    await eventually(lambda: manager.get(fid).health.ping_rtt is not None)
    facts = manager.get(fid).health
    assert facts.ping_at is not None and facts.ping_rtt is not None and facts.ping_rtt >= 0
    assert facts.listening_at is not None and facts.resolved_at is not None
    assert facts.pod_ready is True and facts.verified_at is not None
    snap = manager.get(fid)
    await sandbox.set_backend_refusing("demo", snap.pod, 9000)
    await eventually(lambda: manager.get(fid).state is ForwardState.DEGRADED)
    assert manager.get(fid).reason == "probe tcp: refused (nothing listens on the port)"
