"""Waiting on a condition instead of sleeping a fixed time: every wait is bounded, and none of
them asserts how long it took (a slow machine is slower, not wrong)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(pred: Callable[[], bool], limit: float = 15.0, every: float = 0.02) -> None:
    """Until `pred()` holds (polling; TimeoutError after `limit` s)."""
    async with asyncio.timeout(limit):
        for _ in itertools.count():
            if pred():
                return
            await asyncio.sleep(every)


async def until(check: Callable[[], Awaitable[T]], limit: float = 30.0, every: float = 0.1) -> T:
    """Until the coroutine function `check` returns something truthy, which is returned
    (for checks that themselves wait: a subprocess, a request; TimeoutError after `limit` s)."""
    async with asyncio.timeout(limit):
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(every)
