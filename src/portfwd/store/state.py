"""The session: which forwards exist and which were running, kept across restarts.

The file is small YAML with a schema version. It is rewritten on every change (not only at
quit), atomically (temp file in the same directory, fsync, rename, fsync the directory) with
mode 0600, from a worker thread so the event loop never blocks on the disk. Bursts of changes
coalesce into one write.

An entry we cannot understand (a wrong type, a bad target, an id twice) is left out: the
other forwards are restored, the file as it was is copied to `state.yaml.bak-<timestamp>`,
and a warning says so (the daemon's `status` carries it to `ls` and the dashboard). A file
we cannot understand as a whole (corrupt YAML, wrong shape, a newer schema, over the size or
YAML node limits) is moved aside to `state.yaml.bak-<timestamp>` and the session starts empty
with a warning: the user's data is kept, and we never overwrite a file we could not read. If
even moving it aside fails, saving is disabled for this run.

Refused outright (a PortfwdError: one line, portfwd does not start): a session file that is
not a regular file (a FIFO, a device, a directory: opened without blocking, never replaced),
and one that another user could change (see `portfwd.filecheck.check_private`), and a
kubeconfig named by a session entry that another user could change: its exec plugin would
run as the user. A symbolic link is followed: its target is read, and written atomically in
the target's own directory, so the link (a dotfile manager's, say) stays a link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState
from portfwd.engine.serial import spec_from_dict, spec_to_dict
from portfwd.errors import InputError, PortfwdError
from portfwd.filecheck import (
    FileTooLarge,
    NotRegularFile,
    check_private,
    irregular,
    read_capped,
)
from portfwd.kube.targets import printable
from portfwd.safeyaml import load_yaml
from portfwd.store.entries import SCHEMA_VERSION, Entry, encode_entries

log = logging.getLogger(__name__)

# SCHEMA_VERSION (store/entries.py) 1 also covers files with the per-forward `reconnect` key:
# older portfwd versions ignore keys they do not know, and a file without it reads as
# reconnect on. Bump it only for a change an older reader would get wrong.
# A forward takes about 200 bytes and a dozen YAML nodes: room for thousands, while the
# worst file under these limits still loads in a second or two.
STATE_MAX_BYTES = 1 << 20
STATE_MAX_NODES = 200_000

# States in which the user wants the forward running: restarted on the next start.
RUNNING_STATES = frozenset(
    {
        ForwardState.STARTING,
        ForwardState.ACTIVE,
        ForwardState.RECONNECTING,
        ForwardState.DEGRADED,
        ForwardState.IDLE,
    }
)


@dataclass(frozen=True)
class SavedForward:
    """One forward as the session remembers it."""

    id: str
    spec: ForwardSpec
    running: bool  # the user had it running: restart it on the next start
    reason: str = ""  # why it was not running (last error), shown after a restore
    # The user asked for a free port (`:80`); `spec.local_port` is the one it got, kept so a
    # restore listens where it did, and `profile save` writes `:80` again.
    free_port: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, **spec_to_dict(self.spec), "running": self.running}
        if self.reason:
            data["reason"] = self.reason
        if self.free_port:
            data["free_port"] = True
        return data

    @classmethod
    def from_dict(cls, data: Any) -> SavedForward:
        """Strict parse: a wrong shape or type raises ValueError naming the entry (the file is
        then moved aside). The spec is read by the one serialiser (`engine.serial`), whose
        checks the command line and the engine API share."""
        if not isinstance(data, dict):
            raise ValueError("forward entry is not a mapping")
        fid = data.get("id")
        if not isinstance(fid, str) or not fid:
            raise ValueError("forward entry without an id")
        where = f"forward {printable(fid)}"
        if not isinstance(data.get("target"), str) or not data["target"]:
            raise ValueError(f"{where}: missing target")
        for key in ("running", "reconnect"):
            if not isinstance(data.get(key, True), bool):  # `running: 'no'` is not false
                raise ValueError(f"{where}: bad {key} (true or false)")
        try:
            spec = spec_from_dict(data)
        except InputError as exc:
            raise ValueError(f"{where}: {exc}") from None
        reason = data.get("reason", "")
        return cls(
            id=fid,
            spec=spec,
            running=data.get("running", False),
            reason=reason if isinstance(reason, str) else "",
            free_port=data.get("free_port") is True,
        )

    @classmethod
    def from_snapshot(cls, snap: ForwardSnapshot, *, still_wanted: bool = False) -> SavedForward:
        """Remember the port actually bound, so a restored forward keeps its local port.

        `still_wanted`: the session remembers the user wanting it running whatever its state
        now (it was restored as running and has failed ever since, e.g. the cluster was
        unreachable at start; or `--no-restore` left it stopped): it stays "running" in the
        file, so one bad start or one run without restoring does not drop it.
        """
        spec = snap.spec
        free = spec.local_port == 0
        if free and snap.bound:
            spec = replace(spec, local_port=snap.bound[0][1])
        # ERROR with its port still bound: the forward waits for its target to return
        # (a deleted pod or service); the user still wants it.
        running = (
            still_wanted
            or snap.state in RUNNING_STATES
            or (snap.state is ForwardState.ERROR and bool(snap.bound))
        )
        return cls(
            id=snap.id,
            spec=spec,
            running=running,
            reason="" if running else snap.reason,
            free_port=free,
        )


@dataclass
class LoadResult:
    forwards: list[SavedForward] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    existed: bool = False  # False on a first start (no file yet)
    writable: bool = True  # False: we could not read it and could not move it aside


def _encode(forwards: list[SavedForward]) -> str:
    return encode_entries([Entry(f.to_dict()) for f in forwards])


def _decode(text: str) -> list[SavedForward]:
    """Every forward, or ValueError for the first entry that cannot be read (strict: for
    `profile save --from-session`, which must not save part of a session quietly)."""
    forwards, problems = _decode_entries(text)
    if problems:
        raise ValueError(problems[0])
    return forwards


def _decode_entries(text: str) -> tuple[list[SavedForward], list[str]]:
    """The forwards, and why each entry that could not be read was left out. A file whose
    shape is wrong as a whole raises ValueError (it is then moved aside)."""
    doc = load_yaml(text, max_nodes=STATE_MAX_NODES)
    if doc is None:
        return [], []
    if not isinstance(doc, dict):
        raise ValueError("top level is not a mapping")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError("missing schema version")
    if version > SCHEMA_VERSION:
        raise NewerVersion(version)
    if version < 1:
        raise ValueError(f"unknown schema version {version}")
    entries = doc.get("forwards") or []
    if not isinstance(entries, list):
        raise ValueError("forwards is not a list")
    forwards: list[SavedForward] = []
    problems: list[str] = []
    ids: set[str] = set()
    for number, raw in enumerate(entries, 1):
        try:
            forward = SavedForward.from_dict(raw)
        except ValueError as exc:
            problems.append(f"entry {number}: {exc}")
            continue
        if forward.id in ids:
            problems.append(f"entry {number}: forward {printable(forward.id)} appears twice")
            continue
        ids.add(forward.id)
        forwards.append(forward)
    return forwards, problems


def check_session_path(path: Path) -> None:
    """Refuse (a PortfwdError, one line with the fix) a session file that is not a regular
    file, or one (or a config directory above it) that another user could change. Call it
    before writing anything next to it."""
    problem = irregular(path)
    if problem:
        raise _not_regular(path, problem)
    check_private(path, what="session file")


def _not_regular(path: Path, problem: str) -> PortfwdError:
    return PortfwdError(
        f"session file {printable(str(path))} {problem}; remove it or choose another file "
        "with --state FILE"
    )


class NewerVersion(ValueError):
    def __init__(self, version: int) -> None:
        super().__init__(f"written by a newer portfwd (schema version {version})")
        self.version = version


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` so a crash leaves either the old or the new file, never half.
    A symbolic link at `path` stays: the file it points to is replaced, in its own directory.

    Blocking: call it from a thread.
    """
    path = Path(os.path.realpath(path))
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


