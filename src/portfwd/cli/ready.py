"""When a forward is ready for a script: `portfwd run` starts COMMAND then, `portfwd wait` returns
then, and the MCP server's `add_forward` answers then.

Ready means what a client needs: the local listener is bound and the tunnel to the pod was
verified (the engine only reports ACTIVE after its preflight through a real tunnel), and,
for a forward with a probe (`--probe`), the pod's port answered it; or, for a lazy forward,
the listener is bound and it is `idle` (its first connection waits while the tunnel opens).
`active` asks for the state word only. A forward that fails for good (engine/launch.py's
rule), is removed, or is not ready in time is a `NotReady` naming it and why: a script gets
one line, not a hang.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Mapping, Sequence
from typing import Any

from portfwd.engine.api import EngineAPI
from portfwd.engine.launch import failed_for_good
from portfwd.engine.model import ForwardSnapshot, ForwardState
from portfwd.errors import PortfwdError


class Until(enum.Enum):
    READY = "ready"  # accepts connections now: listener bound, tunnel verified
    ACTIVE = "active"  # the forward's state is active


class NotReady(PortfwdError):
    """A forward did not get ready: the message names it and says why (one line)."""


def label(snap: ForwardSnapshot) -> str:
    return snap.spec.name or snap.id


def is_ready(snap: ForwardSnapshot, until: Until = Until.READY) -> bool:
    if snap.state is ForwardState.IDLE:
        # Lazy: the port accepts now, and its first connection waits for the tunnel it opens;
        # `active` waits for that tunnel (which only a connection opens).
        return until is Until.READY and bool(snap.bound)
    if snap.state is not ForwardState.ACTIVE:
        return False
    if until is Until.ACTIVE:
        return True
    # With a probe, ready also means the pod's port answered it (issue 20 §1).
    return bool(snap.bound) and (not snap.spec.probe or snap.health.probe_ok is True)


def _why(snap: ForwardSnapshot) -> str:
    return snap.state.value + (f": {snap.reason}" if snap.reason else "")


async def wait_ready(
    engine: EngineAPI,
    ids: Sequence[str],
    *,
    within: float | None,
    until: Until = Until.READY,
    names: Mapping[str, str] | None = None,
    strict: bool = False,
    shown_timeout: float | None = None,
) -> list[ForwardSnapshot]:
    """Each forward of `ids` once ready (in that order); NotReady for the first that failed
    for good, was removed or stopped, or every one still not ready after `within` seconds.
    `names`: what the messages call each id (else its name, else its id). `strict`: ERROR
    counts as failed even while the forward waits for its target to return (a script that
    starts forwards wants a typo's one line now). `shown_timeout`: the timeout the user gave,
    for the message."""
    names = names or {}

    def called(snap: ForwardSnapshot) -> str:
        return names.get(snap.id) or label(snap)

    events = engine.subscribe()  # before the first look: no change falls between
    stream = events.__aiter__()
    loop = asyncio.get_running_loop()
    deadline = None if within is None else loop.time() + within
    getter: asyncio.Future[Any] | None = None
    try:
        while True:
            waiting = []
            for fid in ids:
                try:
                    snap = engine.get(fid)
                except KeyError:
                    who = names.get(fid, fid)
                    raise NotReady(f"{who}: the forward was removed before it was ready") from None
                if is_ready(snap, until):
                    continue
                failed = failed_for_good(snap) or (strict and snap.state is ForwardState.ERROR)
                if failed or snap.state is ForwardState.STOPPED:
                    raise NotReady(f"{called(snap)}: not ready: {_why(snap)}")
                waiting.append(snap)
            if not waiting:
                return [engine.get(fid) for fid in ids]
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                shown = shown_timeout if shown_timeout is not None else within or 0.0
                raise NotReady(_late(called(waiting[0]), waiting, shown))
            if getter is None:
                getter = asyncio.ensure_future(stream.__anext__())
            done, _ = await asyncio.wait({getter}, timeout=left)
            if getter in done:
                try:
                    getter.result()
                except StopAsyncIteration:
                    raise NotReady("the engine shut down before the forwards were ready") from None
                getter = None
    finally:
        if getter is not None:
            getter.cancel()
            await asyncio.gather(getter, return_exceptions=True)
        events.close()


def _late(who: str, waiting: list[ForwardSnapshot], timeout: float) -> str:
    more = f" (and {len(waiting) - 1} more)" if len(waiting) > 1 else ""
    return f"{who}: not ready after {timeout:g}s: {_why(waiting[0])}{more}"
