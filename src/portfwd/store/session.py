"""The session service: beside an engine, it brings the last session back and keeps it saved.

A `Session` owns what survives a restart, for whichever front end runs the engine (the
dashboard in-process, or the daemon):

- **restore** (`start`): every saved forward is added, in order and stopped, so the whole
  session shows at once; the ones that were running start again concurrently (with
  `restart=False`, i.e. `--no-restore`, they stay stopped). A first start with no file adds
  the `seed` forwards instead (the demo's).
- **persistence**: it follows the engine's events and rewrites the file after every change
  (writes coalesce), and `close()` writes it once more before the forwards are stopped, so
  quitting never records "everything stopped". Each forward's entry is kept encoded
  (`store/entries.py`) and only a changed one is encoded again, in the writer's thread: what
  a change costs on the event loop does not grow with the number of forwards.
- **durable acknowledgements**: `persist(id)` returns once the file on disk holds that
  forward as it is now (or its removal). The daemon calls it before it answers a change, so
  an ok reply survives a `kill -9` right after it. Waiting callers do not wait out the
  coalescing delay: a write starts at once, and the callers that arrive while it runs share
  the next one (group commit), so 32 concurrent `add`s cost about two writes, not 32.
- **what the user wanted**: a forward restored as running that keeps failing (the cluster
  was down at start) stays "running" in the file until it runs or the user stops it; one
  `--no-restore` left stopped stays "running" in the file until the user starts or removes
  it: a run that skipped the session must not rewrite it.
- **one writer per file**: the session takes an exclusive lock next to the file; a second
  dashboard on the same file gets `locked_by` (the other one's pid), shows the saved forwards
  stopped and runs without saving, rather than each overwriting the other's forwards (the
  daemon shares forwards between windows instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from portfwd.engine.api import EngineAPI, EventStream
from portfwd.engine.events import ForwardAdded, ForwardChanged, ForwardRemoved, Lagged
from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState
from portfwd.errors import PortfwdError
from portfwd.pidlock import PidLock
from portfwd.store.entries import Entry
from portfwd.store.state import LoadResult, SavedForward, SaveFailed, StateStore

log = logging.getLogger(__name__)

COALESCE_DELAY = 0.05  # seconds a burst of changes may take before one write


class SessionLock(PidLock):
    """An exclusive, advisory lock on `<state file>.lock`, held while the session runs.

    `acquire()` returns None when it holds it, else the pid written by the holder ("" when
    unknown)."""

    def __init__(self, state_path: Path) -> None:
        real = Path(os.path.realpath(state_path))
        super().__init__(real.with_name(real.name + ".lock"))


class Session:
    """Restore and persistence of one engine's forwards (see the module docstring)."""

    def __init__(
        self,
        engine: EngineAPI,
        store: StateStore,
        loaded: LoadResult,
        *,
        restart: bool = True,
        seed: Iterable[ForwardSpec] = (),
        coalesce_delay: float = COALESCE_DELAY,
        lock: bool = True,
    ) -> None:
        self.engine = engine
        self.store = store
        self.loaded = loaded
        self.restart = restart
        self.seed = list(seed)
        self._coalesce_delay = coalesce_delay
        self._lock = SessionLock(store.path) if lock else None
        self.locked_by: str | None = None  # another portfwd holds the file: not saving
        self._wanted: set[str] = set()  # restored as running: kept so while they fail
        self._skipped: set[str] = set()  # running, left stopped by --no-restore
        self._dirty = asyncio.Event()
        self._urgent = asyncio.Event()  # someone waits in `persist`: write without delay
        self._entries: dict[str, Entry] = {}  # what the file holds (or will), in order
        self._changes = 0  # changes to `_entries` so far
        self._saved = 0  # of those, how many the file on disk holds
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []  # (changes, persist())
        self._tasks: list[asyncio.Task[None]] = []
        self._following = False
        self._claimed = False
        self.restored = False
        self.notes: dict[str, str] = {}
        # Forwards the user gave a free port (`:80`), with the port they got: restored on
        # it, still saved as free (and `profile save` writes `:80`) until the user picks one.
        self._free: dict[str, int] = {
            f.id: f.spec.local_port for f in loaded.forwards if f.free_port
        }

    def asked(self, snap: ForwardSnapshot) -> ForwardSpec:
        """The forward as the user asked for it: a free local port stays free (`:80`) though
        a restore put it back on the port it had got."""
        if snap.spec.local_port and self._free.get(snap.id) == snap.spec.local_port:
            return replace(snap.spec, local_port=0)
        return snap.spec

    @property
    def saving(self) -> bool:
        return self.locked_by is None and self.store.writable

    @property
    def on_error(self) -> Callable[[str], None] | None:
        return self.store.on_error

    @on_error.setter
    def on_error(self, callback: Callable[[str], None] | None) -> None:
        self.store.on_error = callback

    # -- start: restore, then follow --------------------------------------------------------

    async def claim(self) -> str | None:
        """Take the session file's lock (once); None when held, else the holder's pid ("?"
        when unknown). A daemon refuses to start on a file a dashboard holds."""
        if self._lock is not None and self.locked_by is None and not self._claimed:
            holder = await asyncio.to_thread(self._lock.acquire)
            if holder is not None:
                self.locked_by = holder or "?"
            else:
                self._claimed = True
        return self.locked_by

    async def start(self) -> dict[str, str]:
        """Bring the session back (or seed a first one), then keep the file current.
        Returns notes per forward id: why one is shown stopped."""
        await self.claim()
        saved = self.loaded.forwards
        # A second window on a locked file shows the session but starts nothing: the first
        # one runs those forwards (their ports are taken) and owns the file.
        restart = self.restart and self.locked_by is None
        try:
            if saved:
                self.notes = await restore(self.engine, saved, restart=restart)
            elif not self.loaded.existed and self.seed:
                for spec in self.seed:
                    with contextlib.suppress(PortfwdError):  # shown as its error state
                        await self.engine.add(spec, start=True)
        finally:
            running = {f.id for f in saved if f.running}
            if self.restart:
                self._wanted |= running
            else:
                self._skipped |= running
            self.restored = True
        if self.saving:
            self._follow()
        return self.notes

    def _follow(self) -> None:
        if self._following:
            return
        self._following = True
        subscription = self.engine.subscribe()
        for snap in self.engine.snapshot():
            self._settle(snap)
        self._resync()
        self._tasks.append(asyncio.create_task(self._watch(subscription), name="session-watch"))
        self._tasks.append(asyncio.create_task(self._writer(), name="session-writer"))
        self._dirty.set()

    def _settle(self, snap: ForwardSnapshot) -> None:
        """A forward running again, or stopped by the user, is no longer pinned as wanted;
        one `--no-restore` skipped is, until the user does anything with it."""
        if snap.state in (
            ForwardState.ACTIVE,
            ForwardState.DEGRADED,
            ForwardState.IDLE,
            ForwardState.STOPPED,
        ):
            self._wanted.discard(snap.id)
        if snap.state is not ForwardState.STOPPED:
            self._skipped.discard(snap.id)

    async def _watch(self, subscription: EventStream) -> None:
        try:
            async for event in subscription:
                if isinstance(event, ForwardAdded | ForwardChanged):
                    self._settle(event.snapshot)
                    self._refresh(event.snapshot.id)
                elif isinstance(event, ForwardRemoved):
                    self._wanted.discard(event.forward_id)
                    self._skipped.discard(event.forward_id)
                    self._refresh(event.forward_id)
                elif isinstance(event, Lagged):
                    for snap in self.engine.snapshot():
                        self._settle(snap)
                    self._resync()
        finally:
            subscription.close()

    # -- what the file should hold ----------------------------------------------------------

    def _entry(self, snap: ForwardSnapshot) -> Entry | None:
        """The forward's entry, or None when the one kept is still right."""
        wanted = snap.id in self._wanted or snap.id in self._skipped
        saved = SavedForward.from_snapshot(snap, still_wanted=wanted)
        if saved.free_port:
            self._free[snap.id] = saved.spec.local_port
        elif self._free.get(snap.id) == snap.spec.local_port:
            saved = replace(saved, free_port=True)
        else:
            self._free.pop(snap.id, None)
        data = saved.to_dict()
        old = self._entries.get(snap.id)
        return None if old is not None and old.data == data else Entry(data)

    def _refresh(self, forward_id: str) -> None:
        """Bring one forward's entry up to the engine's state of it now (the latest, not an
        event's: a late event must not put an older state back). O(1) in the forwards."""
        try:
            snap = self.engine.get(forward_id)
        except KeyError:  # removed
            if self._entries.pop(forward_id, None) is not None:
                self._changed()
            return
        entry = self._entry(snap)
        if entry is not None:
            self._entries[snap.id] = entry
            self._changed()

    def _resync(self) -> None:
        """Every entry from the engine's snapshot (at start, after a lag, on `save`)."""
        entries: dict[str, Entry] = {}
        changed = False
        for snap in self.engine.snapshot():
            entry = self._entry(snap)
            changed = changed or entry is not None
            entries[snap.id] = entry or self._entries[snap.id]
        if changed or list(entries) != list(self._entries):
            self._entries = entries
            self._changed()

    def _changed(self) -> None:
        self._changes += 1
        self._dirty.set()

    # -- writing ----------------------------------------------------------------------------

    async def _writer(self) -> None:
        while True:
            await self._dirty.wait()
            if not self._urgent.is_set():  # let a burst of events land, unless someone waits
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), self._coalesce_delay)
            self._dirty.clear()
            self._urgent.clear()
            with contextlib.suppress(SaveFailed):  # reported by the store; waiters told
                await self._write()

    async def _write(self) -> bool:
        """Write the entries as they are now; True if the file changed."""
        upto = self._changes
        try:
            changed = await self.store.save_entries(list(self._entries.values()))
        except SaveFailed as exc:
            self._release(upto, exc)
            raise
        self._saved = max(self._saved, upto)
        self._release(self._saved, None)
        return changed

    def _release(self, upto: int, error: PortfwdError | None) -> None:
        """Answer the `persist` callers whose change a write up to `upto` held (or failed)."""
        waiting: list[tuple[int, asyncio.Future[None]]] = []
        for changes, future in self._waiters:
            if changes > upto:
                waiting.append((changes, future))
            elif not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(PortfwdError(f"done, but not saved: {error}"))
        self._waiters = waiting

    async def persist(self, forward_id: str | None = None) -> None:
        """Return once the file on disk holds this forward as the engine has it now (its
        removal included), or every forward with no id. PortfwdError if the write failed.
        Returns at once when this session does not save (another holds the file, or it
        could not be read and moved aside: the user was told at start)."""
        if not self.saving or not self._following:
            return
        if forward_id is None:
            self._resync()
        else:
            with contextlib.suppress(KeyError):
                self._settle(self.engine.get(forward_id))
            self._refresh(forward_id)
        if self._saved >= self._changes:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._changes, future))
        self._urgent.set()
        self._dirty.set()
        await future

    async def save(self) -> bool:
        """Write the engine's forwards now; True if the file changed."""
        if not self.saving:
            return False
        self._resync()
        try:
            return await self._write()
        except SaveFailed:
            return False

    async def close(self, *, flush: bool = True) -> None:
        """Stop following the engine; by default write the final state first (quit does this
        before the forwards are stopped). Idempotent."""
        if flush and self._following:
            self._dirty.clear()
            await self.save()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._following = False
        self._release(self._changes, PortfwdError("the session closed before it was written"))
        if self._lock is not None:
            self._lock.release()
            self._claimed = False


