"""Regressions: bugs a review of the engine's follow/reconnect logic found (issue 4), each
stated as the behaviour a user should get."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from typing import Any

import aiohttp

from portfwd.engine.follow import Follower, Ready
from portfwd.engine.informers import InformerPool
from portfwd.engine.model import ForwardState
from portfwd.kube.backoff import Backoff
from portfwd.kube.errors import ClusterUnreachable
from portfwd.kube.targets import Target
from tests.kube.test_resolve import NS, eps, service, workload
from tests.support.wait import eventually

from .test_forward_states import Env, WatchingClient, env, spec, state_is
from .test_informers import WEB, FakeWatch, web_pod

__all__ = ["env"]  # the fixture


def pods_informer(env: Env) -> Any:
    assert env.manager.informers is not None
    return next(i for i in env.manager.informers._informers.values() if i.resource == "pods")


async def test_a_waiting_connection_is_closed_when_the_route_flickers(env: Env) -> None:
    """A waiter woken by `routable` must find a route still there: when the route was set
    and cleared again before the waiter ran, it once returned None and the connection was
    left open without a log line or a count: the client hung forever. Happens when the watch
    reports the pod gone while a probe to it runs (routing.Router.wait loops)."""
    fid = await env.manager.add(spec(), start=False)
    env.forward(fid).connect_wait = 0.5
    await env.manager.start(fid)
    port = env.snap(fid).local_port
    await eventually(lambda: env.fw.watching("pods") == 1)
    env.client.refuse_status = 500  # the tunnel fails: RECONNECTING on the forward's timer
    r1, w1 = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.wait_for(r1.read(), 10)
    w1.close()
    await eventually(state_is(env, fid, ForwardState.RECONNECTING))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)  # waits for a route
    await eventually(lambda: env.forward(fid).connections.waiting == 1)

    client = env.client
    original = WatchingClient.open_portforward

    async def probe_while_the_pod_goes(
        ns: str, pod: str, ports: Sequence[int]
    ) -> aiohttp.ClientWebSocketResponse:
        client.open_portforward = original.__get__(client)  # type: ignore[method-assign]
        env.fw.delete("pods", "web-1")  # the watch says: gone, while the kubelet still answers
        informer = pods_informer(env)
        await eventually(lambda: "web-1" not in informer.objects)
        return await original(client, ns, pod, ports)

    client.refuse_status = None
    client.open_portforward = probe_while_the_pod_goes  # type: ignore[method-assign]
    await eventually(lambda: env.forward(fid).connections.waiting == 0)
    # The connection must be either served or closed with a log line, never left open.
    try:
        got = await asyncio.wait_for(reader.read(), 5)
    except TimeoutError:
        got = b"<still open after 5 s>"
    finally:
        writer.close()
    assert got == b"", "the waiting connection was left open"
    assert env.snap(fid).stats.errors == 2


async def test_a_transient_first_start_preflight_failure_is_probed_before_active(
    env: Env,
) -> None:
    """forward.py:322-339 — a first start whose preflight fails transiently (500, 404) goes
    RECONNECTING without setting `_fault`; the follower's first Ready (fired=False, no fault)
    then skips the probe (428) and the forward is ACTIVE while every connection fails.
    Fix: `self._fault = str(exc)` when the first start ends in `_Retry`."""
    env.client.refuse_status = 500
    fid = await env.manager.add(spec())
    assert env.snap(fid).state is ForwardState.RECONNECTING
    await eventually(lambda: env.snap(fid).state is ForwardState.ACTIVE or env.client.upgrades >= 2)
    assert env.snap(fid).state is ForwardState.RECONNECTING, (
        f"ACTIVE after {env.client.upgrades} upgrade(s), all refused"
    )


async def test_set_reconnect_off_without_a_watch_gives_up_at_once(env: Env) -> None:
    """forward.py:432 — without a follower (watch forbidden, or follow=False) a wake with
    neither `fired` nor `_fault` evaluates nothing, so `set_reconnect(False)` while
    RECONNECTING waits for the next retry timer (up to 30 s). Fix: in `_follow`, when
    `not spec.reconnect` and the state is RECONNECTING/ERROR, give up with the current reason."""
    env.fw.forbidden.update({"deployments", "pods"})  # RBAC without watch
    env.fw.put("pods", web_pod("web-1", minute=1, ready=False))
    fid = await env.manager.add(spec(), start=False)
    env.forward(fid)._backoff = Backoff(initial=60, cap=60, jitter=0)
    await env.manager.start(fid)
    assert env.snap(fid).state is ForwardState.RECONNECTING
    await eventually(lambda: env.fw.calls != [])
    fwd = env.forward(fid)

    def unwatched() -> bool:
        return fwd.target_follow.follower is None and not fwd._wake.is_set()

    await eventually(unwatched)
    assert env.snap(fid).state is ForwardState.RECONNECTING
    await env.manager.set_reconnect(fid, False)
    await eventually(state_is(env, fid, ForwardState.ERROR), limit=5)


async def test_watch_events_do_not_bypass_the_retry_backoff(env: Env) -> None:
    """forward.py:428-429 and 494 — while RECONNECTING for a tunnel fault, every watch event
    (any pod of the selector changing) re-probes at once and counts a failed attempt: the
    backoff timer is bypassed and the attempt shown to the user jumps with unrelated events.
    Fix: while `_retry_at` is pending, probe only on the timer or when the chosen pod changed."""
    fid = await env.manager.add(spec(), start=False)
    env.forward(fid)._backoff = Backoff(initial=60, cap=60, jitter=0)
    await env.manager.start(fid)
    await eventually(lambda: env.fw.watching("pods") == 1)
    env.client.refuse_status = 500
    env.forward(fid).connect_wait = 0.2  # the failed connection is not held for a healed pod
    r, w = await asyncio.open_connection("127.0.0.1", env.snap(fid).local_port)
    await asyncio.wait_for(r.read(), 10)
    w.close()
    await eventually(state_is(env, fid, ForwardState.RECONNECTING))
    await eventually(lambda: not env.forward(fid)._wake.is_set())
    upgrades, attempt = env.client.upgrades, env.snap(fid).attempt
    informer = pods_informer(env)
    for n in range(3):  # other pods of the deployment come and go (a rollout)
        env.fw.put("pods", web_pod(f"web-x{n}", minute=9, ready=False))
        await eventually(lambda n=n: f"web-x{n}" in informer.objects)  # type: ignore[misc]
        await eventually(lambda: not env.forward(fid)._wake.is_set())
        await asyncio.sleep(0.05)  # let a probe, if any, finish
    assert (env.client.upgrades, env.snap(fid).attempt) == (upgrades, attempt)


async def test_waiting_connections_are_capped_in_a_burst(env: Env) -> None:
    """Waiting connections were once counted when their task started, not when accepted, so
    a burst accepted in one loop turn all passed the cap. They are counted in `accept`."""
    limit = 2
    socks: list[socket.socket] = []
    try:
        fid = await env.manager.add(spec())
        env.forward(fid).connections.max_waiting = limit
        port = env.snap(fid).local_port
        env.fw.delete("pods", "web-1")
        await eventually(state_is(env, fid, ForwardState.RECONNECTING))
        for _ in range(20):  # connect without letting the loop run: one accept burst
            s = socket.socket()
            s.connect(("127.0.0.1", port))
            socks.append(s)
        await eventually(
            lambda: env.snap(fid).stats.connections_total + env.snap(fid).stats.errors >= 20
        )
        await asyncio.sleep(0.05)
        assert env.forward(fid).connections.waiting <= limit
    finally:
        for s in socks:
            s.close()


async def test_a_restart_is_not_counted_as_a_reconnect(env: Env) -> None:
    """forward.py:528-530 — `_been_active` survives stop()/start(), so a manual restart of a
    healthy forward counts in `stats.reconnects` and logs "active again". Fix: reset
    `_been_active` (and `pod`) in start()."""
    fid = await env.manager.add(spec())
    snap = await env.manager.restart(fid)
    assert snap.state is ForwardState.ACTIVE
    assert snap.stats.reconnects == 0
    assert not any(m.startswith("active again") for m in env.messages(fid))


async def test_tls_failure_at_first_start_is_permanent(env: Env) -> None:
    """forward.py:128 — every ClusterUnreachable is transient, but the client itself treats
    causes tls/proxy as permanent (client.py `_TRANSIENT`): with a bad CA the forward binds
    and retries forever instead of failing with the one-line TLS error. Fix: in `_transient`,
    `isinstance(exc, ClusterUnreachable) and exc.cause in ("refused", "timeout", "lost", "dns")`."""
    env.fw.down = ClusterUnreachable(
        "TLS verification of 127.0.0.1:6443 failed: certificate signed by unknown authority",
        cause="tls",
    )
    fid = await env.manager.add(spec())
    snap = env.snap(fid)
    assert snap.state is ForwardState.ERROR and snap.bound == ()


async def test_revalidate_keeps_a_service_without_slice_permission_ready() -> None:
    """informers.py:122 — `Informer.restart()` (revalidate_all after a wake) clears `forbidden`
    but keeps `error` (the 403), so until the new watch fails again `Follower._down`
    (follow.py:446) reports Waiting("cannot watch endpointslices: ..."): after every wake a
    service forward without EndpointSlice permission goes RECONNECTING, clears its route,
    logs a warning, then "active again" (and counts a reconnect). Fix: restart() leaves a
    forbidden informer alone (a 403 is not healed by a sleep), or clears `error` too."""
    fw = FakeWatch()
    fw.put("deployments", workload("deployment", "web", WEB))
    fw.put("pods", web_pod("web-1", minute=1))
    fw.put("services", service("web", [{"name": "web", "port": 80, "targetPort": 9000}], WEB))
    fw.put("endpointslices", eps("web", [("web-1", True, False)]))
    fw.forbidden.add("endpointslices")
    pool = InformerPool()
    changed = asyncio.Event()
    follower = Follower(pool, fw, NS, Target("service", "web"), 80, changed)  # type: ignore[arg-type]
    follower.start()
    try:
        await eventually(lambda: isinstance(follower.evaluate(None), Ready))
        pool.restart_all()  # what Manager.revalidate_all does after a wake
        outcome = follower.evaluate("web-1")
        assert isinstance(outcome, Ready), outcome
    finally:
        follower.close()
        await asyncio.wait_for(pool.close(), 10)
