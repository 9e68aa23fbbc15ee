"""The Forward state machine against a fake kubelet and a fake watch: reconnect on and off,
transient and permanent first-start failures, 403 on a tunnel, connections waiting for a pod,
stop and set_reconnect while reconnecting."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from portfwd.engine import forward as forward_mod
from portfwd.engine import target_follow
from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState, LogKind, LogLevel
from portfwd.errors import ResolveError
from portfwd.kube.errors import ApiError, Forbidden, NotFound
from portfwd.kube.objects import Pod, Workload
from portfwd.kube.resolve import Resolution, choose_for_pod, choose_for_workload
from portfwd.kube.targets import Target
from tests.kube.test_resolve import workload
from tests.support.wait import eventually

from ..tunnel.fakes import FakeClient, FakeKubelet, echo_server
from .conftest import POD_PORT, FakePool
from .test_informers import WEB, FakeWatch, unreachable, web_pod


class WatchingClient(FakeClient):
    """FakeClient (port-forwards to the fake kubelet) with a watch and API-like failures."""

    def __init__(self, url: str, fw: FakeWatch) -> None:
        super().__init__(url)
        self.fw = fw
        self.refuse_status: int | None = None  # every port-forward upgrade answers this
        self.upgrades = 0

    def watch(self, *args: Any, **kwargs: Any) -> Any:
        return self.fw.watch(*args, **kwargs)

    async def open_portforward(
        self, ns: str, pod: str, ports: Sequence[int]
    ) -> aiohttp.ClientWebSocketResponse:
        self.upgrades += 1
        if self.fw.down is not None:
            raise self.fw.down
        status = self.refuse_status
        if status == 403:
            raise Forbidden(
                f'User "dev" cannot create resource "pods/portforward" for pod "{pod}"',
                status=403,
            )
        if status == 404:
            raise NotFound(f'pods "{pod}" not found', status=404)
        if status is not None:
            raise ApiError(f"port-forward to pod {pod} failed: HTTP {status}", status=status)
        return await super().open_portforward(ns, pod, ports)


async def watch_resolve(client: Any, ns: str, target: Target, remote: int | str) -> Resolution:
    """`resolve` over the fake watch's objects (what the API would answer)."""
    fw: FakeWatch = client.fw
    await asyncio.sleep(0)
    if fw.down is not None:
        raise fw.down
    pods = [Pod.from_dict(p) for p in fw.objects["pods"].values()]
    if target.kind == "pod":
        found = fw.objects["pods"].get(target.name)
        if found is None:
            raise ResolveError(f'pod "{target.name}" not found in namespace "{ns}"')
        return choose_for_pod(target, Pod.from_dict(found), remote)
    assert target.kind == "deployment", target
    raw = fw.objects["deployments"].get(target.name)
    if raw is None:
        raise ResolveError(f'deployment "{target.name}" not found in namespace "{ns}"')
    return choose_for_workload(target, Workload.from_dict("deployment", raw), pods, remote)


@dataclass
class Env:
    manager: Manager
    fw: FakeWatch
    client: WatchingClient
    kubelet: FakeKubelet

    def forward(self, fid: str) -> forward_mod.Forward:
        return self.manager._forwards[fid]

    def snap(self, fid: str) -> ForwardSnapshot:
        return self.manager.get(fid)

    def messages(self, fid: str) -> list[str]:
        return [e.message for e in self.manager.logs(fid)]


@pytest_asyncio.fixture
async def env(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    monkeypatch.setattr(forward_mod, "resolve", watch_resolve)
    monkeypatch.setattr(target_follow, "resolve", watch_resolve)  # the follow loop asks again
    fw = FakeWatch()
    fw.put("deployments", workload("deployment", "web", WEB, replicas=1))
    fw.put("pods", web_pod("web-1", minute=1))
    async with echo_server() as echo:
        kubelet = FakeKubelet(backends={POD_PORT: echo})
        await kubelet.start()
        client = WatchingClient(kubelet.url, fw)
        manager = Manager(  # v4 only (see conftest): a short end-of-input limit
            clients=FakePool(client),  # type: ignore[arg-type]
            detect_wake=False,
            v4_eof_idle_limit=0.3,
        )
        try:
            yield Env(manager, fw, client, kubelet)
        finally:
            await asyncio.wait_for(manager.shutdown(), 10)
            await kubelet.stop()


def spec(*, reconnect: bool = True, target: str = "deploy/web", **kw: Any) -> ForwardSpec:
    return ForwardSpec(target=target, remote_port=POD_PORT, reconnect=reconnect, **kw)


async def roundtrip(port: int, payload: bytes = b"hello") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), 10)
    finally:
        writer.close()


