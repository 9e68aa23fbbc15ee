"""What portfwd checks before it trusts a file: what kind of file it is, how big, who may change it.

- :func:`read_capped` reads at most `limit` bytes. With `regular_only` it opens without
  blocking (a FIFO at the path would otherwise block the read forever) and refuses anything
  but a regular file, after `fstat` on the descriptor it reads (no check-then-open race).
- :func:`check_private` refuses, as ssh's StrictModes does, a file that someone other than the
  user (or root) could change: owned by another user, or writable by group or others, or
  inside a directory like that (sticky directories such as /tmp excepted: others cannot
  replace a file they do not own there). A session file decides which kubeconfig, and so which
  exec plugin, portfwd runs: whoever can write it can run code as the user.

Symbolic links are followed: the checks apply to the file the link points to, the directories
above it, and the directories above the link itself; and every link on the way (the file's,
or a directory's) must belong to the user or root (another user's link in /tmp would choose
which of the user's files portfwd rewrites).
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
from pathlib import Path

from portfwd.errors import PortfwdError
from portfwd.safetext import escape_controls

__all__ = [
    "FileRefused",
    "FileTooLarge",
    "NotRegularFile",
    "UnsafeFile",
    "check_private",
    "human_size",
    "irregular",
    "read_capped",
]


class FileRefused(Exception):
    """A file portfwd will not read; `problem` completes "<what> <path> ..."."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class NotRegularFile(FileRefused):
    pass


class FileTooLarge(FileRefused):
    pass


class UnsafeFile(PortfwdError):
    """Someone else could change this file (or a directory above it): not used."""


def human_size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def irregular(path: Path) -> str:
    """Why `path` is not a regular file ("is a FIFO (named pipe), not a regular file"), or ""
    (a regular file, or nothing there). `stat` only: it never opens, so never blocks."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return ""
    return "" if stat.S_ISREG(mode) else f"is {_kind(mode)}, not a regular file"


def read_capped(path: Path, limit: int, *, regular_only: bool) -> bytes:
    """The file's bytes, at most `limit` of them (FileTooLarge beyond). Raises OSError as
    `open` does (FileNotFoundError, PermissionError ...), IsADirectoryError for a directory
    and, with `regular_only`, NotRegularFile for a FIFO, device or socket."""
    flags = os.O_RDONLY | os.O_CLOEXEC | (os.O_NONBLOCK if regular_only else 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        regular = stat.S_ISREG(st.st_mode)
        if regular_only and not regular:
            raise NotRegularFile(f"is {_kind(st.st_mode)}, not a regular file")
        limit_text = f"portfwd's limit of {human_size(limit)}"
        if regular and st.st_size > limit:
            raise FileTooLarge(f"is {human_size(st.st_size)}, over {limit_text}")
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # a file that grew, or a pipe or device that never ends
                raise FileTooLarge(f"is over {limit_text}")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _user(uid: int) -> str:
    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _directories(path: Path) -> list[Path]:
    """Every directory above the file `path` points to and above `path` itself, resolved."""
    seen: list[Path] = []
    for start in (Path(os.path.realpath(path)).parent, Path(os.path.realpath(path.parent))):
        for directory in (start, *start.parents):
            if directory not in seen:
                seen.append(directory)
    return seen


def _refuse_if_unsafe(shown: str, where: Path, st: os.stat_result, uid: int) -> None:
    place = escape_controls(str(where))
    if st.st_uid not in (uid, 0):
        raise UnsafeFile(
            f"{shown} belongs to {_user(st.st_uid)}, not to you ({_user(uid)}), so that user "
            f"could change what portfwd runs; take it over (chown {uid} {place}) or remove it"
        )
    sticky_dir = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky_dir:
        raise UnsafeFile(
            f"{shown} is writable by group or others, so they could change what portfwd "
            f"runs; fix it with: chmod go-w {place}"
        )


def _check_links(shown: str, path: Path, uid: int) -> None:
    """Each symbolic link on the way to `path` (itself, or a directory above it) must be the
    user's or root's: another user's link in a sticky directory (/tmp) would make portfwd read
    and rewrite a file of the user's that the link's owner chose (as ssh checks each
    component, not only the file it ends at). Links we own are fine: nobody else can change
    or replace them there."""
    for candidate in (path, *path.parents):
        try:
            st = os.lstat(candidate)
        except OSError:
            continue
        if not stat.S_ISLNK(st.st_mode) or st.st_uid in (uid, 0):
            continue
        place = escape_controls(str(candidate))
        raise UnsafeFile(
            f"{shown}: {place} is a symbolic link that belongs to {_user(st.st_uid)}, not to"
            f" you ({_user(uid)}), so that user chooses which file portfwd writes; remove the"
            " link, or give a path without it"
        )


def check_private(path: Path, *, what: str, named_by: str = "") -> None:
    """Raise UnsafeFile (one line: what, why, the fix) if `path` or a directory above it may
    be changed by another user. A path that does not exist yet is fine (portfwd creates it
    with mode 0600 / 0700); so are the directories above it that do not exist. `what` and
    `named_by` say what the file is: "kubeconfig" named by "the session file ..."."""
    uid = os.geteuid()
    path = Path(os.path.abspath(path))
    shown = f"{what} {escape_controls(str(path))}" + (f" (named by {named_by})" if named_by else "")
    _check_links(shown, path, uid)
    real = Path(os.path.realpath(path))
    try:
        st = os.stat(real)
    except OSError:
        st = None  # missing (or unreadable: reading it reports that)
    if st is not None:
        _refuse_if_unsafe(shown, real, st, uid)
    for directory in _directories(path):
        try:
            dst = os.stat(directory)
        except OSError:
            continue
        _refuse_if_unsafe(
            f"directory {escape_controls(str(directory))} (above the {shown})", directory, dst, uid
        )
