"""Notice that the machine slept (laptop lid closed) so every forward is re-validated at once.

After a suspend, TCP connections and WebSockets to the API server are usually dead, but
nothing says so until keepalives or TCP timeouts fire, which can take minutes. Instead the
engine compares two clocks every few seconds:

- the wall clock (`time.time()`), which keeps counting while the machine is suspended, and
- `time.monotonic()`, which stops while it is suspended (Linux CLOCK_MONOTONIC, macOS
  mach_absolute_time).

Between two checks both advance by the same amount, however late the event loop runs the
check (a busy loop delays both equally). If their advances differ by more than `threshold`
seconds, the difference is time the machine spent asleep, and `on_wake(jump)` is called.

A wall-clock step (an NTP correction, the user changing the time) also counts as a jump, in
either direction. That is harmless, even welcome: a jump only makes the engine re-validate its
forwards, which is cheap and changes nothing for healthy ones. (Linux's CLOCK_BOOTTIME would
see suspends only; the wall clock sees both, on every platform.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

Clock = Callable[[], float]


def _default_clocks() -> tuple[Clock, Clock]:
    return time.time, time.monotonic


class WakeDetector:
    """Calls `on_wake(seconds)` when the two clocks disagree by more than `threshold`.

    `clocks` is (a clock that counts suspended time, a clock that does not); tests pass fakes.
    """

    def __init__(
        self,
        on_wake: Callable[[float], None],
        *,
        interval: float = 5.0,
        threshold: float = 3.0,
        clocks: tuple[Clock, Clock] | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("wake detector interval must be positive")
        if threshold < 0:
            raise ValueError("wake detector threshold must not be negative")
        self._on_wake = on_wake
        self.interval = interval
        self.threshold = threshold
        self._suspend_clock, self._awake_clock = clocks if clocks is not None else _default_clocks()
        self._last_suspend = self._suspend_clock()
        self._last_awake = self._awake_clock()
        self._task: asyncio.Task[None] | None = None

    def check(self) -> float | None:
        """Return the jump in seconds (and call `on_wake`) if the clocks disagree, else None.

        The baseline moves to now *before* `on_wake` runs, so one sleep is reported once even
        if `on_wake` raises (the exception propagates to the caller).
        """
        suspend, awake = self._suspend_clock(), self._awake_clock()
        jump = (suspend - self._last_suspend) - (awake - self._last_awake)
        self._last_suspend, self._last_awake = suspend, awake
        if abs(jump) <= self.threshold:
            return None
        self._on_wake(jump)
        return jump

    def start(self) -> None:
        """Check every `interval` seconds in a task this detector owns. Idempotent."""
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="wake-detector")

    async def stop(self) -> None:
        """Cancel the task and wait until it has ended. Idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        # asyncio.wait, not `await task`: our own cancellation (the caller being cancelled)
        # must still propagate, while the task's expected CancelledError must not.
        await asyncio.wait({task})

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.check()
            except Exception:
                # A failing callback must not end the detection of the next sleep.
                log.exception("wake detector: on_wake callback failed")
