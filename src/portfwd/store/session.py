"""The session service: beside an engine, it brings the last session back and keeps it saved.

A `Session` owns what survives a restart, for whichever front end runs the engine (the
dashboard in-process, or the daemon):

- **restore** (`start`): every saved forward is added, in order and stopped, so the whole
  session shows at once; the ones that were running start again concurrently (with
  `restart=False`, i.e. `--no-restore`, they stay stopped). A first start with no file adds
  the `seed` forwards instead (the demo's).
- **persistence**: it follows the engine's events and rewrites the file after every change
  (writes coalesce), and `close()` writes it once more before the forwards are stopped, so
  quitting never records "everything stopped".
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
import fcntl
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from portfwd.engine.api import EngineAPI, EventStream
from portfwd.engine.events import ForwardAdded, ForwardChanged, ForwardRemoved, Lagged
from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState
from portfwd.errors import PortfwdError
from portfwd.store.state import LoadResult, SavedForward, StateStore

log = logging.getLogger(__name__)

COALESCE_DELAY = 0.05  # seconds a burst of changes may take before one write


class SessionLock:
    """An exclusive, advisory lock on `<state file>.lock`, held while the session runs.

    `acquire()` returns None when it holds it, else the pid written by the holder ("" when
    unknown). The lock goes with the process (a killed portfwd never leaves it held)."""

    def __init__(self, state_path: Path) -> None:
        real = Path(os.path.realpath(state_path))
        self.path = real.with_name(real.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> str | None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            return holder
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


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
        self._tasks: list[asyncio.Task[None]] = []
        self._following = False
        self._claimed = False
        self.restored = False
        self.notes: dict[str, str] = {}

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
        self._tasks.append(asyncio.create_task(self._watch(subscription), name="session-watch"))
        self._tasks.append(asyncio.create_task(self._writer(), name="session-writer"))
        self._dirty.set()

    def _settle(self, snap: ForwardSnapshot) -> None:
        """A forward running again, or stopped by the user, is no longer pinned as wanted;
        one `--no-restore` skipped is, until the user does anything with it."""
        if snap.state in (ForwardState.ACTIVE, ForwardState.STOPPED):
            self._wanted.discard(snap.id)
        if snap.state is not ForwardState.STOPPED:
            self._skipped.discard(snap.id)

    async def _watch(self, subscription: EventStream) -> None:
        try:
            async for event in subscription:
                if isinstance(event, ForwardAdded | ForwardChanged):
                    self._settle(event.snapshot)
                elif isinstance(event, ForwardRemoved):
                    self._wanted.discard(event.forward_id)
                    self._skipped.discard(event.forward_id)
                elif isinstance(event, Lagged):
                    for snap in self.engine.snapshot():
                        self._settle(snap)
                if isinstance(event, ForwardAdded | ForwardChanged | ForwardRemoved | Lagged):
                    self._dirty.set()
        finally:
            subscription.close()

    async def _writer(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self._coalesce_delay)  # let a burst of events land
            self._dirty.clear()
            await self.save()

    async def save(self) -> bool:
        """Write the engine's forwards now; True if the file changed."""
        if not self.saving:
            return False
        return await self.store.save(self.engine.snapshot(), self._wanted | self._skipped)

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
