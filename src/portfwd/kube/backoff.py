"""Retry delays for anything that keeps failing: exponential, jittered, capped, and forgiving.

The one retry policy of portfwd: a forward that loses its pod, an informer or the browse
view whose watch is down, and a watch stream resuming after a drop (`kube/watch.py`, with a
shorter cap) all wait on a :class:`Backoff`. It lives in kube/, the lowest layer that retries.

A forward that loses its pod retries after 0.2 s, then 0.4, 0.8, ... up to 30 s, so a brief
blip heals at once while a long outage does not hammer the API server. Each delay is jittered
(by default +-20 %) so that many forwards failing together (API server restart, laptop
waking up) spread their retries instead of arriving in lockstep.

An *episode* is a run of failures. It ends only after the forward has stayed healthy for
`reset_after` seconds: a forward that flaps (connects, fails again a second later) keeps
growing its delay instead of restarting at 0.2 s every time. A manual restart (`reset()`)
always starts over.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable


class Backoff:
    """The delay before each retry of one thing; see the module docstring for the policy."""

    def __init__(
        self,
        *,
        initial: float = 0.2,
        factor: float = 2.0,
        cap: float = 30.0,
        jitter: float = 0.2,
        reset_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        # Rejected here so that a bad value fails at construction, not as a zero or negative
        # delay (a busy retry loop) much later.
        if not 0 < initial <= cap:
            raise ValueError("backoff needs 0 < initial <= cap")
        if factor < 1:
            raise ValueError("backoff factor must be at least 1")
        if not 0 <= jitter < 1:
            raise ValueError("backoff jitter must be in [0, 1)")
        if reset_after < 0:
            raise ValueError("backoff reset_after must not be negative")
        self.initial = initial
        self.factor = factor
        self.cap = cap
        self.jitter = jitter
        self.reset_after = reset_after
        self._clock = clock
        self._rng = rng
        self._attempt = 0
        self._healthy_since: float | None = None

    @property
    def attempt(self) -> int:
        """Failures in the current episode (0 once the forward has been healthy long enough)."""
        self._end_episode_if_healthy()
        return self._attempt

    def failure(self) -> float:
        """Record one failure and return the delay, in seconds, before the next try."""
        self._end_episode_if_healthy()
        self._healthy_since = None
        self._attempt += 1
        return self._delay(self._attempt)

    def success(self) -> None:
        """The forward is healthy from now on; the episode ends once it stays so `reset_after` s.

        Repeated calls keep the first time: being told "still healthy" must not postpone the
        end of the episode.
        """
        if self._healthy_since is None:
            self._healthy_since = self._clock()

    def reset(self) -> None:
        """Forget the episode (a manual restart): the next failure waits `initial` again."""
        self._attempt = 0
        self._healthy_since = None

    def _end_episode_if_healthy(self) -> None:
        since = self._healthy_since
        if since is not None and self._clock() - since >= self.reset_after:
            self._attempt = 0

    def _delay(self, n: int) -> float:
        # Jitter applies to the capped base, so forwards that have all reached the cap still
        # spread over [cap * (1 - jitter), cap] rather than all retrying exactly at the cap.
        try:
            base = self.initial * self.factor ** (n - 1)
        except OverflowError:  # hundreds of failures: far beyond the cap anyway
            base = math.inf
        base = min(base, self.cap)
        spread = 1 + self.jitter * (2 * self._rng() - 1)
        return min(base * spread, self.cap)
