"""One marked block in a hosts file, owned by one `portfwd ns`, and nothing else touched.

    # BEGIN portfwd ns (pid 4242): managed by portfwd, removed when it exits
    127.83.18.201 web.demo web.demo.svc web.demo.svc.cluster.local
    # END portfwd ns

Every change rewrites the whole file with the block replaced: a temporary file in the same
directory, its mode and owner copied, flushed, then renamed over the original, so a crash
leaves the old file or the new one. A file that cannot be renamed over (a bind mount, as
/etc/hosts is in a container) is rewritten in place instead. The block names its process: a
block whose process is gone (killed, crashed) is removed by the next start; one whose process
still runs is another `portfwd ns`'s, and this one refuses to start.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from portfwd.errors import PortfwdError

BEGIN = "# BEGIN portfwd ns"
END = "# END portfwd ns"
_PID_RE = re.compile(r"\(pid (\d+)\)")


class HostsError(PortfwdError):
    """The hosts file cannot be read or written; the message says which and why."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def split_block(text: str) -> tuple[list[str], int | None, bool]:
    """(the lines outside any portfwd block, the pid of the block, whether there was one)."""
    outside: list[str] = []
    inside = False
    pid: int | None = None
    found = False
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if not inside and stripped.startswith(BEGIN):
            inside, found = True, True
            match = _PID_RE.search(stripped)
            pid = int(match[1]) if match else None
            continue
        if inside:
            if stripped == END:
                inside = False
            continue
        outside.append(line)
    return outside, pid, found


class HostsBlock:
    """The block of this process in `path`."""

    def __init__(self, path: Path, pid: int | None = None) -> None:
        self.path = path
        self.pid = os.getpid() if pid is None else pid

    def _read(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""
        except (OSError, UnicodeDecodeError) as exc:
            raise HostsError(f"cannot read {self.path}: {_why(exc)}") from None

    def claim(self) -> bool:
        """Before the first write: remove a block left by a process that is gone (True when
        one was cleaned); HostsError when a running `portfwd ns` owns one."""
        text = self._read()
        outside, pid, found = split_block(text)
        if not found:
            self._write(text)  # the same text: can it be written at all? (before any work)
            return False
        if pid is not None and pid != self.pid and _alive(pid):
            raise HostsError(
                f"{self.path} has the block of another running portfwd ns (pid {pid}); "
                "stop it first, or use another --hosts-file"
            )
        self._write("".join(outside))
        return True

    def write(self, entries: Sequence[tuple[str, Sequence[str]]]) -> None:
        """Replace the block with one line per (address, names)."""
        outside, _, _ = split_block(self._read())
        text = "".join(outside)
        if text and not text.endswith("\n"):
            text += "\n"
        if entries:
            lines = [f"{BEGIN} (pid {self.pid}): managed by portfwd, removed when it exits\n"]
            lines += [f"{address} {' '.join(names)}\n" for address, names in entries]
            lines.append(f"{END}\n")
            text += "".join(lines)
        self._write(text)

    def remove(self) -> None:
        """Take the block out (on exit)."""
        outside, pid, found = split_block(self._read())
        if found and (pid is None or pid == self.pid):
            self._write("".join(outside))

    def _write(self, text: str) -> None:
        path = Path(os.path.realpath(self.path))
        try:
            st: os.stat_result | None = path.stat()
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise HostsError(f"cannot write {self.path}: {_why(exc)}") from None
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        except OSError as exc:
            raise HostsError(f"cannot write {self.path}: {_why(exc)}; nothing changed") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                if st is not None:
                    os.fchmod(fh.fileno(), st.st_mode & 0o7777)
                    with contextlib.suppress(PermissionError):
                        os.fchown(fh.fileno(), st.st_uid, st.st_gid)
                else:
                    os.fchmod(fh.fileno(), 0o644)
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.replace(tmp, path)
            except OSError as exc:
                if exc.errno not in (errno.EBUSY, errno.EXDEV):
                    raise
                os.unlink(tmp)  # a bind mount: rewrite in place
                with open(path, "r+", encoding="utf-8") as fh:
                    fh.write(text)
                    fh.truncate()
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise HostsError(f"cannot write {self.path}: {_why(exc)}; nothing changed") from None


def _why(exc: BaseException) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied (editing it needs root: run with sudo, or leave out --hosts)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
