"""Who may use the daemon: the kernel's uid of the peer, and another real user kept out twice
over (the 0700 directory and 0600 socket; then, if those were opened by hand, the peer check).

The other-user tests need root, `setpriv` or `runuser`, and a working `useradd`; the other
user runs the system python with plain stdlib code (the venv may be private to us)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from portfwd.daemon import protocol as proto
from portfwd.daemon.peer import peer_uid

from .conftest import Dirs, InProcessDaemon

pytestmark = pytest.mark.timeout(120)

BOUND = 30


def test_peer_uid_of_a_socketpair_is_ours() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        assert peer_uid(left) == os.getuid()
        assert peer_uid(right) == os.getuid()


async def test_peer_uid_through_asyncios_transport_socket(tmp_path: Path) -> None:
    """The server hands peer_uid asyncio's TransportSocket, not a socket.socket."""
    seen: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not seen.done():
            seen.set_result(peer_uid(writer.get_extra_info("socket")))
        writer.close()

    path = tmp_path / "peer.sock"
    server = await asyncio.start_unix_server(serve, path=str(path))
    try:
        _, writer = await asyncio.open_unix_connection(str(path))
        try:
            async with asyncio.timeout(BOUND):
                assert await seen == os.getuid()
        finally:
            writer.close()
    finally:
        server.close()
        await server.wait_closed()
        path.unlink(missing_ok=True)


def test_peer_uid_is_none_where_the_platform_cannot_tell(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(socket, "SO_PEERCRED", raising=False)
    monkeypatch.setattr("portfwd.daemon.peer.sys.platform", "win32")
    left, right = socket.socketpair()
    with left, right:
        assert peer_uid(left) is None


# -- another user -----------------------------------------------------------------------------


@dataclass
class OtherUser:
    name: str
    uid: int
    gid: int
    python: str
    prefix: list[str]  # runs a command as that user

    def command(self, *args: str) -> list[str]:
        return [*self.prefix, *args]


def _system_python() -> str | None:
    for candidate in ("/usr/bin/python3", shutil.which("python3"), "/usr/local/bin/python3"):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


OTHER_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


@pytest.fixture
def other_user() -> Iterator[OtherUser]:
    """A throwaway system user (removed afterwards) who can run the system python."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("needs root on Linux to become another user")
    useradd, userdel = shutil.which("useradd"), shutil.which("userdel")
    setpriv, runuser = shutil.which("setpriv"), shutil.which("runuser")
    python = _system_python()
    if not (useradd and userdel) or not (setpriv or runuser) or python is None:
        pytest.skip("needs useradd/userdel, setpriv or runuser, and a system python3")
    name = f"pfdtest{secrets.randbelow(100_000)}"
    made = subprocess.run(
        [useradd, "--system", "--no-create-home", name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"useradd does not work here: {made.stderr.strip()}")
    try:
        ids = subprocess.run(
            ["id", "-u", name], capture_output=True, text=True, timeout=30, check=True
        )
        gids = subprocess.run(
            ["id", "-g", name], capture_output=True, text=True, timeout=30, check=True
        )
        uid, gid = int(ids.stdout), int(gids.stdout)
        assert uid != os.geteuid()
        if setpriv:
            prefix = [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]
        else:
            assert runuser is not None
            prefix = [runuser, "-u", name, "--"]
        user = OtherUser(name, uid, gid, python, prefix)
        probe = subprocess.run(
            user.command(python, "-I", "-c", "import os; print(os.getuid())"),
            capture_output=True,
            text=True,
            env=OTHER_ENV,
            cwd="/",
            timeout=60,
            check=False,
        )
        if probe.returncode != 0 or probe.stdout.strip() != str(uid):
            pytest.skip(f"{python} does not run as {name}: {probe.stderr.strip()}")
        yield user
    finally:
        subprocess.run(
            [userdel, name], capture_output=True, timeout=60, check=False
        )  # (the loop runs nothing any more: the daemon fixture was torn down first)


CLIENT = r"""
import asyncio, json, sys

async def main(path):
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), 20)
    except OSError as exc:
        return {"connect": type(exc).__name__, "errno": exc.errno, "uid": __import__("os").getuid()}
    lines, end = [], "eof"
    try:
        while True:
            raw = await asyncio.wait_for(reader.readline(), 20)
            if not raw:
                break
            lines.append(raw.decode("utf-8", "replace"))
    except ConnectionResetError:
        end = "reset"
    except asyncio.TimeoutError:
        end = "timeout"
    writer.close()
    return {"connect": "ok", "lines": lines, "end": end}

