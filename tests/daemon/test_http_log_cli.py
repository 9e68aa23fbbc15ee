"""The request log from the command line: `portfwd forward --http-log` prints one line per
request on stderr (stdout stays kubectl's), and `portfwd logs --http` prints only those lines
of a daemon's forward."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
import yaml

from portfwd.sandbox.cluster import SandboxCluster
from tests.support.cli import PORTFWD
from tests.support.wait import until

from .conftest import Dirs, daemon_process
from .test_cli import active, portfwd

pytestmark = pytest.mark.timeout(120)


async def test_forward_prints_the_request_log_on_stderr(sandbox: SandboxCluster) -> None:
    proc = await asyncio.create_subprocess_exec(
        *PORTFWD,
        *("forward", "--kubeconfig", str(sandbox.kubeconfig_path), "--address", "127.0.0.1"),
        *("--http-log", "svc/web", ":80"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ),
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("Forwarding from 127.0.0.1:"), line
        port = int(line.split(":")[1].split()[0])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(-1), 30)).endswith(b"\r\n\r\nok\n")
        writer.close()
        logged = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        assert " GET /healthz -> 200, 3 B in " in logged and logged.startswith("127.0.0.1:")
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    assert b"GET /healthz" not in out  # stdout stays kubectl's lines


async def test_logs_http_prints_only_the_request_log(dirs: Dirs, sandbox: SandboxCluster) -> None:
    dirs.config.mkdir(parents=True, exist_ok=True, mode=0o700)
    state = {
        "version": 1,
        "forwards": [
            {
                "id": "web00001",
                "name": "web",
                "target": "svc/web",
                "remote_port": 80,
                "local_port": 0,
                "addresses": ["127.0.0.1"],
                "namespace": "demo",
                "context": "sandbox",
                "kubeconfig": str(sandbox.kubeconfig_path),
                "http_log": True,
                "running": True,
            }
        ],
    }
    (dirs.config / "state.yaml").write_text(yaml.safe_dump(state))
    (dirs.config / "state.yaml").chmod(0o600)
    async with daemon_process(dirs, "--kubeconfig", str(sandbox.kubeconfig_path)):
        port = (await active("web"))["bound"][0][1]
        for path in (b"/", b"/missing"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
            await asyncio.wait_for(reader.read(-1), 30)
            writer.close()

        async def both_logged() -> list[str] | None:
            ran = await portfwd("logs", "--http", "web")
            assert ran.code == 0, ran.err
            lines = ran.out.splitlines()
            return lines if len(lines) == 2 else None

        lines = await until(both_logged, limit=30)
        assert " GET / -> 200, " in lines[0] and " GET /missing -> 404, 19 B in " in lines[1]
        everything = await portfwd("logs", "web")
        assert "Handling connection" in everything.out  # the full log has more


async def test_add_with_http_log(dirs: Dirs, sandbox: SandboxCluster) -> None:
    async with daemon_process(dirs, "--kubeconfig", str(sandbox.kubeconfig_path)):
        added = await portfwd("add", "--name", "web", "--http-log", "svc/web", ":80")
        assert added.code == 0, added.err
        port = (await active("web"))["bound"][0][1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /cluster HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
        await asyncio.wait_for(reader.read(-1), 30)
        writer.close()

        async def logged() -> list[str] | None:
            ran = await portfwd("logs", "--http", "web")
            return ran.out.splitlines() or None

        (line,) = await until(logged, limit=30)
        assert " GET /cluster -> 200, 8 B in " in line
