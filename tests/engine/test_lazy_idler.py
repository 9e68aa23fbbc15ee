"""The Idler's rules, on a fake clock: quiet for idle_after dozes a lazy forward, an open
connection keeps it awake however quiet, traffic moves the deadline, idle_stop stops it
(asleep or awake), a connection wakes a doze, also one that arrived just before it began."""

from __future__ import annotations

import asyncio

from portfwd.engine.lazy import Idler, starts_asleep, watched
from portfwd.engine.model import ForwardSpec


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def idler(open_now: list[int], pokes: list[int], **fields: object) -> tuple[Idler, Clock]:
    clock = Clock()
    spec = ForwardSpec(target="svc/web", remote_port=80, **fields)  # type: ignore[arg-type]
    return Idler(spec, lambda: open_now[0], lambda: pokes.append(1), clock=clock), clock


def test_which_forwards_need_one() -> None:
    assert not watched(ForwardSpec(target="svc/web", remote_port=80))
    assert watched(ForwardSpec(target="svc/web", remote_port=80, lazy=True))
    assert watched(ForwardSpec(target="svc/web", remote_port=80, idle_stop=60))
    assert starts_asleep(ForwardSpec(target="svc/web", remote_port=80, lazy=True))
    named = ForwardSpec(target="svc/web", remote_port="https", local_from_remote=True, lazy=True)
    assert not starts_asleep(named)  # it must resolve to know its port


async def test_quiet_for_idle_after_dozes_and_traffic_moves_the_deadline() -> None:
    open_now, pokes = [0], []
    it, clock = idler(open_now, pokes, lazy=True, idle_after=60)
    it.asleep = False  # awake: the first connection came
    clock.now += 59
    it.check()
    assert not it.due
    it.touch()  # a byte
    clock.now += 59
    it.check()
    assert not it.due
    clock.now += 1
    it.check()
    assert it.idle_due and not it.stop_due and pokes == [1]


async def test_an_open_connection_keeps_it_awake() -> None:
    open_now, pokes = [1], []
    it, clock = idler(open_now, pokes, lazy=True, idle_after=60)
    it.asleep = False
    clock.now += 3600
    it.check()
    assert not it.due  # an hour without a byte, but a connection is open
    open_now[0] = 0
    clock.now += 60
    it.check()
    assert it.idle_due


async def test_idle_stop_ends_a_doze_and_a_connection_wakes_one() -> None:
    open_now, pokes = [0], []
    it, clock = idler(open_now, pokes, lazy=True, idle_after=60, idle_stop=600)
    dozing = asyncio.ensure_future(it.sleep())
    await asyncio.sleep(0)
    assert not dozing.done()
    assert it.demand() is True  # a connection: it waits for the tunnel
    assert await asyncio.wait_for(dozing, 5) is True
    assert not it.asleep
    it.fell_asleep()
    clock.now += 600
    it.check()
    assert it.stop_due
    assert await asyncio.wait_for(it.sleep(), 5) is False


async def test_a_connection_between_the_decision_and_the_doze_is_not_lost() -> None:
    open_now, pokes = [0], []
    it, clock = idler(open_now, pokes, lazy=True, idle_after=60)
    it.asleep = False
    clock.now += 60
    it.check()
    assert it.idle_due
    it.demand()  # accepted while the forward was closing its tunnel
    it.fell_asleep()
    assert await asyncio.wait_for(it.sleep(), 5) is True


async def test_an_eager_forward_with_idle_stop_never_dozes() -> None:
    open_now, pokes = [0], []
    it, clock = idler(open_now, pokes, idle_stop=30)
    assert not it.asleep and it.demand() is False
    clock.now += 29
    it.check()
    assert not it.due
    clock.now += 1
    it.check()
    assert it.stop_due and not it.idle_due


async def test_the_timer_task_fires_and_is_stopped() -> None:
    open_now = [0]
    spec = ForwardSpec(target="svc/web", remote_port=80, lazy=True, idle_after=0.05)
    poked = asyncio.Event()
    it = Idler(spec, lambda: open_now[0], poked.set)
    it.asleep = False
    it.start()
    await asyncio.wait_for(poked.wait(), 10)
    assert it.idle_due
    await it.close()
