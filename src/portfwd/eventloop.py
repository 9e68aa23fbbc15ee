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
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


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
        runner.get_loop().set_exception_handler(quiet_transport_errors)
        return runner.run(main)


def quiet_transport_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A connection's transport failing as it closes ("Fatal error on SSL protocol" from
    uvloop, "Fatal error on transport" from asyncio, each with a traceback) is the end of
    that connection, which its owner already handles: the debug log, not the user's
    terminal (`portfwd run` printed one under a command's own error). Anything else goes
    to the loop's default handler."""
    message = str(context.get("message", ""))
    if message.startswith("Fatal error on") and ("transport" in context or "protocol" in context):
        log.debug("%s: %r", message, context.get("exception"))
        return
    loop.default_exception_handler(context)


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
