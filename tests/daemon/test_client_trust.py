"""The client trusts only the user's own daemon (issue 16, item 4): with PORTFWD_RUNTIME_DIR
pointing at another user's directory, that user's fake daemon received `add`'s hello and
spec. Now the client checks the directory and the listening process's uid first, and sends
nothing to a socket that fails either check."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from portfwd.daemon.client import DaemonClient
from portfwd.daemon.paths import DaemonPaths, UnsafeRuntimeDir, daemon_paths
from portfwd.daemon.sync_client import SyncClient
from portfwd.daemon.trust import UntrustedDaemon, check_server

from .test_peer import OTHER_ENV, OtherUser, other_user  # noqa: F401 (a fixture)

pytestmark = pytest.mark.timeout(120)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")


class FakeDaemon:
    """A listening socket that records what any client sends it (in a thread)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.received = b""
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(0.2)
                while not self._stop.is_set():
                    try:
                        data = conn.recv(65536)
                    except TimeoutError:
                        continue
                    except OSError:
                        break
                    if not data:
                        break
                    self.received += data
                    conn.sendall(b'{"id":0,"ok":{"pid":1}}\n')

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.sock.close()


def private_paths(tmp_path: Path) -> DaemonPaths:
    """A runtime dir of ours, 0700, as the daemon makes it."""
    directory = Path(os.path.realpath(tmp_path)) / "r"
    directory.mkdir(mode=0o700)
    return daemon_paths({"PORTFWD_RUNTIME_DIR": str(directory)})


@pytest.fixture
def foreign_dir(tmp_path: Path) -> Iterator[tuple[DaemonPaths, FakeDaemon]]:
    paths = private_paths(tmp_path)
    fake = FakeDaemon(paths.socket)
    try:
        yield paths, fake
    finally:
        fake.close()


@needs_root
def test_the_blocking_client_sends_nothing_into_another_users_directory(
    foreign_dir: tuple[DaemonPaths, FakeDaemon],
) -> None:
    paths, fake = foreign_dir
    os.chown(paths.directory, 65534, 65534)
    with pytest.raises(UnsafeRuntimeDir, match="belongs to uid 65534, not to you"):
        SyncClient.connect(paths, client="add")
    assert fake.received == b""


async def test_the_asyncio_client_sends_nothing_into_an_open_directory(
    foreign_dir: tuple[DaemonPaths, FakeDaemon],
) -> None:
    paths, fake = foreign_dir
    os.chmod(paths.directory, 0o777)
    with pytest.raises(UnsafeRuntimeDir, match="is open to other users"):
        await DaemonClient.connect(paths, client="dashboard")
    assert fake.received == b""


def test_a_server_of_another_uid_is_refused() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    paths = daemon_paths({"PORTFWD_RUNTIME_DIR": "/run/x"})
    with left, right:
        check_server(left, paths)  # ours
        with pytest.raises(UntrustedDaemon, match=f"runs as uid {os.geteuid()}, not as you"):
            check_server(left, paths, uid=os.geteuid() + 1)


LISTENER = r"""
import socket, sys
s = socket.socket(fileno=int(sys.argv[1]))
s.listen()          # the peer credentials a client sees are taken here: this user's
s.settimeout(30)
print("listening", flush=True)
try:
    conn, _ = s.accept()
except OSError:
    print(0); sys.exit(0)
conn.settimeout(3)
data = b""
try:
    while chunk := conn.recv(65536):
        data += chunk
except OSError:
    pass
print(len(data))
"""


async def test_a_socket_another_user_listens_on_gets_nothing(
    other_user: OtherUser,  # noqa: F811
    tmp_path: Path,
) -> None:
    """In a directory of ours (0700), a socket that another user's process listens on (it
    was handed the bound socket): the client refuses it by the kernel's uid of the peer."""
    paths = private_paths(tmp_path)
    bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound.bind(str(paths.socket))
    proc = await asyncio.create_subprocess_exec(
        *other_user.command(other_user.python, "-I", "-c", LISTENER, str(bound.fileno())),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        env=OTHER_ENV,
        cwd="/",
        pass_fds=(bound.fileno(),),
    )
    bound.close()
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            assert (await proc.stdout.readline()).strip() == b"listening"
            with pytest.raises(UntrustedDaemon, match=f"runs as uid {other_user.uid}"):
                await asyncio.to_thread(SyncClient.connect, paths, client="add")
            received = (await proc.stdout.readline()).strip()
        assert received == b"0"  # not a byte of the hello
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