def port_is_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def state_is(env: Env, fid: str, state: ForwardState) -> Any:
    return lambda: env.snap(fid).state is state


def forward_tasks() -> set[asyncio.Task[Any]]:
    return {
        t
        for t in asyncio.all_tasks()
        if not t.done() and t.get_name().startswith(("forward-", "informer", "close informer"))
    }


# --- following the pod -----------------------------------------------------------------------


async def test_reconnect_off_gives_up_when_the_pod_goes(env: Env) -> None:
    fid = await env.manager.add(spec(reconnect=False))
    snap = env.snap(fid)
    assert snap.state is ForwardState.ACTIVE and snap.pod == "web-1"
    port = snap.local_port
    assert await roundtrip(port) == b"hello"
    env.fw.delete("pods", "web-1")
    await eventually(state_is(env, fid, ForwardState.ERROR))
    snap = env.snap(fid)
    assert snap.bound == () and port_is_closed(port)
    assert "Ready" in snap.reason or "pod" in snap.reason
    assert not env.forward(fid).wanted
    await eventually(lambda: len(env.manager.informers or ()) == 0)


async def test_reconnect_on_waits_for_a_pod_then_switches(env: Env) -> None:
    fid = await env.manager.add(spec())
    port = env.snap(fid).local_port
    env.fw.delete("pods", "web-1")
    await eventually(state_is(env, fid, ForwardState.RECONNECTING))
    snap = env.snap(fid)
    assert snap.bound != () and not port_is_closed(port)
    assert "Ready" in snap.reason
    assert any(m.startswith("waiting: ") for m in env.messages(fid))
    env.fw.put("pods", web_pod("web-2", minute=2))
    await eventually(state_is(env, fid, ForwardState.ACTIVE))
    snap = env.snap(fid)
    assert snap.pod == "web-2" and snap.stats.reconnects == 1
    assert snap.attempt == 0 and snap.next_retry_at is None and snap.reason == ""
    assert snap.local_port == port
    assert f"switched to pod web-2 port {POD_PORT} (was web-1)" in env.messages(fid)
    assert await roundtrip(port) == b"hello"


async def test_while_down_no_pod_is_named_and_no_uptime_counts(env: Env) -> None:
    """Issue 12: a reconnecting forward once still named its deleted pod, and its uptime kept
    counting through the outage."""
    fid = await env.manager.add(spec())
    assert env.snap(fid).started_at is not None
    env.fw.delete("pods", "web-1")
    await eventually(state_is(env, fid, ForwardState.RECONNECTING))
    snap = env.snap(fid)
    assert snap.pod == "" and snap.started_at is None
    env.fw.put("pods", web_pod("web-2", minute=2))
    await eventually(state_is(env, fid, ForwardState.ACTIVE))
    snap = env.snap(fid)
    assert snap.pod == "web-2" and snap.started_at is not None


async def test_a_pod_switch_while_active_is_not_a_reconnect(env: Env) -> None:
    """Issue 12: "reconnects" counted pod switches of a forward that never left active."""
    env.fw.put("pods", web_pod("web-2", minute=2))
    fid = await env.manager.add(spec())
    env.fw.delete("pods", "web-1")
    await eventually(lambda: env.snap(fid).pod == "web-2")
    snap = env.snap(fid)
    assert snap.state is ForwardState.ACTIVE and snap.stats.reconnects == 0
    assert f"switched to pod web-2 port {POD_PORT} (was web-1)" in env.messages(fid)