ORPHAN_AGE = 60.0  # seconds: a write takes milliseconds, so an older temp file is an orphan


def _sweep_orphans(path: Path) -> None:
    """Remove temp files a killed writer left next to `path` (see write_atomic).

    Only old ones: a fresh one may belong to another portfwd writing right now.
    """
    cutoff = time.time() - ORPHAN_AGE
    with contextlib.suppress(OSError):
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()


class StateStore:
    """The session file: read once at start, rewritten (atomically, off the loop) on demand.

    What to write and when is the `Session`'s business (`store/session.py`): it follows the
    engine and calls `save` after changes, and once more before the forwards stop.
    """

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._writable = True
        self._last_written: str | None = None
        self._write_lock = asyncio.Lock()
        self.writes = 0  # how many times the file was actually rewritten
        self.last_error: str | None = None
        self.on_error: Callable[[str], None] | None = None  # e.g. the TUI's toast

    @property
    def writable(self) -> bool:
        return self._writable

    # -- loading -----------------------------------------------------------------------------

    def load(self) -> LoadResult:
        """Read the session. Blocking (small file): call before the loop runs or via a thread.
        Raises PortfwdError for a file portfwd must not use (see the module docstring)."""
        check_session_path(self.path)
        _sweep_orphans(Path(os.path.realpath(self.path)))
        result = LoadResult()
        try:
            data = read_capped(self.path, STATE_MAX_BYTES, regular_only=True)
            text = data.decode("utf-8")
        except FileNotFoundError:
            return result
        except NotRegularFile as exc:  # replaced by one since check_session_path looked
            raise _not_regular(self.path, exc.problem) from None
        except FileTooLarge as exc:
            result.existed = True
            result.warnings.extend(self._move_aside(f"it {exc.problem}"))
            result.writable = self._writable
            return result
        except UnicodeDecodeError:  # a ValueError, not an OSError: garbage bytes on disk
            result.existed = True
            result.warnings.extend(self._move_aside("not UTF-8 text"))
            result.writable = self._writable
            return result
        except OSError as exc:
            self._writable = False
            result.writable = False
            result.existed = True
            result.warnings.append(
                f"cannot read session file {self.path} ({exc.strerror}); "
                "this session will not be saved, fix its permissions and restart"
            )
            return result
        result.existed = True
        try:
            result.forwards, problems = _decode_entries(text)
            self._last_written = text
            if problems:  # the good entries stay; the file as it was is kept beside
                result.warnings.extend(self._skipped_entries(problems, len(result.forwards)))
        except (yaml.YAMLError, ValueError) as exc:
            problem = str(exc) if isinstance(exc, ValueError) else "not valid YAML"
            result.warnings.extend(self._move_aside(problem))
            result.writable = self._writable
        for forward in result.forwards:
            if forward.spec.kubeconfig:
                where = Path(os.path.abspath(os.path.expanduser(forward.spec.kubeconfig)))
                check_private(
                    where,
                    what="kubeconfig",
                    named_by=f"the session file {printable(str(self.path))}",
                )
        return result

    def _backup_path(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(self._clock()))
        real = Path(os.path.realpath(self.path))  # through a link: the file, not the link
        backup = real.with_name(f"{real.name}.bak-{stamp}")
        n = 1
        while backup.exists():
            backup = real.with_name(f"{real.name}.bak-{stamp}-{n}")
            n += 1
        return backup

    def _skipped_entries(self, problems: list[str], kept: int) -> list[str]:
        """Some entries could not be read: the others are restored; the file as it was is
        copied beside it (the next save rewrites it without the bad ones)."""
        backup = self._backup_path()
        first = problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        try:
            write_atomic(backup, self._last_written or "")
        except OSError as exc:
            # Rewriting would lose the bad entries for good: keep the file, do not save.
            self._writable = False
            return [
                f"session file {self.path}: {len(problems)} entry(ies) could not be read"
                f" ({first}) and the file could not be copied aside ({exc.strerror});"
                f" restored the other {kept} forward(s), this session will not be saved"
            ]
        return [
            f"session file {self.path}: left out {len(problems)} entry(ies) that could not"
            f" be read ({first}); restored the other {kept} forward(s); the file as it was"
            f" is kept in {backup}"
        ]

    def _move_aside(self, problem: str) -> list[str]:
        real = Path(os.path.realpath(self.path))  # through a link: the file, not the link
        backup = self._backup_path()
        try:
            os.replace(real, backup)
        except OSError as exc:
            self._writable = False
            return [
                f"session file {self.path} is unusable ({problem}) and could not be moved "
                f"aside ({exc.strerror}); this session will not be saved"
            ]
        return [
            f"session file {self.path} is unusable ({problem}); moved it to {backup} "
            "and started with an empty session"
        ]

    # -- saving ------------------------------------------------------------------------------

    def encode(self, snapshots: list[ForwardSnapshot], wanted: Iterable[str] = ()) -> str:
        """The file's text for these forwards; `wanted`: ids remembered as running whatever
        their state (see `SavedForward.from_snapshot` and `Session`). Blocking."""
        keep = set(wanted)
        return _encode(
            [SavedForward.from_snapshot(s, still_wanted=s.id in keep) for s in snapshots]
        )

    async def save(self, snapshots: list[ForwardSnapshot], wanted: Iterable[str] = ()) -> bool:
        """Write these forwards now (off the loop). Returns True if the file changed, False
        if it did not or could not be written (reported through `on_error`)."""
        keep = set(wanted)
        entries = [
            Entry(SavedForward.from_snapshot(s, still_wanted=s.id in keep).to_dict())
            for s in snapshots
        ]
        try:
            return await self.save_entries(entries)
        except SaveFailed:
            return False

    async def save_entries(self, entries: list[Entry]) -> bool:
        """Write these entries (encoded and written in a worker thread). True if the file
        changed; SaveFailed when it could not be written (reported once through `on_error`
        until a write succeeds again)."""
        if not self._writable:
            return False
        async with self._write_lock:
            try:
                changed = await asyncio.to_thread(self._write_if_changed, entries)
            except OSError as exc:
                # Keep running: a full disk must not take the forwards down. Say it once.
                message = (
                    f"cannot save the session to {self.path}: {exc.strerror or exc}; "
                    "fix it (space, permissions) and changes are saved again"
                )
                if self.last_error is None:
                    log.warning("%s", message)
                    if self.on_error is not None:
                        self.on_error(message)
                self.last_error = message
                raise SaveFailed(message) from None
            self.last_error = None
            if changed:
                self.writes += 1
            return changed

    def _write_if_changed(self, entries: list[Entry]) -> bool:
        """Blocking (the writer's thread; `_write_lock` held): encode, compare, write."""
        text = encode_entries(entries)
        if text == self._last_written:
            return False
        write_atomic(self.path, text)
        self._last_written = text
        return True


class SaveFailed(PortfwdError):
    """The session file could not be written (the message says why and what to do)."""