print(json.dumps(asyncio.run(main(sys.argv[1]))))
"""


async def connect_as(user: OtherUser, path: Path) -> dict[str, Any]:
    """The other user's connection attempt, run without blocking the daemon's event loop."""
    proc = await asyncio.create_subprocess_exec(
        *user.command(user.python, "-I", "-c", CLIENT, str(path)),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=OTHER_ENV,
        cwd="/",
    )
    try:
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    result = json.loads(out)
    assert isinstance(result, dict)
    return result


class Modes:
    """chmod some paths for a test; the old modes come back afterwards."""

    def __init__(self) -> None:
        self._old: list[tuple[Path, int]] = []

    def set(self, path: Path, mode: int) -> None:
        self._old.append((path, os.stat(path).st_mode & 0o7777))
        os.chmod(path, mode)

    def restore(self) -> None:
        while self._old:
            path, mode = self._old.pop()
            if path.exists():
                os.chmod(path, mode)


async def owner_still_served(daemon: InProcessDaemon) -> None:
    async with asyncio.timeout(BOUND):
        client = await daemon.client("owner")
        try:
            assert await client.request("snapshot") == []
            assert (await client.request("status"))["clients"] == 1  # the other never counted
        finally:
            await client.close()


@pytest.mark.parametrize("opened_dir", [False, True], ids=["dir-0700", "dir-0711-socket-0600"])
async def test_another_user_cannot_even_connect(
    other_user: OtherUser, dirs: Dirs, daemon: InProcessDaemon, opened_dir: bool
) -> None:
    modes = Modes()
    try:
        # The fixture's temporary parent is 0700 itself; open it so that only the daemon's
        # own modes stand in the way.
        modes.set(dirs.runtime.parent, 0o711)
        assert os.stat(daemon.paths.directory).st_mode & 0o777 == 0o700
        assert os.stat(daemon.paths.socket).st_mode & 0o777 == 0o600
        if opened_dir:
            modes.set(daemon.paths.directory, 0o711)
        result = await connect_as(other_user, daemon.paths.socket)
    finally:
        modes.restore()
    assert result["connect"] == "PermissionError", result
    assert result["uid"] == other_user.uid
    await owner_still_served(daemon)


async def test_another_user_let_in_by_the_modes_is_refused_by_uid(
    other_user: OtherUser, dirs: Dirs, daemon: InProcessDaemon
) -> None:
    modes = Modes()
    try:
        modes.set(dirs.runtime.parent, 0o711)
        modes.set(daemon.paths.directory, 0o711)
        modes.set(daemon.paths.socket, 0o666)
        result = await connect_as(other_user, daemon.paths.socket)
    finally:
        modes.restore()
    assert result["connect"] == "ok", result  # the kernel let it in ...
    assert result["end"] == "eof", result  # ... and the daemon closed it
    assert len(result["lines"]) == 1, result  # after one error
    message = json.loads(result["lines"][0])
    assert message["id"] is None
    assert message["error"]["type"] == proto.REFUSED, message
    text = message["error"]["message"]
    assert "uid" in text, text
    assert str(other_user.uid) in text, text
    assert str(os.geteuid()) in text, text
    await owner_still_served(daemon)