async def test_gone_is_an_error_line_of_its_own_kind(env: Env) -> None:
    fid = await env.manager.add(spec())
    env.fw.delete("deployments", "web")
    await eventually(state_is(env, fid, ForwardState.ERROR))
    (gone,) = [e for e in env.manager.logs(fid) if e.kind is LogKind.GONE]
    assert gone.level is LogLevel.ERROR
    assert gone.message == "deploy/web was deleted; waiting for it to return"
    assert not [e for e in env.manager.logs(fid) if e.kind is LogKind.FAILED]


async def test_reconnect_off_a_deleted_target_says_only_what_happened(env: Env) -> None:
    fid = await env.manager.add(spec(reconnect=False))
    env.fw.delete("deployments", "web")
    await eventually(state_is(env, fid, ForwardState.ERROR))
    assert env.snap(fid).reason == "deploy/web was deleted"  # nothing waits for it
    (failed,) = [e for e in env.manager.logs(fid) if e.kind is LogKind.FAILED]
    assert failed.message == "deploy/web was deleted"


async def test_a_second_ready_pod_takes_over_at_once(env: Env) -> None:
    env.fw.put("pods", web_pod("web-2", minute=2))
    fid = await env.manager.add(spec())
    assert env.snap(fid).pod == "web-1"
    states: list[ForwardState] = []
    sub = env.manager.subscribe()
    env.fw.delete("pods", "web-1")
    await eventually(lambda: env.snap(fid).pod == "web-2")
    while (event := sub.get_nowait()) is not None:
        snapshot = getattr(event, "snapshot", None)
        if snapshot is not None:
            states.append(snapshot.state)
    assert ForwardState.RECONNECTING not in states
    assert env.snap(fid).state is ForwardState.ACTIVE
    assert await roundtrip(env.snap(fid).local_port) == b"hello"


async def test_target_deleted_is_error_but_bound_until_it_returns(env: Env) -> None:
    fid = await env.manager.add(spec())
    port = env.snap(fid).local_port
    env.fw.delete("deployments", "web")
    await eventually(state_is(env, fid, ForwardState.ERROR))
    snap = env.snap(fid)
    assert snap.reason == "deploy/web was deleted; waiting for it to return"
    assert snap.bound != () and env.forward(fid).wanted
    env.fw.put("deployments", workload("deployment", "web", WEB, replicas=1))
    await eventually(state_is(env, fid, ForwardState.ACTIVE))
    assert await roundtrip(port) == b"hello"


async def test_pod_target_deleted_waits_for_it_to_return(env: Env) -> None:
    fid = await env.manager.add(spec(target="pod/web-1"))
    env.fw.delete("pods", "web-1")
    await eventually(state_is(env, fid, ForwardState.ERROR))
    snap = env.snap(fid)
    assert "web-1 was deleted" in snap.reason and snap.bound != ()
    env.fw.put("pods", web_pod("web-1", minute=3))
    await eventually(state_is(env, fid, ForwardState.ACTIVE))
    assert f"active again: pod web-1 port {POD_PORT}" in env.messages(fid)


# --- first start -----------------------------------------------------------------------------


async def test_first_start_without_a_ready_pod_binds_and_reconnects(env: Env) -> None:
    env.fw.put("pods", web_pod("web-1", minute=1, ready=False))
    fid = await env.manager.add(spec())
    snap = env.snap(fid)
    assert snap.state is ForwardState.RECONNECTING and snap.bound != ()
    port = snap.local_port
    env.fw.put("pods", web_pod("web-1", minute=1))
    await eventually(state_is(env, fid, ForwardState.ACTIVE))
    assert await roundtrip(port) == b"hello"


async def test_first_start_with_the_api_down_binds_and_reconnects(env: Env) -> None:
    env.fw.down = unreachable()
    fid = await env.manager.add(spec())
    snap = env.snap(fid)
    assert snap.state is ForwardState.RECONNECTING and snap.bound != ()
    assert snap.attempt >= 1 and snap.next_retry_at is not None
    assert "refused" in snap.reason
    env.fw.heal()
    await eventually(state_is(env, fid, ForwardState.ACTIVE))
    assert await roundtrip(snap.local_port) == b"hello"


