"""The file watcher that tells the client pool a kubeconfig changed, without polling.

It watches the *directories* of the files (not the files): `kubectl config`, `kind`,
`aws eks update-kubeconfig` and most editors replace a file by renaming a new one over it,
which a watch on the old inode would never see. Events are filtered to the names that
matter and debounced; each burst costs the pool one stat per context (`ClientPool.check_all`),
which reloads only what really changed.

Without `watchfiles` (or where the platform's notifier fails) nothing breaks: forwards still
check their kubeconfig on every reconnect attempt.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

log = logging.getLogger(__name__)

DEBOUNCE_MS = 100  # a writer's burst (truncate, write, chmod) is one check
STOP_TIMEOUT = 2.0


class KubeconfigWatcher:
    """Calls `on_change()` after files among those given to :meth:`follow` changed."""

    def __init__(self, on_change: Callable[[], Awaitable[None]]) -> None:
        self._on_change = on_change
        self._files: frozenset[Path] = frozenset()
        self._running: dict[asyncio.Task[None], asyncio.Event] = {}  # watch -> its stop
        self._closed = False

    @property
    def files(self) -> frozenset[Path]:
        return self._files

    def follow(self, files: Iterable[Path]) -> None:
        """Watch these files from now on (the watch restarts only when the set changed)."""
        wanted = frozenset(files)
        if self._closed or wanted == self._files:
            return
        self._files = wanted
        self._restart()

    def _restart(self) -> None:
        for stop in self._running.values():
            stop.set()  # the old watch ends by itself within a step (awaited in close)
        dirs = sorted({str(p.parent) for p in self._files if p.parent.is_dir()})
        if not dirs:
            return
        stop = asyncio.Event()
        names = {str(p) for p in self._files}
        task = asyncio.create_task(self._watch(dirs, names, stop), name="kubeconfig-watch")
        self._running[task] = stop
        task.add_done_callback(lambda t: self._running.pop(t, None))

    async def _watch(self, dirs: list[str], names: set[str], stop: asyncio.Event) -> None:
        try:
            from watchfiles import awatch
        except ImportError:  # pragma: no cover - a dependency; checks on reconnect remain
            log.info("watchfiles is not installed: the kubeconfig is checked on reconnects only")
            return
        try:
            async for _ in awatch(
                *dirs,
                watch_filter=lambda _change, path: path in names,
                debounce=DEBOUNCE_MS,
                stop_event=stop,
                recursive=False,
            ):
                if stop.is_set():
                    return
                try:
                    await self._on_change()
                except Exception:  # a bug: log it, keep watching
                    log.exception("checking the kubeconfig after a change failed")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # inotify limits, a directory removed: reconnects still check
            log.warning("watching the kubeconfig stopped (%s); checking it on reconnects", exc)

    async def close(self) -> None:
        self._closed = True
        running = dict(self._running)
        for stop in running.values():
            stop.set()
        if not running:
            return
        _, late = await asyncio.wait(running, timeout=STOP_TIMEOUT)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
