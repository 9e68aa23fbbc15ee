"""`portfwd sandbox` runs in the foreground, prints how to use it, and exits 0 on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import yaml


@contextlib.asynccontextmanager
async def _running_sandbox(*args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """`portfwd sandbox ARGS` until it says it is ready: (the process, what it printed)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "portfwd",
        "sandbox",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []

        async def read_until_ready() -> None:
            while True:
                line = (await proc.stdout.readline()).decode()  # type: ignore[union-attr]
                assert line, "portfwd sandbox exited early"
                lines.append(line)
                if "Ctrl-C" in line:
                    return

        await asyncio.wait_for(read_until_ready(), 60)
        yield proc, "".join(lines)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def test_portfwd_sandbox_command(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "sandbox.kubeconfig"
    async with _running_sandbox("--kubeconfig-out", str(kubeconfig)) as (proc, text):
        assert f"export KUBECONFIG={kubeconfig}" in text
        assert "portfwd forward svc/echo 8080:80" in text
        cfg = yaml.safe_load(kubeconfig.read_text())
        assert cfg["current-context"] == "sandbox"
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 30)
        assert rc == 0


async def test_portfwd_sandbox_bad_topology(tmp_path: Path) -> None:
    bad = tmp_path / "topo.yaml"
    bad.write_text("namespaces:\n  - name: x\n    deployments:\n      - replicas: 2\n")
    code, err = await _sandbox_fails("--topology", str(bad))
    assert code == 1
    assert err.strip().splitlines() == ["error: namespaces[0].deployments[0]: missing 'name'"]


async def test_portfwd_sandbox_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err = await _sandbox_fails("--port", str(port))
    assert code == 1
    assert err.strip() == (
        f"error: port {port} on 127.0.0.1 is already in use: pick another with --port "
        "(0 picks a free one)"
    )


async def _sandbox_fails(*args: str) -> tuple[int | None, str]:
    """Run `portfwd sandbox ARGS` expecting it to fail at start: (exit code, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "portfwd",
        "sandbox",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode, err.decode()


async def test_portfwd_sandbox_unwritable_kubeconfig_names_the_path(tmp_path: Path) -> None:
    parent = tmp_path / "a-file"
    parent.write_text("not a directory")
    target = parent / "sandbox.kubeconfig"
    code, err = await _sandbox_fails("--kubeconfig-out", str(target))
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0] == (
        f"error: cannot write the kubeconfig to {target}: File exists ({parent}); "
        "choose another path with --kubeconfig-out"
    )


async def test_portfwd_sandbox_two_clusters_one_kubeconfig(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "two.kubeconfig"
    args = ("--clusters", "2", "--kubeconfig-out", str(kubeconfig))
    async with _running_sandbox(*args) as (proc, text):
        cfg = yaml.safe_load(kubeconfig.read_text())
        servers = {c["name"]: c["cluster"]["server"] for c in cfg["clusters"]}
        assert set(servers) == {"portfwd-sandbox", "portfwd-sandbox-2"}
        assert servers["portfwd-sandbox"] != servers["portfwd-sandbox-2"]
        for url in servers.values():  # each cluster's URL is printed
            assert url in text
        assert "contexts: sandbox-2 (admin), sandbox-2-cert" in text
        assert f"export KUBECONFIG={kubeconfig}" in text
        assert "--context sandbox-2" in text
        assert cfg["current-context"] == "sandbox"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0


async def test_portfwd_sandbox_clusters_out_of_range() -> None:
    code, err = await _sandbox_fails("--clusters", "0")
    assert code == 2
    assert "--clusters" in err and "0" in err