@pytest.mark.parametrize("down", [False, True])
async def test_first_start_transient_failure_with_reconnect_off_is_error(
    env: Env, down: bool
) -> None:
    if down:
        env.fw.down = unreachable()
    else:
        env.fw.put("pods", web_pod("web-1", minute=1, ready=False))
    fid = await env.manager.add(spec(reconnect=False))
    snap = env.snap(fid)
    assert snap.state is ForwardState.ERROR and snap.bound == ()
    assert not env.forward(fid).wanted


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"target": "deploy/nope"}, 'deployment "nope" not found'),  # ResolveError
        # A bad listen address (an InputError) no longer gets this far: ForwardSpec refuses
        # it when the spec is made (tests/store/test_hostile_types.py).
    ],
)
async def test_first_start_permanent_failure_is_error_unbound(
    env: Env, kw: dict[str, Any], why: str
) -> None:
    fid = await env.manager.add(spec(**kw))
    snap = env.snap(fid)
    assert snap.state is ForwardState.ERROR and snap.bound == ()
    assert why in snap.reason
    assert not env.forward(fid).wanted
    await eventually(lambda: len(env.manager.informers or ()) == 0)


async def test_first_start_port_in_use_is_error(env: Env) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        fid = await env.manager.add(spec(local_port=port))
        snap = env.snap(fid)
        assert snap.state is ForwardState.ERROR and snap.bound == ()


async def test_first_start_forbidden_preflight_is_error(env: Env) -> None:
    env.client.refuse_status = 403
    fid = await env.manager.add(spec())
    snap = env.snap(fid)
    assert snap.state is ForwardState.ERROR and snap.bound == ()
    assert "pods/portforward" in snap.reason


# --- tunnel failures -------------------------------------------------------------------------


async def test_forbidden_on_a_connection_is_error_unbound(env: Env) -> None:
    fid = await env.manager.add(spec())
    port = env.snap(fid).local_port
    env.client.refuse_status = 403
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await asyncio.wait_for(reader.read(), 10) == b""  # closed on us
    writer.close()
    await eventually(state_is(env, fid, ForwardState.ERROR))
    snap = env.snap(fid)
    assert "pods/portforward" in snap.reason and snap.bound == () and port_is_closed(port)
    assert snap.stats.errors == 1


async def test_a_failing_tunnel_reconnects_on_a_timer(env: Env) -> None:
    fid = await env.manager.add(spec())
    port = env.snap(fid).local_port
    env.client.refuse_status = 500
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"early")
    await writer.drain()
    await eventually(state_is(env, fid, ForwardState.RECONNECTING))
    snap = env.snap(fid)
    assert snap.attempt >= 1 and snap.next_retry_at is not None and "500" in snap.reason
    assert any(m.startswith("reconnecting (attempt 1, next try in ") for m in env.messages(fid))
    env.client.refuse_status = None
    # The connection that met the failure never reached the pod: it was held and is served
    # once the tunnel works again, bytes intact, instead of failing.
    assert await asyncio.wait_for(reader.readexactly(5), 10) == b"early"
    writer.close()
    await eventually(state_is(env, fid, ForwardState.ACTIVE))
    assert f"active again: pod web-1 port {POD_PORT}" in env.messages(fid)
    assert await roundtrip(port) == b"hello"
    assert env.snap(fid).stats.errors == 0


async def test_a_held_connection_fails_when_the_tunnel_stays_broken(env: Env) -> None:
    fid = await env.manager.add(spec())
    env.forward(fid).connect_wait = 0.3
    env.client.refuse_status = 500
    reader, writer = await asyncio.open_connection("127.0.0.1", env.snap(fid).local_port)
    assert await asyncio.wait_for(reader.read(), 10) == b""  # closed after connect_wait
    writer.close()
    await eventually(lambda: env.snap(fid).stats.errors == 1)
    assert any("HTTP 500" in m for m in env.messages(fid) if m.startswith("an error occurred"))


# --- connections while reconnecting ----------------------------------------------------------


