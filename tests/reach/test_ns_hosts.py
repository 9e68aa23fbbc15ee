"""`portfwd ns --hosts-file`: one marked block, removed on exit, cleaned after a kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from portfwd.reach.hostsfile import BEGIN, END
from portfwd.sandbox.cluster import SandboxCluster
from tests.support.cli import PORTFWD

ORIGINAL = "127.0.0.1 localhost\n# a comment the user wrote\n10.0.0.1 db.internal\n"


async def _start(
    sandbox: SandboxCluster, hosts: Path, tmp_path: Path
) -> tuple[asyncio.subprocess.Process, list[str]]:
    env = dict(os.environ, PORTFWD_CONFIG_DIR=str(tmp_path / "config"))
    proc = await asyncio.create_subprocess_exec(
        *PORTFWD,
        "ns",
        "demo",
        "--kubeconfig",
        str(sandbox.kubeconfig_path),
        "--hosts-file",
        str(hosts),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(30):
        while not lines or not lines[-1].startswith("# hosts-file lines"):
            line = await proc.stdout.readline()
            assert line, "\n".join(lines)
            lines.append(line.decode().rstrip("\n"))
    return proc, lines


async def _end(proc: asyncio.subprocess.Process, sig: int) -> str:
    proc.send_signal(sig)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return out.decode()


async def test_hosts_block_added_removed_and_cleaned_after_kill(
    sandbox: SandboxCluster, tmp_path: Path
) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text(ORIGINAL)
    hosts.chmod(0o644)

    proc, _ = await _start(sandbox, hosts, tmp_path)
    text = hosts.read_text()
    assert text.startswith(ORIGINAL)  # nothing outside the block touched
    block = text[len(ORIGINAL) :]
    assert block.startswith(f"{BEGIN} (pid {proc.pid})") and block.endswith(f"{END}\n")
    assert " web web.demo web.demo.svc web.demo.svc.cluster.local" in block
    assert hosts.stat().st_mode & 0o777 == 0o644
    await _end(proc, signal.SIGTERM)
    assert proc.returncode == 0
    assert hosts.read_text() == ORIGINAL

    proc, _ = await _start(sandbox, hosts, tmp_path)
    await _end(proc, signal.SIGKILL)
    assert f"(pid {proc.pid})" in hosts.read_text()  # left behind by the crash

    proc, lines = await _start(sandbox, hosts, tmp_path)
    assert f"removed a stale portfwd block from {hosts}" in lines
    assert hosts.read_text().count(BEGIN) == 1
    await _end(proc, signal.SIGINT)
    assert hosts.read_text() == ORIGINAL


async def test_a_hosts_file_that_cannot_be_written_is_one_line(
    sandbox: SandboxCluster, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("")
    proc = await asyncio.create_subprocess_exec(
        *PORTFWD,
        "ns",
        "demo",
        "--kubeconfig",
        str(sandbox.kubeconfig_path),
        "--hosts-file",
        str(tmp_path / "file" / "hosts"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ, PORTFWD_CONFIG_DIR=str(tmp_path / "config")),
    )
    _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    lines = err.decode().splitlines()
    assert len(lines) == 1, lines
    (line,) = lines
    assert line.startswith(f"error: cannot read {tmp_path}/file/hosts: ")


async def test_unknown_context_is_one_line(sandbox: SandboxCluster, tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        *PORTFWD,
        "ns",
        "demo",
        "--kubeconfig",
        str(sandbox.kubeconfig_path),
        "--context",
        "nope",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ, PORTFWD_CONFIG_DIR=str(tmp_path / "config")),
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    lines = err.decode().splitlines()
    assert len(lines) == 1, lines
    (line,) = lines
    assert line.startswith("error: ") and "nope" in line
