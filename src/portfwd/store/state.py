"""The session: which forwards exist and which were running, kept across restarts.

The file is small YAML with a schema version. It is rewritten on every change (not only at
quit), atomically (temp file in the same directory, fsync, rename, fsync the directory) with
mode 0600, from a worker thread so the event loop never blocks on the disk. Bursts of changes
coalesce into one write.

A file we cannot understand (corrupt YAML, wrong shape, a newer schema, over the size or
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
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import yaml

from portfwd.engine.events import (
    Event,
    ForwardAdded,
    ForwardChanged,
    ForwardRemoved,
    Lagged,
)
from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState
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

log = logging.getLogger(__name__)

# Version 1 also covers files with the per-forward `reconnect` key: older portfwd versions
# ignore keys they do not know, and a file without it reads as reconnect on. Bump it only for
# a change an older reader would get wrong.
SCHEMA_VERSION = 1
STATE_FILE_NAME = "state.yaml"
CONFIG_DIR_ENV = "PORTFWD_CONFIG_DIR"
# A forward takes about 200 bytes and a dozen YAML nodes: room for thousands, while the
# worst file under these limits still loads in a second or two.
STATE_MAX_BYTES = 1 << 20
STATE_MAX_NODES = 200_000

# States in which the user wants the forward running: restarted on the next start.
RUNNING_STATES = frozenset({ForwardState.STARTING, ForwardState.ACTIVE, ForwardState.RECONNECTING})


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """$PORTFWD_CONFIG_DIR, else the platform's user config dir (~/.config/portfwd)."""
    env = os.environ if environ is None else environ
    override = env.get(CONFIG_DIR_ENV)
    if override:
        return Path(override).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("portfwd"))


def default_state_file(environ: Mapping[str, str] | None = None) -> Path:
    return config_dir(environ) / STATE_FILE_NAME


@dataclass(frozen=True)
class SavedForward:
    """One forward as the session remembers it."""

    id: str
    spec: ForwardSpec
    running: bool  # the user had it running: restart it on the next start
    reason: str = ""  # why it was not running (last error), shown after a restore

    def to_dict(self) -> dict[str, Any]:
        spec = self.spec
        data: dict[str, Any] = {
            "id": self.id,
            "target": spec.target,
            "remote_port": spec.remote_port,
            "local_port": spec.local_port,
            "addresses": list(spec.addresses),
            "reconnect": spec.reconnect,
            "running": self.running,
        }
        if spec.namespace is not None:
            data["namespace"] = spec.namespace
        if spec.context is not None:
            data["context"] = spec.context
        if spec.kubeconfig is not None:
            data["kubeconfig"] = spec.kubeconfig
        if spec.protocol != "auto":
            data["protocol"] = spec.protocol
        if self.reason:
            data["reason"] = self.reason
        return data

    @classmethod
    def from_dict(cls, data: Any) -> SavedForward:
        """Strict parse: a wrong shape or type raises ValueError naming the entry (the file is
        then moved aside). The spec's own fields are checked by ForwardSpec, the validation
        the command line and the engine API share."""
        if not isinstance(data, dict):
            raise ValueError("forward entry is not a mapping")
        fid = data.get("id")
        if not isinstance(fid, str) or not fid:
            raise ValueError("forward entry without an id")
        where = f"forward {printable(fid)}"
        if not isinstance(data.get("target"), str) or not data["target"]:
            raise ValueError(f"{where}: missing target")
        addresses = data.get("addresses", ["127.0.0.1"])
        if not isinstance(addresses, list):
            raise ValueError(f"{where}: bad addresses (a list of IP addresses or localhost)")
        for key in ("running", "reconnect"):
            if not isinstance(data.get(key, True), bool):  # `running: 'no'` is not false
                raise ValueError(f"{where}: bad {key} (true or false)")
        remote: Any = data.get("remote_port")  # any type: ForwardSpec says what is wrong
        try:
            spec = ForwardSpec(
                target=data["target"],
                remote_port=remote,
                local_port=data.get("local_port", 0),
                namespace=data.get("namespace"),
                context=data.get("context"),
                kubeconfig=data.get("kubeconfig"),
                addresses=tuple(addresses) or ("127.0.0.1",),
                reconnect=data.get("reconnect", True),  # files from before reconnect: on
                protocol=data.get("protocol", "auto"),  # files from before protocols: auto
            )
        except InputError as exc:
            raise ValueError(f"{where}: {exc}") from None
        reason = data.get("reason", "")
        return cls(
            id=fid,
            spec=spec,
            running=data.get("running", False),
            reason=reason if isinstance(reason, str) else "",
        )

    @classmethod
    def from_snapshot(
        cls, snap: ForwardSnapshot, *, still_wanted: bool = False, skipped: bool = False
    ) -> SavedForward:
        """Remember the port actually bound, so a restored forward keeps its local port.

        `still_wanted`: the forward was restored as running and has failed ever since (e.g.
        the cluster was unreachable at start): it stays "running" in the file, so one bad
        start does not silently drop it from the next session.
        `skipped`: it was running when saved and `--no-restore` left it stopped, untouched
        since: it stays "running", so the next normal start restores it.
        """
        spec = snap.spec
        if spec.local_port == 0 and snap.bound:
            spec = replace(spec, local_port=snap.bound[0][1])
        # ERROR with its port still bound: the forward waits for its target to return
        # (a deleted pod or service); the user still wants it.
        running = (
            snap.state in RUNNING_STATES
            or (snap.state is ForwardState.ERROR and (still_wanted or bool(snap.bound)))
            or (skipped and snap.state is ForwardState.STOPPED)
        )
        return cls(id=snap.id, spec=spec, running=running, reason="" if running else snap.reason)