async def test_a_connection_waits_for_a_pod_and_is_served(env: Env) -> None:
    fid = await env.manager.add(spec())
    port = env.snap(fid).local_port
    env.fw.put("pods", web_pod("web-1", minute=1, ready=False))
    await eventually(state_is(env, fid, ForwardState.RECONNECTING))
    opened = env.kubelet.opened
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"early")
    await writer.drain()
    await eventually(lambda: env.forward(fid).connections.waiting == 1)
    assert env.kubelet.opened == opened  # nothing sent to the pod yet
    env.fw.put("pods", web_pod("web-1", minute=1))
    assert await asyncio.wait_for(reader.readexactly(5), 10) == b"early"
    writer.close()
    assert env.snap(fid).state is ForwardState.ACTIVE


async def test_a_waiting_connection_fails_after_connect_wait(env: Env) -> None:
    fid = await env.manager.add(spec(), start=False)
    env.forward(fid).connect_wait = 0.2
    await env.manager.start(fid)
    port = env.snap(fid).local_port
    env.fw.delete("pods", "web-1")
    await eventually(state_is(env, fid, ForwardState.RECONNECTING))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    await eventually(lambda: env.snap(fid).stats.errors == 1)
    assert any("no Ready pod within 0.2 s" in m for m in env.messages(fid))
    assert env.forward(fid).connections.waiting == 0
    assert env.snap(fid).state is ForwardState.RECONNECTING


async def test_a_connection_failing_before_any_pod_names_the_asked_port(env: Env) -> None:
    """Issue 12: no pod resolved yet, the log said `forwarding 8080 -> 0`; it names the
    remote port the user asked for."""
    env.fw.put("pods", web_pod("web-1", minute=1, ready=False))
    fid = await env.manager.add(spec(), start=False)
    env.forward(fid).connect_wait = 0.2
    await env.manager.start(fid)
    assert env.snap(fid).state is ForwardState.RECONNECTING
    port = env.snap(fid).local_port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    await eventually(lambda: env.snap(fid).stats.errors == 1)
    failed = [m for m in env.messages(fid) if m.startswith("an error occurred")]
    assert failed and all(f"forwarding {port} -> {POD_PORT}: " in m for m in failed), failed
    assert not any(f"{port} -> 0" in m for m in env.messages(fid))


