"""The HTTP request log in files: one per forward, size-capped and rotated, mode 0600.

Opt-in with a directory (`PORTFWD_HTTP_LOG_DIR`, or `Manager(http_log_dir=...)`): every
forward whose HTTP log is on (`--http-log`, `H`, `http_log: true`) appends its request lines
to `DIR/NAME.http.log` (NAME: the forward's name, else its id). A file that would pass
:data:`MAX_BYTES` is rotated first (`NAME.http.log.1` ... `.BACKUPS`, the oldest dropped), so
the files of one forward never take more than (BACKUPS + 1) x MAX_BYTES.

The directory is refused, with one line saying why and how to fix it, when someone else
could change it (`filecheck.check_private`: another owner, writable by group or others): a
request log says which paths a user visits. Files are created 0600 and never followed
through a symbolic link. Writing happens in a thread of its own, fed by a bounded queue: the
engine never waits for a disk, and lines a full queue cannot take are counted and said once
the queue has room again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

from portfwd.engine.events import LogLine
from portfwd.engine.model import LogKind
from portfwd.filecheck import UnsafeFile, check_private

log = logging.getLogger(__name__)

ENV = "PORTFWD_HTTP_LOG_DIR"
MAX_BYTES = 10 << 20
BACKUPS = 3
QUEUE = 10_000  # lines waiting for the disk


def _stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class HttpLogFiles:
    """The writer (see the module docstring). `offer` is called on the engine's loop for
    every log line; `close` flushes and stops the thread."""

    def __init__(
        self,
        directory: Path,
        name_of: Callable[[str], str | None],
        *,
        max_bytes: int = MAX_BYTES,
        backups: int = BACKUPS,
    ) -> None:
        self.directory = directory
        self._name_of = name_of
        self.max_bytes = max_bytes
        self.backups = backups
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue(QUEUE)
        self.dropped = 0
        self._thread: threading.Thread | None = None
        self.error = ""  # why nothing is written ("": all is well)

    def start(self) -> str:
        """Check (and create, 0700) the directory and start the writer; the problem in one
        line when it is refused ("" when it is used)."""
        try:
            check_private(self.directory, what="HTTP log directory")
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not self.directory.is_dir():
                raise NotADirectoryError(str(self.directory))
        except (UnsafeFile, OSError) as exc:
            self.error = f"HTTP log files are not written: {exc}"
            return self.error
        self._thread = threading.Thread(target=self._write_all, name="http-log-files", daemon=True)
        self._thread.start()
        return ""

    def offer(self, event: object) -> None:
        """A bus event: the HTTP lines of a forward go to its file."""
        if self._thread is None or not isinstance(event, LogLine):
            return
        if event.forward_id is None or event.entry.kind is not LogKind.HTTP:
            return
        name = self._name_of(event.forward_id)
        if name is None:
            return
        line = f"{_stamp(event.entry.ts)} {event.entry.message}\n"
        if self.dropped:
            missed = f"({self.dropped} lines not written: the disk was slow)"
            line = f"{_stamp(time.time())} {missed}\n{line}"
        try:
            self._queue.put_nowait((name, line))
        except queue.Full:
            self.dropped += 1
        else:
            self.dropped = 0

    def close(self, timeout: float = 5.0) -> None:
        """Blocking (a thread join): call it through `asyncio.to_thread`."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        thread.join(timeout)

    # -- the writer's thread ----------------------------------------------------------------

    def path_of(self, name: str) -> Path:
        return self.directory / f"{name}.http.log"

    def _write_all(self) -> None:
        while (item := self._queue.get()) is not None:
            name, line = item
            try:
                self._write(self.path_of(name), line.encode("utf-8", "replace"))
            except OSError as exc:  # a full disk, a removed directory: said in the daemon log
                log.warning("cannot write the HTTP log of %s: %s", name, exc)

    def _write(self, path: Path, data: bytes) -> None:
        try:
            size = os.lstat(path).st_size
        except FileNotFoundError:
            size = 0
        if size and size + len(data) > self.max_bytes:
            self._rotate(path)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(path, flags, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def _rotate(self, path: Path) -> None:
        oldest = Path(f"{path}.{self.backups}")
        with contextlib.suppress(FileNotFoundError):
            oldest.unlink()
        for n in range(self.backups - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{path}.{n}", f"{path}.{n + 1}")
        if self.backups:
            os.replace(path, f"{path}.1")
        else:
            path.unlink()
