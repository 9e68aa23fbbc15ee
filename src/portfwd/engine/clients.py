"""One KubeClient per (kubeconfig, context), shared by every forward that uses it, and kept
true to the kubeconfig on disk.

A forward pins the kubeconfig *path(s)* and the context *name*, not a copy of what they said:
a kind/minikube cluster recreated on another port, `aws eks update-kubeconfig`, a token
rotated in the file change the server, CA or credentials under a running portfwd. So each
loaded context remembers the stat of the files it was read from; when they change (checked
by :meth:`ClientPool.refresh_soon` on every reconnect attempt and by :meth:`ClientPool.get`, and
pushed by the file watcher of `kubewatch.py`) the context is read again. Only a context whose
entries really changed gets a new client; its subscribers (the Manager) move that context's
forwards over, and other contexts are left alone. A file that no longer parses, or a context
that left it, is reported the same way (an error that clears when the file is fixed).

A context asked for as None (the current one) is pinned to the current-context's name the
first time: a later `kubectl config use-context` never moves it.

Loading reads files (exec plugins run later, on first request), so it happens in a thread.
Concurrent first requests for the same key share one load.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from portfwd.engine.kubewatch import KubeconfigWatcher
from portfwd.errors import ConfigError
from portfwd.kube.client import KubeClient
from portfwd.kube.config import (
    IN_CLUSTER,
    ClusterConnection,
    kubeconfig_paths,
    list_contexts,
    load_connection,
)

log = logging.getLogger(__name__)

RETIRED_PER_CONTEXT = 2  # replaced clients kept open for the connections still on them
# A file seen changing is read again until it holds still this long: `kubectl config` and
# editors truncate then write, and a read in between is not what the user wrote.
SETTLE = 0.2
SETTLE_READS = 10
_YOUNG_NS = 2_000_000_000  # a file written this recently may change again within its mtime

Stamp = tuple[tuple[int, int, int, int] | str, ...]


def stamp_files(paths: tuple[Path, ...], *, exact: bool = False) -> Stamp | None:
    """The stat of each file (inode, mtime, ctime, size; "missing"), or None when one is so
    young that a same-size rewrite within its timestamp tick would go unseen (then the
    content is compared instead; `exact`: the stat all the same). Blocking: call it in a
    thread."""
    stamps: list[tuple[int, int, int, int] | str] = []
    now = time.time_ns()
    for path in paths:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            stamps.append("missing")
            continue
        except OSError as exc:
            stamps.append(f"error {exc.errno}")
            continue
        if not exact and now - st.st_mtime_ns < _YOUNG_NS:
            return None
        stamps.append((st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size))
    return tuple(stamps)


@dataclass(frozen=True)
class ContextChange:
    """One context's kubeconfig changed. `old`: the client the context's forwards use;
    `new`: the one to use from now on (`old` itself when only an error cleared), None while
    `error` says why the context cannot be loaded."""

    kubeconfig: str | None
    context: str
    old: KubeClient
    new: KubeClient | None
    error: str = ""

    @property
    def reloaded(self) -> bool:
        return self.new is not None and self.new is not self.old


@dataclass(eq=False)
class _Slot:
    kubeconfig: str | None
    context: str | None
    task: asyncio.Task[KubeClient] | None = None
    client: KubeClient | None = None
    paths: tuple[Path, ...] = ()
    stamp: Stamp | None = None
    error: str = ""
    checking: asyncio.Task[None] | None = None
    retired: list[KubeClient] = field(default_factory=list)


def _failed(slot: _Slot) -> bool:
    task = slot.task
    return (
        slot.client is None
        and task is not None
        and task.done()
        and not task.cancelled()
        and (task.exception() is not None)
    )


class ClientPool:
    def __init__(
        self,
        kubeconfig: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        ping_interval: float = 30.0,
        watch: bool = True,
    ) -> None:
        """`watch`: follow the kubeconfig files with a file watcher (besides the checks on
        reconnect attempts)."""
        self.kubeconfig = kubeconfig
        self.ping_interval = ping_interval
        self._environ = environ
        self._slots: dict[tuple[str | None, str | None], _Slot] = {}
        self._pinned: dict[str | None, str] = {}  # kubeconfig -> its current context, pinned
        self._listeners: list[Callable[[ContextChange], None]] = []
        self._closing: set[asyncio.Task[None]] = set()
        self._watcher = KubeconfigWatcher(self.check_all) if watch else None
        self._closed = False

    # -- clients ----------------------------------------------------------------------------

    async def get(self, context: str | None = None, kubeconfig: str | None = None) -> KubeClient:
        """The client for `context` of `kubeconfig` (None: the pool's / current ones), as the
        files say now.

        Raises ConfigError (bad kubeconfig, unknown context); a failed load is not cached.
        """
        if self._closed:
            raise RuntimeError("ClientPool is closed")
        key = await self._key(context, kubeconfig)
        slot = self._slots.get(key)
        if slot is None or _failed(slot):
            slot = self._slots[key] = _Slot(*key)
            slot.task = asyncio.create_task(self._load(slot))
        if slot.client is None:
            task = slot.task
            assert task is not None
            try:
                return await asyncio.shield(task)
            except BaseException:
                failed = task.done() and not task.cancelled() and task.exception() is not None
                if failed and self._slots.get(key) is slot:  # not a newer load for the same key
                    del self._slots[key]
                raise
        await self._check(slot)
        if slot.error:
            raise ConfigError(slot.error)
        assert slot.client is not None
        return slot.client

    async def _key(
        self, context: str | None, kubeconfig: str | None
    ) -> tuple[str | None, str | None]:
        kc = kubeconfig or self.kubeconfig
        if context:
            return kc, context
        pinned = self._pinned.get(kc)
        if pinned is None:
            _, current = await asyncio.to_thread(list_contexts, kc, environ=self._environ)
            if current is None:
                return kc, None  # the load says what is missing
            pinned = self._pinned.setdefault(kc, current)
        return kc, pinned

    def _read(self, slot: _Slot) -> tuple[ClusterConnection, tuple[Path, ...], Stamp | None]:
        """Load the slot's context (blocking); the files it came from and their stat, taken
        before reading (a write during the read is seen next time)."""
        files = kubeconfig_paths(slot.kubeconfig, environ=self._environ)
        stamp = stamp_files(files)
        context = slot.context
        if context == IN_CLUSTER and not any(p.exists() for p in files):
            context = None  # the service account of the pod portfwd runs in
        conn = load_connection(slot.kubeconfig, context, None, environ=self._environ)
        sources = stamp_files(conn.sources)
        both = None if stamp is None or sources is None else stamp + sources
        return conn, files + conn.sources, both

    async def _load(self, slot: _Slot) -> KubeClient:
        conn, slot.paths, slot.stamp = await asyncio.to_thread(self._read, slot)
        slot.client = KubeClient(conn, heartbeat=self.ping_interval or None)
        if self._watcher is not None and not self._closed:
            self._watcher.follow(self.paths())
        return slot.client

    def paths(self) -> set[Path]:
        """Every file the loaded contexts were read from (what the watcher follows)."""
        return {p for slot in self._slots.values() for p in slot.paths}

    # -- following the files ----------------------------------------------------------------

    def subscribe(self, listener: Callable[[ContextChange], None]) -> Callable[[], None]:
        """`listener(change)` for every context reloaded, broken or fixed; returns the
        function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def refresh_soon(self, context: str | None = None, kubeconfig: str | None = None) -> None:
        """Check the context's files in the background (a forward's reconnect attempt; one
        check at a time per context); what changed reaches the subscribers."""
        kc = kubeconfig or self.kubeconfig
        slot = self._slots.get((kc, context or self._pinned.get(kc)))
        if slot is not None and not self._closed:
            task = slot.checking
            if task is None or task.done():
                self._start_check(slot)

    async def check_all(self) -> None:
        """Check every loaded context against its files (the watcher saw a change)."""
        slots = list(self._slots.values())
        if slots and not self._closed:
            await asyncio.gather(*(self._check(s) for s in slots))

    async def _check(self, slot: _Slot) -> None:
        """One check at a time per context; a caller arriving meanwhile waits for it."""
        task = slot.checking
        if task is None or task.done():
            task = self._start_check(slot)
        await asyncio.shield(task)

    def _start_check(self, slot: _Slot) -> asyncio.Task[None]:
        task = slot.checking = asyncio.create_task(self._recheck(slot), name="kubeconfig")
        self._closing.add(task)
        task.add_done_callback(self._checked)
        return task

    def _checked(self, task: asyncio.Task[None]) -> None:
        self._closing.discard(task)
        if not task.cancelled() and task.exception() is not None:  # a bug: say so, go on
            log.error("checking the kubeconfig failed", exc_info=task.exception())

    async def _recheck(self, slot: _Slot) -> None:
        old = slot.client
        if old is None or self._closed:
            return
        stamp = await asyncio.to_thread(stamp_files, slot.paths)
        if stamp is not None and stamp == slot.stamp:
            return
        context = slot.context or old.context
        try:
            conn, paths, stamp = await self._read_changed(slot, old)
        except ConfigError as exc:
            slot.stamp = stamp  # broken until the files change again
            if str(exc) != slot.error:
                slot.error = str(exc)
                self._tell(ContextChange(slot.kubeconfig, context, old, None, slot.error))
            return
        if self._closed:
            return
        slot.paths, slot.stamp = paths, stamp
        was_broken, slot.error = bool(slot.error), ""
        if conn.fingerprint == old.conn.fingerprint:
            if was_broken:
                self._tell(ContextChange(slot.kubeconfig, context, old, old))
            return
        try:
            new = KubeClient(conn, heartbeat=self.ping_interval or None)
        except ConfigError as exc:  # a proxy it cannot use
            slot.error = str(exc)
            self._tell(ContextChange(slot.kubeconfig, context, old, None, slot.error))
            return
        slot.client = new
        self._retire(slot, old)
        if self._watcher is not None:
            self._watcher.follow(self.paths())
        self._tell(ContextChange(slot.kubeconfig, context, old, slot.client))

    async def _read_changed(
        self, slot: _Slot, old: KubeClient
    ) -> tuple[ClusterConnection, tuple[Path, ...], Stamp | None]:
        """Read the context; when it reads differently (or not at all), read it again until
        the files hold still (the common touch without a change costs one read)."""
        try:
            read = await asyncio.to_thread(self._read, slot)
        except ConfigError:
            return await self._settled_read(slot)
        if read[0].fingerprint != old.conn.fingerprint:
            return await self._settled_read(slot)
        return read

    async def _settled_read(
        self, slot: _Slot
    ) -> tuple[ClusterConnection, tuple[Path, ...], Stamp | None]:
        """Read the context once its files held still for SETTLE (a half-written file is
        read again, not reported); the last read's result after SETTLE_READS tries."""
        result: tuple[ClusterConnection, tuple[Path, ...], Stamp | None] | ConfigError
        result = ConfigError("the kubeconfig was not read")
        for attempt in range(SETTLE_READS):
            before = await asyncio.to_thread(stamp_files, slot.paths, exact=True)
            try:
                result = await asyncio.to_thread(self._read, slot)
            except ConfigError as exc:
                result = exc
            await asyncio.sleep(SETTLE)
            after = await asyncio.to_thread(stamp_files, slot.paths, exact=True)
            if before == after or attempt == SETTLE_READS - 1 or self._closed:
                break
        if isinstance(result, ConfigError):
            raise result
        return result

    def _tell(self, change: ContextChange) -> None:
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:  # a bug in one listener: the others still hear it
                log.exception("a kubeconfig listener failed")

    def _retire(self, slot: _Slot, client: KubeClient) -> None:
        """The replaced client stays open for the port-forwards still on it (they fail or
        finish by themselves); the oldest beyond RETIRED_PER_CONTEXT is closed."""
        slot.retired.append(client)
        while len(slot.retired) > RETIRED_PER_CONTEXT:
            task = asyncio.create_task(slot.retired.pop(0).close(), name="close-old-client")
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def renew_connections(self) -> None:
        """Every loaded client opens new connections for new requests (after a sleep)."""
        for slot in self._slots.values():
            if slot.client is not None:
                slot.client.renew_connections()

    async def close(self) -> None:
        self._closed = True
        if self._watcher is not None:
            await self._watcher.close()
        slots, self._slots = list(self._slots.values()), {}
        tasks = [s.task for s in slots if s.task is not None and not s.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for check in self._closing:
            if check.get_name() == "kubeconfig":
                check.cancel()  # it may be waiting for a file to hold still
        while self._closing:
            await asyncio.wait(set(self._closing))
        for slot in slots:
            for client in [*slot.retired, *([slot.client] if slot.client else [])]:
                with contextlib.suppress(Exception):
                    await client.close()
