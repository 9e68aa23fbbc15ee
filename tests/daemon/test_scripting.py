"""The script-facing commands against a real `portfwd daemon` and the sandbox: `run` through
the daemon (its forwards gone afterwards), `wait`, `add -o json`, `up -o json` and
`--ports-file`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from portfwd.sandbox.cluster import SandboxCluster
from tests.support.cli import PORTFWD
from tests.support.wait import eventually

from .conftest import DaemonProcess, Dirs
from .test_cli import add_echo, echo_through, forwards, portfwd, running  # noqa: F401
from .test_up import _write_profiles

pytestmark = pytest.mark.timeout(120)

NO_DAEMON, NOT_FOUND, NOT_READY = 3, 4, 124

# While it runs, the command lists the daemon's forwards and sends bytes through its own.
LIST_AND_ECHO = """
import json, os, socket, subprocess, sys
ls = subprocess.run([sys.executable, "-m", "portfwd", "ls", "-o", "json"], capture_output=True,
                    text=True, check=True)
print(ls.stdout, flush=True)
with socket.create_connection(("127.0.0.1", int(os.environ["PORTFWD_ECHO_PORT"]))) as s:
    s.sendall(b"ping")
    assert s.recv(4) == b"ping"
sys.exit(3)
"""


async def test_run_uses_the_daemon_and_removes_its_forwards_after(
    running: DaemonProcess,  # noqa: F811
) -> None:
    ran = await portfwd(
        "run", "-n", "demo", "--address", "127.0.0.1", "svc/echo", ":80", "--",
        sys.executable, "-c", LIST_AND_ECHO,
    )  # fmt: skip
    assert ran.code == 3, ran
    during = json.loads(ran.out)["forwards"]
    assert [(f["spec"]["target"], f["state"]) for f in during] == [("svc/echo", "active")]
    assert await forwards() == [], "run's forward stayed in the daemon"


def _only(doc: dict[str, Any]) -> dict[str, Any]:
    [entry] = doc["forwards"]
    assert isinstance(entry, dict)
    return entry


async def test_add_prints_what_was_bound_as_json_and_writes_the_ports_file(
    running: DaemonProcess,  # noqa: F811
    tmp_path: Path,
) -> None:
    ports_file = tmp_path / "ports.json"
    add = await portfwd(*add_echo("--name", "web", "-o", "json", "--ports-file", str(ports_file)))
    assert add.code == 0, add
    printed = json.loads(add.out)
    assert json.loads(ports_file.read_text()) == printed
    assert ports_file.stat().st_mode & 0o777 == 0o600
    entry = _only(printed)
    assert (entry["name"], entry["target"], entry["remote_port"], entry["host"]) == (
        "web", "svc/echo", 80, "127.0.0.1",
    )  # fmt: skip
    assert entry["address"] == f"127.0.0.1:{entry['port']}"
    assert entry["addresses"] == [{"host": "127.0.0.1", "port": entry["port"]}]
    await echo_through(entry["port"])


async def test_up_prints_what_the_daemon_bound(
    running: DaemonProcess,  # noqa: F811
    dirs: Dirs,
    sandbox: SandboxCluster,
    tmp_path: Path,
) -> None:
    _write_profiles(dirs, sandbox.kubeconfig_path)
    ports_file = tmp_path / "up.json"
    up = await portfwd("up", "pair", "-o", "json", "--ports-file", str(ports_file))
    assert up.code == 0, up
    printed = json.loads(up.out)
    assert json.loads(ports_file.read_text()) == printed
    by_name = {e["name"]: e for e in printed["forwards"]}
    assert sorted(by_name) == ["echo", "echo-deploy"]
    for entry in by_name.values():
        await echo_through(entry["port"])
    again = await portfwd("up", "pair", "-o", "json")  # already there: the same ports
    assert again.code == 0, again
    assert {e["name"]: e["port"] for e in json.loads(again.out)["forwards"]} == {
        name: e["port"] for name, e in by_name.items()
    }


async def test_up_json_needs_the_daemon(dirs: Dirs, sandbox: SandboxCluster) -> None:
    _write_profiles(dirs, sandbox.kubeconfig_path)
    up = await portfwd("up", "pair", "--here", "-o", "json")
    assert up.code == 2, up
    assert "use --ports-file FILE" in up.one_error()


async def test_wait(running: DaemonProcess) -> None:  # noqa: F811
    add = await portfwd(*add_echo("--name", "w", "--no-start"))
    assert add.code == 0, add

    stopped = await portfwd("wait", "w", "--timeout", "30s")
    assert stopped.code == NOT_READY, stopped
    assert stopped.one_error() == "error: w: not ready: stopped"

    missing = await portfwd("wait", "w", "nope")
    assert missing.code == NOT_FOUND, missing
    assert "no forward has the name or id 'nope'" in missing.one_error()

    start = await portfwd("start", "w")
    assert start.code == 0, start
    waited = await portfwd("wait", "w", "-o", "json")
    assert waited.code == 0, waited
    entry = _only(json.loads(waited.out))
    assert (entry["name"], entry["state"]) == ("w", "active")
    await echo_through(entry["port"])

    crashy = await portfwd("add", "-n", "demo", "--name", "c", "--no-start", "svc/crashy", ":80")
    assert crashy.code == 0, crashy
    # started by hand with reconnect: it waits for a Ready pod that never comes
    assert (await portfwd("start", "c")).code in (0, 1)
    late = await portfwd("wait", "c", "--timeout", "1s", "--for", "active")
    assert late.code == NOT_READY, late
    assert late.one_error().startswith("error: c: not ready after 1s: "), late.err


async def test_wait_without_a_daemon(dirs: Dirs) -> None:
    waited = await portfwd("wait", "x")
    assert waited.code == NO_DAEMON, waited


async def test_up_here_writes_the_ports_file_once_started(
    dirs: Dirs, sandbox: SandboxCluster, tmp_path: Path
) -> None:
    _write_profiles(dirs, sandbox.kubeconfig_path)
    ports_file = tmp_path / "here.json"
    proc = await asyncio.create_subprocess_exec(
        *PORTFWD, "up", "pair", "--here", "--ports-file", str(ports_file),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await eventually(ports_file.exists, limit=60)
        by_name = {e["name"]: e for e in json.loads(ports_file.read_text())["forwards"]}
        assert sorted(by_name) == ["echo", "echo-deploy"]
        for entry in by_name.values():
            await echo_through(entry["port"])
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(30):
                await proc.wait()
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    assert proc.returncode == 0
