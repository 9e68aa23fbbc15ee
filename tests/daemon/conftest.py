"""Daemons for tests: in-process (`daemon` fixture: a DaemonServer on this loop, against the
sandbox) and as a real process (`daemon_process`). Both use a private runtime dir short enough
for a unix socket path, and a config dir of their own; both are stopped by their fixture."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from portfwd.daemon.client import DaemonClient
from portfwd.daemon.paths import DaemonPaths, daemon_paths
from portfwd.daemon.replies import NotRunning
from portfwd.daemon.server import DaemonServer
from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec
from portfwd.sandbox.cluster import SandboxCluster
from portfwd.store.session import Session
from portfwd.store.state import StateStore
from tests.support.cli import PORTFWD


@dataclass
class Dirs:
    config: Path
    runtime: Path

    @property
    def env(self) -> dict[str, str]:
        return {"PORTFWD_CONFIG_DIR": str(self.config), "PORTFWD_RUNTIME_DIR": str(self.runtime)}

    @property
    def paths(self) -> DaemonPaths:
        return daemon_paths(self.env)

    def write_profiles(self, text: str) -> None:
        """profiles.yaml as a user keeps it: in a private config dir, mode 0600."""
        self.config.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.config / "profiles.yaml"
        path.write_text(text)
        path.chmod(0o600)


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dirs]:
    """Config dir under tmp_path; runtime dir under /tmp (a socket path has ~100 bytes)."""
    runtime = Path(tempfile.mkdtemp(prefix="pfd-", dir="/tmp"))
    found = Dirs(config=tmp_path / "config", runtime=runtime / "run")
    for key, value in found.env.items():
        monkeypatch.setenv(key, value)
    try:
        yield found
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


@dataclass
class InProcessDaemon:
    server: DaemonServer
    manager: Manager
    paths: DaemonPaths
    sandbox: SandboxCluster

    def spec(self, target: str = "svc/echo", remote: int | str = 80, **kw: object) -> ForwardSpec:
        return ForwardSpec(
            target=target,
            remote_port=remote,
            namespace="demo",
            kubeconfig=str(self.sandbox.kubeconfig_path),
            addresses=("127.0.0.1",),
            **kw,  # type: ignore[arg-type]
        )

    async def client(self, name: str = "test") -> DaemonClient:
        return await DaemonClient.connect(self.paths, client=name)


@pytest_asyncio.fixture
async def daemon(dirs: Dirs, sandbox: SandboxCluster) -> AsyncIterator[InProcessDaemon]:
    manager = Manager(kubeconfig=str(sandbox.kubeconfig_path), detect_wake=False)
    store = StateStore(dirs.config / "state.yaml")
    session = Session(manager, store, await asyncio.to_thread(store.load))
    server = DaemonServer(manager, session, dirs.paths)
    await server.start()
    await server.restore()
    try:
        yield InProcessDaemon(server, manager, dirs.paths, sandbox)
    finally:
        await asyncio.wait_for(server.close(), 30)


@dataclass
class DaemonProcess:
    proc: asyncio.subprocess.Process
    paths: DaemonPaths

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
        return await asyncio.wait_for(self.proc.wait(), 60)


async def wait_until_serving(paths: DaemonPaths, proc: asyncio.subprocess.Process) -> None:
    """Until a hello is answered (bounded); fails early if the daemon exited."""
    async with asyncio.timeout(30):
        while True:
            if proc.returncode is not None:
                raise AssertionError(f"the daemon exited with code {proc.returncode}")
            try:
                client = await DaemonClient.connect(paths, client="probe")
            except NotRunning:
                await asyncio.sleep(0.05)
                continue
            await client.close()
            return


@contextlib.asynccontextmanager
async def daemon_process(
    dirs: Dirs, *args: str, env: dict[str, str] | None = None
) -> AsyncIterator[DaemonProcess]:
    """`python -m portfwd daemon ARGS` in the foreground, stderr to a file in the config dir."""
    dirs.config.mkdir(parents=True, exist_ok=True, mode=0o700)
    errors = (dirs.config / "daemon.stderr").open("ab")
    proc = await asyncio.create_subprocess_exec(
        *PORTFWD,
        "daemon",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=errors,
        env={**os.environ, **dirs.env, **(env or {})},
    )
    running = DaemonProcess(proc, dirs.paths)
    try:
        await wait_until_serving(dirs.paths, proc)
        yield running
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        errors.close()
