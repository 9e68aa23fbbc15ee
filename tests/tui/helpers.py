"""Waiting helpers for Pilot tests: bounded, event-driven (no sleeps with thresholds)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot

LONG_LIVED = {"engine-events", "resources-watch", "http-log-events", "pod-log"}


async def settle(pilot: Pilot[Any], limit: float = 20.0) -> None:
    """Let every short-lived worker finish and the screen repaint."""

    async def run() -> None:
        for _ in range(3):
            pending = [
                w for w in pilot.app.workers if w.group not in LONG_LIVED and not w.is_finished
            ]
            if pending:
                await asyncio.gather(*(w.wait() for w in pending), return_exceptions=True)
            await pilot.pause()

    await asyncio.wait_for(run(), limit)


async def wait_until(
    pilot: Pilot[Any], predicate: Callable[[], bool], limit: float = 20.0, what: str = ""
) -> None:
    """Poll a UI predicate between repaints, with a deadline (fails with `what`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await pilot.pause(0.02)


def screen_lines(app: Any) -> list[str]:
    """The screen as the terminal shows it, one string per line (a private Textual API: the
    compositor's strips; the same one tests/tui/test_hostile_terminal_text.py uses)."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def screen_text(app: Any) -> str:
    return "\n".join(screen_lines(app))


def collapsed(text: str) -> str:
    """The screen's words with line breaks, borders, scrollbars and padding folded into
    single spaces: a sentence wrapped over lines reads whole again."""
    return re.sub(r"[\s│┃▊▎▌▐█▀▄▁▂▃▅▆▇]+", " ", text)