async def restore(
    engine: EngineAPI, saved: list[SavedForward], *, restart: bool = True
) -> dict[str, str]:
    """Re-create the saved forwards: running ones are restarted (unless `restart` is False).

    All are added first (stopped, in their saved order) so a view shows the whole session at
    once; the running ones then start concurrently. A forward whose resource is gone ends in
    the engine's error state with its reason. Returns notes per forward id: why a forward is
    shown stopped.
    """
    notes: dict[str, str] = {}
    to_start: list[str] = []
    for item in saved:
        try:
            fid = await engine.add(item.spec, start=False, forward_id=item.id)
        except (ValueError, PortfwdError) as exc:  # the id or name is taken already
            log.warning("cannot restore forward %s: %s", item.id, exc)
            continue
        if item.running and restart:
            to_start.append(fid)
        elif item.running:
            notes[fid] = "not restarted (--no-restore)"
        else:
            notes[fid] = "stopped in the last session" + (f": {item.reason}" if item.reason else "")

    async def start_one(fid: str) -> None:
        try:
            await engine.start(fid)
        except Exception as exc:  # the engine reports it as the forward's error state too
            notes[fid] = f"restart failed: {exc}"

    await asyncio.gather(*(start_one(fid) for fid in to_start))
    return notes


def describe_lock(session: Session) -> str | None:
    """The warning a view shows when another portfwd holds the session file."""
    if session.locked_by is None:
        return None
    who = f" (pid {session.locked_by})" if session.locked_by not in ("", "?") else ""
    return (
        f"another portfwd{who} is using the session {session.store.path}: this window runs "
        "without saving it; run `portfwd daemon` to share forwards between windows"
    )
