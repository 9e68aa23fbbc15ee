"""portfwd's own log files: rotated, bounded, private (0600), written off the event loop.

Log lines quote API messages, object names and paths (escaped: `safetext.EscapingFormatter`),
never tokens or keys. Records are handed to a queue and written by a thread
(`logging.handlers.QueueListener`), so a slow disk never stalls the engine.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import queue
from pathlib import Path

from portfwd.safetext import EscapingFormatter

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class PrivateLogFile(logging.handlers.RotatingFileHandler):
    """A rotating log file that only its owner may read (mode 0600, also after a rotation,
    and tightened if an older portfwd left it 0644): log lines quote API messages and paths."""

    def _open(self) -> io.TextIOWrapper:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(self.baseFilename, flags, 0o600)
        try:
            os.fchmod(fd, 0o600)
            return open(fd, "a", encoding=self.encoding, errors=self.errors)
        except BaseException:
            os.close(fd)
            raise


class BackgroundLog:
    """A private rotating file fed through a queue by a writer thread; `close()` flushes."""

    def __init__(
        self, path: Path, *, level: int, max_bytes: int = 1_000_000, backups: int = 1
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        self.file = PrivateLogFile(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        self.file.setFormatter(EscapingFormatter(FORMAT))
        self._queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self.handler = logging.handlers.QueueHandler(self._queue)
        self.handler.setLevel(level)
        self._listener = logging.handlers.QueueListener(self._queue, self.file)
        self._listener.start()

    def install(self, logger: logging.Logger | None = None) -> None:
        target = logger or logging.getLogger()
        target.addHandler(self.handler)
        if target.level > self.handler.level or target.level == logging.NOTSET:
            target.setLevel(self.handler.level)

    def close(self, logger: logging.Logger | None = None) -> None:
        (logger or logging.getLogger()).removeHandler(self.handler)
        self._listener.stop()
        self.file.close()
