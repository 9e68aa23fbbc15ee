"""Backoff: the retry delays a user sees in "reconnecting (attempt n, next try in x s)"."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfwd.kube.backoff import Backoff


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def no_jitter() -> float:
    return 0.5  # 1 + jitter * (2 * 0.5 - 1) == 1


def test_delays_double_from_initial_up_to_the_cap() -> None:
    backoff = Backoff(rng=no_jitter)
    delays = [backoff.failure() for _ in range(12)]
    assert delays[:8] == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6])
    assert delays[8:] == [30.0] * 4
    assert backoff.attempt == 12


def test_many_failures_stay_at_the_cap() -> None:
    backoff = Backoff(rng=no_jitter)
    for _ in range(5000):  # far past where factor ** n overflows a float
        delay = backoff.failure()
    assert delay == 30.0


def test_jitter_spreads_delays_below_the_cap_and_at_it() -> None:
    low = Backoff(rng=lambda: 0.0)
    high = Backoff(rng=lambda: 0.999999)
    assert low.failure() == pytest.approx(0.16)
    assert high.failure() == pytest.approx(0.24, rel=1e-5)
    for _ in range(20):
        at_cap_low, at_cap_high = low.failure(), high.failure()
    assert at_cap_low == pytest.approx(24.0)  # forwards at the cap still do not retry together
    assert at_cap_high == 30.0  # never above the cap


@given(
    r=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    failures=st.integers(min_value=1, max_value=300),
    jitter=st.floats(min_value=0.0, max_value=0.9),
)
def test_delay_is_positive_capped_and_within_jitter_of_the_base(
    r: float, failures: int, jitter: float
) -> None:
    backoff = Backoff(jitter=jitter, rng=lambda: r)
    for _ in range(failures):
        delay = backoff.failure()
    expected = min(0.2 * 2.0 ** min(failures - 1, 1000), 30.0)
    assert 0 < delay <= 30.0
    assert expected * (1 - jitter) - 1e-9 <= delay <= expected * (1 + jitter) + 1e-9


def test_healthy_for_reset_after_seconds_starts_a_new_episode() -> None:
    clock = FakeClock()
    backoff = Backoff(clock=clock, rng=no_jitter)
    for _ in range(5):
        backoff.failure()
    backoff.success()
    clock.now += 30.0
    assert backoff.attempt == 0
    assert backoff.failure() == pytest.approx(0.2)
    assert backoff.attempt == 1


def test_failing_again_within_reset_after_keeps_growing_the_delay() -> None:
    clock = FakeClock()
    backoff = Backoff(clock=clock, rng=no_jitter)
    for _ in range(3):
        backoff.failure()
    backoff.success()
    clock.now += 29.0
    assert backoff.attempt == 3
    assert backoff.failure() == pytest.approx(1.6)
    assert backoff.attempt == 4


def test_repeated_success_does_not_postpone_the_end_of_the_episode() -> None:
    clock = FakeClock()
    backoff = Backoff(clock=clock, rng=no_jitter)
    backoff.failure()
    backoff.failure()
    backoff.success()
    clock.now += 20.0
    backoff.success()
    clock.now += 10.0
    assert backoff.failure() == pytest.approx(0.2)


def test_a_failure_ends_the_healthy_period() -> None:
    clock = FakeClock()
    backoff = Backoff(clock=clock, rng=no_jitter)
    backoff.failure()
    backoff.success()
    clock.now += 20.0
    backoff.failure()  # flapped: the healthy period restarts at the next success
    backoff.success()
    clock.now += 20.0
    assert backoff.failure() == pytest.approx(0.8)


def test_reset_starts_over_from_initial() -> None:
    backoff = Backoff(rng=no_jitter)
    for _ in range(6):
        backoff.failure()
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.failure() == pytest.approx(0.2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": 0.0},
        {"initial": 60.0},
        {"factor": 0.5},
        {"jitter": 1.0},
        {"jitter": -0.1},
        {"reset_after": -1.0},
    ],
)
def test_bad_parameters_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)