async def test_too_many_waiting_connections_are_refused(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    fid = await env.manager.add(spec())
    env.forward(fid).connections.max_waiting = 2
    port = env.snap(fid).local_port
    env.fw.delete("pods", "web-1")
    await eventually(state_is(env, fid, ForwardState.RECONNECTING))
    writers = []
    for _ in range(2):
        _, w = await asyncio.open_connection("127.0.0.1", port)
        writers.append(w)
        await asyncio.sleep(0)
    await eventually(lambda: env.forward(fid).connections.waiting == 2)
    reader, w = await asyncio.open_connection("127.0.0.1", port)
    writers.append(w)
    assert await asyncio.wait_for(reader.read(), 10) == b""
    assert any("are already waiting for a pod" in m for m in env.messages(fid))
    for w in writers:
        w.close()


# --- stop and set_reconnect while reconnecting -----------------------------------------------


async def test_stop_while_reconnecting_leaves_nothing(env: Env) -> None:
    before = forward_tasks()
    fid = await env.manager.add(spec())
    port = env.snap(fid).local_port
    env.fw.delete("pods", "web-1")
    await eventually(state_is(env, fid, ForwardState.RECONNECTING))
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    await eventually(lambda: env.forward(fid).connections.waiting == 1)
    await env.manager.stop(fid)
    snap = env.snap(fid)
    assert snap.state is ForwardState.STOPPED and snap.bound == () and port_is_closed(port)
    assert snap.stats.connections_open == 0
    await eventually(lambda: forward_tasks() <= before)
    assert len(env.manager.informers or ()) == 0
    await eventually(lambda: env.fw.streams == [])
    writer.close()


async def test_stop_while_the_api_is_down_leaves_nothing(env: Env) -> None:
    before = forward_tasks()
    fid = await env.manager.add(spec())
    env.fw.cut()
    await eventually(state_is(env, fid, ForwardState.RECONNECTING))
    await env.manager.stop(fid)
    assert env.snap(fid).bound == ()
    await eventually(lambda: forward_tasks() <= before)


async def test_set_reconnect_off_while_reconnecting_gives_up(env: Env) -> None:
    fid = await env.manager.add(spec())
    port = env.snap(fid).local_port
    env.fw.delete("pods", "web-1")
    await eventually(state_is(env, fid, ForwardState.RECONNECTING))
    await env.manager.set_reconnect(fid, False)
    await eventually(state_is(env, fid, ForwardState.ERROR))
    snap = env.snap(fid)
    assert snap.bound == () and port_is_closed(port) and not snap.spec.reconnect
    assert "auto-reconnect off" in env.messages(fid)


async def test_set_reconnect_off_while_active_keeps_it_active(env: Env) -> None:
    fid = await env.manager.add(spec())
    await env.manager.set_reconnect(fid, False)
    snap = env.snap(fid)
    assert snap.state is ForwardState.ACTIVE and not snap.spec.reconnect
    env.fw.delete("pods", "web-1")
    await eventually(state_is(env, fid, ForwardState.ERROR))
    assert env.snap(fid).bound == ()


async def test_restart_while_reconnecting_retries_at_once(env: Env) -> None:
    fid = await env.manager.add(spec())
    env.client.refuse_status = 500
    env.forward(fid).connect_wait = 0.2
    port = env.snap(fid).local_port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await eventually(state_is(env, fid, ForwardState.RECONNECTING))
    env.client.refuse_status = None
    snap = await env.manager.restart(fid)
    assert snap.state is ForwardState.ACTIVE and snap.attempt == 0


async def test_revalidate_probes_the_tunnel(env: Env) -> None:
    fid = await env.manager.add(spec())
    await eventually(lambda: env.fw.watching("pods") == 1)  # the follower is in place
    upgrades = env.client.upgrades
    env.manager.revalidate_all("test")
    await eventually(lambda: env.client.upgrades > upgrades)
    assert any(m == "re-validating: test" for m in env.messages(fid))
    await eventually(lambda: len(env.fw.calls) >= 4)  # informers listed again
    assert env.snap(fid).state is ForwardState.ACTIVE


@pytest.mark.parametrize(("code", "checked"), [(1012, True), (1001, True), (1000, False)])
async def test_a_server_closing_a_tunnel_gets_the_tunnel_checked(
    env: Env, code: int, checked: bool
) -> None:
    """An API server restarting (1012) or going away (1001) is worth a probe and a log line;
    a pod ending its connection normally (1000) is not."""

    async def say_bye(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"bye")  # the pod's side ends the connection first
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(say_bye, "127.0.0.1", 0)
    try:
        env.kubelet.backends[POD_PORT] = server.sockets[0].getsockname()[:2]
        env.kubelet.close_code = code
        fid = await env.manager.add(spec())
        port = env.snap(fid).local_port
        await eventually(lambda: env.fw.watching("pods") == 1)
        upgrades = env.client.upgrades
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 10) == b"bye"
        writer.close()
        await eventually(lambda: env.snap(fid).stats.connections_open == 0)
        if checked:
            await eventually(lambda: env.client.upgrades > upgrades + 1)  # the probe
            line = next(m for m in env.messages(fid) if "closed a tunnel" in m)
            assert f"({code} " in line
        else:
            # A connection decides on the probe before it counts as closed (above): by now
            # the line would be there, and nothing was asked of the API server but the one
            # upgrade the connection used.
            assert not any("closed a tunnel" in m for m in env.messages(fid))
            assert env.client.upgrades == upgrades + 1
        await eventually(state_is(env, fid, ForwardState.ACTIVE))
    finally:
        server.close()
        await server.wait_closed()


async def test_restart_keeps_an_automatic_local_port(env: Env) -> None:
    """`:80` (any free port): a restart must not move the forward to another port while the
    old one is free, or every tool pointed at it breaks."""
    fid = await env.manager.add(spec())  # local_port 0
    port = env.snap(fid).local_port
    assert (await env.manager.restart(fid)).local_port == port
    assert await roundtrip(port) == b"hello"
    await env.manager.stop(fid)
    with socket.socket() as squatter:  # someone took it meanwhile: any free port, as asked
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        snap = await env.manager.start(fid)
        assert snap.state is ForwardState.ACTIVE and snap.local_port not in (0, port)
