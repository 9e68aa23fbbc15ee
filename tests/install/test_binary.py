"""The single-file executable (`make dist` -> dist/portfwd), run as a user would run it.

The binary is built once for this module (`make dist` rebuilds only when a source changed;
PORTFWD_BINARY names one already built). Checked against it: `--version`, `sandbox`,
`forward` through that sandbox byte for byte, the same binary as the kubectl plugin through
the installed kubectl, the dashboard's first paint in tmux, and `demo`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.e2e.test_tmux import Tmux

from .helpers import dashboard_first_paint, echo, forward_moves_bytes, run

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.skipif(sys.platform != "linux", reason="the binary is built for Linux"),
]


@pytest.fixture(scope="module")
def binary() -> Path:
    given = os.environ.get("PORTFWD_BINARY")
    if given:
        return Path(given).resolve()
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    done = subprocess.run(
        [make, "dist", f"VENV={Path(sys.executable).parent.parent}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return ROOT / "dist" / "portfwd"


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    t = Tmux(f"portfwd-bin-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        yield t
    finally:
        t.kill()


@contextlib.asynccontextmanager
async def binary_sandbox(binary: Path, workdir: Path) -> AsyncIterator[Path]:
    """`portfwd sandbox` from the binary, in the background; yields its kubeconfig."""
    kubeconfig = workdir / "sandbox.kubeconfig"
    proc = await asyncio.create_subprocess_exec(
        str(binary),
        "sandbox",
        "--kubeconfig-out",
        str(kubeconfig),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(60):
            line = await proc.stdout.readline()
        assert line.startswith(b"Sandbox Kubernetes API server listening on https://127.0.0.1:")
        assert kubeconfig.stat().st_mode & 0o777 == 0o600
        yield kubeconfig
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            await proc.wait()
        assert proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_version_is_the_package_version(binary: Path) -> None:
    code, out, err = await run(str(binary), "--version")
    assert (code, out, err) == (0, f"portfwd, version {version('portfwd')}\n", "")


async def test_sandbox_forward_and_kubectl_plugin(binary: Path, tmp_path: Path) -> None:
    async with binary_sandbox(binary, tmp_path) as kubeconfig:
        out = await forward_moves_bytes(
            [str(binary), "forward", "--kubeconfig", str(kubeconfig), "svc/echo", ":80"]
        )
        assert "-> 9000" in out  # the named targetPort, resolved by the binary's engine
        if shutil.which("kubectl") is None:
            pytest.skip("kubectl is not installed")
        plugins = tmp_path / "plugins"
        plugins.mkdir()
        (plugins / "kubectl-portfwd").symlink_to(binary)
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        env["PATH"] = f"{plugins}{os.pathsep}{env['PATH']}"
        await forward_moves_bytes(["kubectl", "portfwd", "svc/echo", ":80", "-n", "demo"], env)


def test_dashboard_first_paint(binary: Path, tmux: Tmux, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "down.kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: down\n"
        "clusters: [{name: down, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "contexts: [{name: down, context: {cluster: down, user: u}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
    )
    kubeconfig.chmod(0o600)
    screen = dashboard_first_paint(
        tmux, [str(binary), "--kubeconfig", str(kubeconfig)], tmp_path / "config"
    )
    assert "down" in screen  # the header names the context


def test_demo_first_paint(binary: Path, tmux: Tmux, tmp_path: Path) -> None:
    screen = dashboard_first_paint(tmux, [str(binary), "demo"], tmp_path / "config")
    assert "sandbox" in screen


async def test_daemon_from_the_binary(binary: Path, tmp_path: Path) -> None:
    """`daemon --detach` re-runs the binary itself (no `-m portfwd`), the daemon keeps working
    after the starting process (and the copy it unpacked) is gone: `add` moves bytes through
    it, `ls` lists it, `daemon stop` ends it."""
    runtime = Path(tempfile.mkdtemp(prefix="pfb-", dir="/tmp"))  # a socket path is short
    try:
        async with binary_sandbox(binary, tmp_path) as kubeconfig:
            env = {
                **os.environ,
                "KUBECONFIG": str(kubeconfig),
                "PORTFWD_CONFIG_DIR": str(tmp_path / "config"),
                "PORTFWD_RUNTIME_DIR": str(runtime / "run"),
            }
            code, out, err = await run(str(binary), "daemon", "--detach", env=env, limit=60)
            assert (code, err) == (0, ""), out
            assert out.startswith("portfwd daemon started (pid ")
            try:
                code, out, err = await run(
                    *(str(binary), "add", "svc/echo", ":80", "-n", "demo"),
                    *("--name", "web", "--address", "127.0.0.1"),
                    env=env,
                    limit=60,
                )
                assert (code, err) == (0, ""), out
                line = r"^web\tsvc/echo 127\.0\.0\.1:(\d+)->80→9000\tactive$"
                match = re.search(line, out, re.M)
                assert match is not None, out
                payload = os.urandom(100_000)
                assert await echo(int(match.group(1)), payload) == payload
                code, out, err = await run(str(binary), "ls", env=env, limit=60)
                assert (code, err) == (0, "") and "web" in out
            finally:
                code, out, err = await run(str(binary), "daemon", "stop", env=env, limit=60)
            assert (code, err) == (0, ""), out
            code, out, _ = await run(str(binary), "daemon", "status", env=env, limit=60)
            assert code == 3 and "not running" in out
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
