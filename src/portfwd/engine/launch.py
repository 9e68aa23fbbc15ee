"""How a command line starts forwards: one policy for `forward`, `up` and `add`, in-process
or in the daemon (it only uses `EngineAPI`).

kubectl fails fast: a forward that cannot start now is an error, not a retry loop. So every
forward is added without reconnect and started; Ctrl-C (the `stop` event) counts while any
start is still running (a slow API server). A forward that did not become ACTIVE is removed
and reported; with `all_or_nothing` one failure removes them all. Only the forwards that
started get their reconnect back (as their spec asks), and from then on :func:`watch` tells
when one fails for good: ERROR with nothing left to wait for.

The front ends print what this decides (kubectl's lines, a table row, a prefixed line); the
errors they print are the engine's own: a port in use, a name that does not resolve.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from portfwd.engine.api import EngineAPI
from portfwd.engine.events import Event, ForwardChanged, ForwardRemoved, Lagged
from portfwd.engine.lazy import stopped_when_idle
from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState


@dataclass
class Launched:
    """What a launch did. `active`: the forwards that started, in the order of the specs
    (their snapshot as the start left them); `failed`: the ones that did not (removed again,
    with their reason); `interrupted`: Ctrl-C came first; `aborted`: `all_or_nothing` removed
    the started ones too."""

    active: list[ForwardSnapshot] = field(default_factory=list)
    failed: list[ForwardSnapshot] = field(default_factory=list)
    results: list[ForwardSnapshot] = field(default_factory=list)  # each spec's, in order
    interrupted: bool = False
    aborted: bool = False


def failed_for_good(snap: ForwardSnapshot) -> bool:
    """In ERROR with nothing left to wait for: reconnect is off, or the listener is gone (a
    permanent failure). A forward in ERROR that still holds its port waits for its pod."""
    return snap.state is ForwardState.ERROR and not (snap.spec.reconnect and snap.bound)


def reason_of(snap: ForwardSnapshot, verb: str = "did not start") -> str:
    return snap.reason or f"the forward to {snap.spec.target} {verb}"


async def launch(
    engine: EngineAPI,
    specs: Sequence[ForwardSpec],
    *,
    stop: asyncio.Event | None = None,
    all_or_nothing: bool = False,
    on_added: Callable[[str, ForwardSpec], None] | None = None,
) -> Launched:
    """Add and start `specs` on `engine` (see the module docstring). `on_added(id, spec)`
    is called before the starts, so a printer can tell the forwards' log lines apart."""
    stop = stop or asyncio.Event()
    ids: list[str] = []
    try:
        for spec in specs:
            fid = await engine.add(replace(spec, reconnect=False), start=False)
            ids.append(fid)
            if on_added is not None:
                on_added(fid, spec)
    except Exception:  # a spec the engine refuses (a name in use): nothing of this launch stays
        for fid in ids:
            await engine.remove(fid)
        raise
    starts = [asyncio.ensure_future(engine.start(fid)) for fid in ids]
    stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    try:
        pending: set[asyncio.Future[Any]] = set(starts)
        while pending and not stop.is_set():
            done, _ = await asyncio.wait({*pending, stopper}, return_when=asyncio.FIRST_COMPLETED)
            pending -= done
    finally:
        stopper.cancel()
        unfinished = [task for task in starts if not task.done()]
        for task in unfinished:
            task.cancel()
        await asyncio.gather(stopper, *unfinished, return_exceptions=True)
    if stop.is_set():
        return Launched(interrupted=True)
    result = Launched()
    for spec, fid, task in zip(specs, ids, starts, strict=True):
        snap = replace(task.result(), spec=spec)
        result.results.append(snap)
        if snap.state in (ForwardState.ACTIVE, ForwardState.DEGRADED, ForwardState.IDLE):
            # Started (a probe that fails is the pod's, said in its own line; IDLE: lazy, bound)
            result.active.append(snap)
        else:
            result.failed.append(snap)
            await engine.remove(fid)
    if result.failed and (all_or_nothing or not result.active):
        for snap in result.active:
            await engine.remove(snap.id)
        result.aborted = bool(result.active)
        result.active = []
        return result
    for snap in result.active:
        if snap.spec.reconnect:
            await engine.set_reconnect(snap.id, True)
    return result


async def watch(
    engine: EngineAPI,
    ids: Sequence[str],
    stop: asyncio.Event,
    on_lost: Callable[[ForwardSnapshot], None],
    *,
    all_or_nothing: bool = False,
) -> list[ForwardSnapshot]:
    """Until `stop`: each forward of `ids` that fails for good is handed to `on_lost` once.
    Ends early (returning those lost) when none is left, or at the first with
    `all_or_nothing`.

    The forwards are looked at again only when one changed state or went away: a log line
    or a stats tick (one per connection under load) costs this loop nothing."""
    alive = list(ids)
    lost: list[ForwardSnapshot] = []
    changed = asyncio.Event()
    changes = engine.subscribe()
    reader = asyncio.create_task(_note_changes(changes, changed), name="launch-watch-events")
    stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    try:
        while alive:
            changed.clear()
            for fid in list(alive):
                try:
                    snap = engine.get(fid)
                except KeyError:  # removed by someone else: not ours to watch any more
                    alive.remove(fid)
                    continue
                if stopped_when_idle(snap):  # idle_stop: gone as asked, not lost
                    alive.remove(fid)
                    continue
                if failed_for_good(snap):
                    alive.remove(fid)
                    lost.append(snap)
                    on_lost(snap)
                    if all_or_nothing:
                        return lost
            if not alive or stop.is_set() or reader.done():  # done: the engine shut down
                break
            waiter = asyncio.ensure_future(changed.wait())
            try:
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            if stop.is_set():
                break
        return lost
    finally:
        for task in (stopper, reader):
            task.cancel()
        await asyncio.gather(stopper, reader, return_exceptions=True)
        changes.close()


async def _note_changes(changes: AsyncIterable[Event], changed: asyncio.Event) -> None:
    """Set `changed` at each event that may change a verdict (and once the stream ends)."""
    try:
        async for event in changes:
            if isinstance(event, ForwardChanged | ForwardRemoved | Lagged):
                changed.set()
    finally:
        changed.set()