@dataclass
class LoadResult:
    forwards: list[SavedForward] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    existed: bool = False  # False on a first start (no file yet)
    writable: bool = True  # False: we could not read it and could not move it aside


def _encode(forwards: list[SavedForward]) -> str:
    doc = {"version": SCHEMA_VERSION, "forwards": [f.to_dict() for f in forwards]}
    header = "# portfwd session state (written by portfwd; edits are read at start)\n"
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def _decode(text: str) -> list[SavedForward]:
    doc = load_yaml(text, max_nodes=STATE_MAX_NODES)
    if doc is None:
        return []
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
    forwards = [SavedForward.from_dict(e) for e in entries]
    ids = [f.id for f in forwards]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate forward ids")
    return forwards


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


class EventStream(Protocol):
    def __aiter__(self) -> AsyncIterator[Event]: ...

    def close(self) -> None: ...


class SessionSource(Protocol):
    """The part of the engine's Manager the store needs."""

    def snapshot(self) -> list[ForwardSnapshot]: ...

    def subscribe(self, maxsize: int = 1000) -> EventStream: ...


class StateStore:
    """Loads the session once, then keeps the file in step with the engine.

    `attach(manager)` follows the Manager's events and rewrites the file after every
    added/changed/removed forward; writes run in a thread and coalesce. `flush()` writes the
    current state now (used at quit, before the forwards are stopped).
    """

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        coalesce_delay: float = 0.05,
    ) -> None:
        self.path = path
        self._clock = clock
        self._coalesce_delay = coalesce_delay
        self._writable = True
        self._last_written: str | None = None
        self._source: SessionSource | None = None
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._write_lock = asyncio.Lock()
        self._wanted: set[str] = set()
        self._skipped: set[str] = set()
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
            result.forwards = _decode(text)
            self._last_written = text
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

    def _move_aside(self, problem: str) -> list[str]:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(self._clock()))
        real = Path(os.path.realpath(self.path))  # through a link: the file, not the link
        backup = real.with_name(f"{real.name}.bak-{stamp}")
        n = 1
        while backup.exists():
            backup = real.with_name(f"{real.name}.bak-{stamp}-{n}")
            n += 1
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

    def encode(self, snapshots: list[ForwardSnapshot]) -> str:
        return _encode(
            [
                SavedForward.from_snapshot(
                    s, still_wanted=s.id in self._wanted, skipped=s.id in self._skipped
                )
                for s in snapshots
            ]
        )

    def keep_skipped(self, forward_ids: Iterable[str]) -> None:
        """These were running and `--no-restore` left them stopped: the file keeps them
        running until the user starts (or deletes) them, so the next start restores them."""
        self._skipped.update(forward_ids)

    def keep_wanted(self, forward_ids: Iterable[str]) -> None:
        """These were restored as running: keep them so while they fail, until they run or
        the user stops them (see `SavedForward.from_snapshot`)."""
        self._wanted.update(forward_ids)

    def _settle_wanted(self, snap: ForwardSnapshot) -> None:
        if snap.state in (ForwardState.ACTIVE, ForwardState.STOPPED):
            self._wanted.discard(snap.id)
        if snap.state is not ForwardState.STOPPED:
            self._skipped.discard(snap.id)  # the user started it: from now on it is as it is

    async def save(self, snapshots: list[ForwardSnapshot]) -> bool:
        """Write these forwards now (off the loop). Returns True if the file changed."""
        if not self._writable:
            return False
        text = self.encode(snapshots)
        async with self._write_lock:
            if text == self._last_written:
                return False
            try:
                await asyncio.to_thread(write_atomic, self.path, text)
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
                return False
            self.last_error = None
            self._last_written = text
            self.writes += 1
            return True

    def attach(self, source: SessionSource) -> None:
        """Follow `source`'s events and keep the file current until `close()`."""
        if self._source is not None:
            raise RuntimeError("StateStore already attached")
        self._source = source
        subscription = source.subscribe()
        for snap in source.snapshot():
            self._settle_wanted(snap)
        self._tasks.append(asyncio.create_task(self._follow(subscription), name="state-follow"))
        self._tasks.append(asyncio.create_task(self._writer(), name="state-writer"))

    def request_save(self) -> None:
        self._dirty.set()

    async def _follow(self, subscription: EventStream) -> None:
        try:
            async for event in subscription:
                if isinstance(event, ForwardAdded | ForwardChanged):
                    self._settle_wanted(event.snapshot)
                elif isinstance(event, ForwardRemoved):
                    self._wanted.discard(event.forward_id)
                    self._skipped.discard(event.forward_id)
                elif isinstance(event, Lagged) and self._source is not None:
                    for snap in self._source.snapshot():
                        self._settle_wanted(snap)
                if isinstance(event, ForwardAdded | ForwardChanged | ForwardRemoved | Lagged):
                    self._dirty.set()
        finally:
            subscription.close()

    async def _writer(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self._coalesce_delay)  # let a burst of events land
            self._dirty.clear()
            if self._source is not None:
                await self.save(self._source.snapshot())

    async def flush(self) -> None:
        """Write the current state now (quit calls this before stopping the forwards)."""
        if self._source is not None:
            self._dirty.clear()
            await self.save(self._source.snapshot())

    async def close(self, *, flush: bool = True) -> None:
        """Stop following the engine; by default write the final state first."""
        if flush:
            await self.flush()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._source = None


class RestoreTarget(Protocol):
    async def add(
        self, spec: ForwardSpec, *, start: bool = True, forward_id: str | None = None
    ) -> str: ...

    async def start(self, forward_id: str) -> ForwardSnapshot: ...


async def restore(
    manager: RestoreTarget, saved: list[SavedForward], *, restart: bool = True
) -> dict[str, str]:
    """Re-create the saved forwards: running ones are restarted (unless `restart` is False).

    All are added first (stopped, in their saved order) so the dashboard shows the whole
    session at once; the running ones then start concurrently. A forward whose resource is
    gone ends in the engine's error state with its reason. Returns notes per forward id: why a
    forward is shown stopped.
    """
    notes: dict[str, str] = {}
    to_start: list[str] = []
    for item in saved:
        try:
            fid = await manager.add(item.spec, start=False, forward_id=item.id)
        except ValueError as exc:  # the engine already holds this id (load rejects duplicates)
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
            await manager.start(fid)
        except Exception as exc:  # the engine reports it as the forward's error state too
            notes[fid] = f"restart failed: {exc}"

    await asyncio.gather(*(start_one(fid) for fid in to_start))
    return notes
