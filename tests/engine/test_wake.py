"""WakeDetector with simulated clocks: a sleep is a jump of one clock against the other."""

from __future__ import annotations

import asyncio
import logging

import pytest

from portfwd.engine.wake import WakeDetector


class FakeClocks:
    """`suspend` counts suspended time, `awake` does not; `tick` advances both, as normal time."""

    def __init__(self) -> None:
        self.suspend_now = 5000.0
        self.awake_now = 100.0

    def suspend(self) -> float:
        return self.suspend_now

    def awake(self) -> float:
        return self.awake_now

    def tick(self, seconds: float) -> None:
        self.suspend_now += seconds
        self.awake_now += seconds


def make(clocks: FakeClocks) -> tuple[WakeDetector, list[float]]:
    woken: list[float] = []
    return WakeDetector(woken.append, clocks=(clocks.suspend, clocks.awake)), woken


def test_a_sleep_is_reported_once_with_its_length() -> None:
    clocks = FakeClocks()
    detector, woken = make(clocks)
    clocks.tick(5.0)
    clocks.suspend_now += 42.0
    jump = detector.check()
    assert jump == pytest.approx(42.0)
    assert woken == [pytest.approx(42.0)]
    clocks.tick(5.0)
    assert detector.check() is None  # re-baselined: the same sleep is not reported again
    assert len(woken) == 1


def test_drift_below_the_threshold_is_ignored() -> None:
    clocks = FakeClocks()
    detector, woken = make(clocks)
    clocks.tick(5.0)
    clocks.suspend_now += 2.9
    assert detector.check() is None
    clocks.tick(5.0)
    clocks.awake_now += 2.9
    assert detector.check() is None
    assert woken == []


def test_a_backwards_jump_is_reported_too() -> None:
    clocks = FakeClocks()
    detector, woken = make(clocks)
    clocks.tick(5.0)
    clocks.suspend_now -= 3600.0  # e.g. the wall clock stepped back an hour
    assert detector.check() == pytest.approx(-3600.0)
    assert woken == [pytest.approx(-3600.0)]


def test_default_clocks_see_no_jump_right_away() -> None:
    detector = WakeDetector(lambda _: None)
    assert detector.check() is None


class JumpingClocks:
    """Every read of the suspend clock is 100 s later: every check sees a sleep."""

    def __init__(self) -> None:
        self.suspend_now = 0.0

    def suspend(self) -> float:
        self.suspend_now += 100.0
        return self.suspend_now

    @staticmethod
    def awake() -> float:
        return 0.0


async def test_start_runs_the_check_and_stop_ends_the_task() -> None:
    clocks = JumpingClocks()
    woke = asyncio.Event()
    jumps: list[float] = []

    def on_wake(jump: float) -> None:
        jumps.append(jump)
        woke.set()

    before = asyncio.all_tasks()
    detector = WakeDetector(on_wake, interval=0.001, clocks=(clocks.suspend, clocks.awake))
    detector.start()
    detector.start()  # idempotent: still one task
    assert len(asyncio.all_tasks() - before) == 1
    try:
        async with asyncio.timeout(10):
            await woke.wait()
    finally:
        await detector.stop()
    assert jumps[0] == pytest.approx(100.0)
    assert asyncio.all_tasks() == before
    count = len(jumps)
    await asyncio.sleep(0.01)
    assert len(jumps) == count  # nothing checks any more
    await detector.stop()  # idempotent


async def test_stop_before_start_is_harmless() -> None:
    detector = WakeDetector(lambda _: None, interval=0.001)
    await detector.stop()


async def test_a_failing_callback_does_not_end_detection(caplog: pytest.LogCaptureFixture) -> None:
    clocks = JumpingClocks()
    second = asyncio.Event()
    calls: list[float] = []

    def on_wake(jump: float) -> None:
        calls.append(jump)
        if len(calls) == 1:
            raise RuntimeError("boom")
        second.set()

    detector = WakeDetector(on_wake, interval=0.001, clocks=(clocks.suspend, clocks.awake))
    with caplog.at_level(logging.ERROR, logger="portfwd.engine.wake"):
        detector.start()
        try:
            async with asyncio.timeout(10):
                await second.wait()
        finally:
            await detector.stop()
    assert len(calls) >= 2
    assert any(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in caplog.records), (
        caplog.text
    )


def test_check_lets_a_direct_caller_see_the_callback_error_and_still_rebaselines() -> None:
    clocks = FakeClocks()

    def on_wake(_: float) -> None:
        raise RuntimeError("boom")

    detector = WakeDetector(on_wake, clocks=(clocks.suspend, clocks.awake))
    clocks.suspend_now += 60.0
    with pytest.raises(RuntimeError):
        detector.check()
    assert detector.check() is None
