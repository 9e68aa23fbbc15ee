"""The event loop portfwd runs on: uvloop when it is installed, else asyncio's own.

uvloop (`pip install 'portfwd[fast]'`, Linux and macOS) moves bytes with less CPU than
asyncio's selector loop: measured side by side through the sandbox, plain SPDY went from 93
to 119 MB/s and new-connection p50 from 5.6 to 5.3 ms (bench/tunnel.py --uvloop and the
issue note have the figures). `PORTFWD_UVLOOP=0` keeps asyncio's loop even when uvloop is
there; nothing else changes with the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory(environ: dict[str, str] | None = None) -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop when it is importable and not turned off, else asyncio's default."""
    env = os.environ if environ is None else environ
    if env.get("PORTFWD_UVLOOP", "").strip() != "0":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, on the loop `loop_factory` picks."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


def stop_on_signals(stop: asyncio.Event, *, ignore: tuple[int, ...] = ()) -> list[int]:
    """SIGINT and SIGTERM set `stop` (signals in `ignore` are ignored) on the running loop;
    the signals handled, for `release_signals`. Only the main thread can: elsewhere none."""
    loop = asyncio.get_running_loop()
    handled: list[int] = []
    wanted: list[tuple[int, Callable[[], None]]] = [
        (signal.SIGINT, stop.set),
        (signal.SIGTERM, stop.set),
        *((sig, lambda: None) for sig in ignore),
    ]
    for sig, handler in wanted:
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(sig, handler)
            handled.append(sig)
    return handled


def release_signals(handled: list[int]) -> None:
    loop = asyncio.get_running_loop()
    for sig in handled:
        loop.remove_signal_handler(sig)
