"""Completion of the daemon's commands: `portfwd stop|start|restart|rm|logs <TAB>` offers the
running daemon's forwards (names, ids of unnamed ones), nothing without a daemon; `portfwd
add` completes like `forward`; `portfwd doctor` says whether a daemon runs. Through Click's
protocol in a subprocess (what the shells' scripts run), nothing ever on stderr."""

from __future__ import annotations

import json
import os

import pytest

from portfwd.daemon.paths import daemon_paths
from portfwd.sandbox.cluster import SandboxCluster
from tests.support.cli import portfwd_async

from .conftest import Dirs, InProcessDaemon

pytestmark = pytest.mark.timeout(120)


async def complete(line: str, env: dict[str, str] | None = None) -> list[str]:
    words = line.split(" ")
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith("_PORTFWD")},
        **(env or {}),
        "_PORTFWD_COMPLETE": "bash_complete",
        "COMP_WORDS": line,
        "COMP_CWORD": str(len(words) - 1),
    }
    code, out, err = await portfwd_async(env=environ, limit=60)
    assert (code, err) == (0, "")
    return [entry.split(",", 1)[1] for entry in out.splitlines() if entry]


async def test_forward_names_and_ids_from_the_running_daemon(daemon: InProcessDaemon) -> None:
    web = await daemon.manager.add(daemon.spec(name="web"), start=False)
    db = await daemon.manager.add(daemon.spec(name="db"), start=False)
    unnamed = await daemon.manager.add(daemon.spec(remote=81), start=False)
    for command in ("stop", "start", "restart", "rm", "logs"):
        assert await complete(f"portfwd {command} ") == ["web", "db", unnamed], command
    assert await complete("portfwd stop w") == ["web"]
    # Names already on the line are not offered again.
    assert await complete("portfwd rm web ") == ["db", unnamed]
    # An id is accepted too: offered when no name matches what is typed.
    assert await complete(f"portfwd stop {web[:3]}") == [web]
    assert await complete(f"portfwd logs {db}") == [db]
    assert await complete("portfwd stop zzz") == []


async def test_no_daemon_no_forwards_and_no_noise(dirs: Dirs) -> None:
    assert not daemon_paths().socket.exists()
    for command in ("stop", "start", "restart", "rm", "logs"):
        assert await complete(f"portfwd {command} ") == []
    assert await complete("portfwd daemon ") == ["install", "status", "stop", "uninstall"]
    commands = await complete("portfwd ")
    assert {"ls", "add", "start", "stop", "restart", "rm", "logs", "daemon"} <= set(commands)


async def test_add_completes_like_forward(daemon: InProcessDaemon) -> None:
    env = {"KUBECONFIG": str(daemon.sandbox.kubeconfig_path)}
    assert "svc/echo" in await complete("portfwd add -n demo svc/", env)
    assert "demo" in await complete("portfwd add -n ", env)
    assert "sandbox-viewer" in await complete("portfwd add --context sandbox-v", env)
    ports = await complete("portfwd add -n demo svc/echo ", env)
    assert "80" in ports


async def test_doctor_reports_the_daemon(daemon: InProcessDaemon) -> None:
    await daemon.manager.add(daemon.spec(name="web"), start=False)
    kubeconfig = str(daemon.sandbox.kubeconfig_path)
    doctor = ("doctor", "--kubeconfig", kubeconfig, "-o", "json")
    code, out, err = await portfwd_async(*doctor, limit=60)
    assert (code, err) == (0, "")
    (check,) = [c for c in json.loads(out)["checks"] if c["name"] == "daemon"]
    assert check["status"] == "ok"
    assert check["details"]["running"] is True
    assert check["details"]["pid"] == os.getpid()
    assert "1 forwards" in check["summary"] and str(daemon.paths.socket) in check["summary"]


async def test_doctor_without_a_daemon(dirs: Dirs, sandbox: SandboxCluster) -> None:
    doctor = ("doctor", "--kubeconfig", str(sandbox.kubeconfig_path))
    code, out, err = await portfwd_async(*doctor, limit=60)
    assert (code, err) == (0, "")  # no daemon is not a problem
    (line,) = [x for x in out.splitlines() if x.startswith("✓ daemon")]
    assert "not running" in line and "portfwd daemon --detach" in line


async def _doctor_daemon_check(kubeconfig: str) -> tuple[int, dict[str, object], str]:
    doctor = ("doctor", "--kubeconfig", kubeconfig, "-o", "json")
    code, out, err = await portfwd_async(*doctor, limit=60)
    assert err == ""
    (check,) = [c for c in json.loads(out)["checks"] if c["name"] == "daemon"]
    return code, check, out


async def test_doctor_flags_a_daemon_that_holds_its_lock_but_does_not_answer(
    dirs: Dirs, sandbox: SandboxCluster
) -> None:
    from portfwd.daemon.lock import DaemonLock
    from portfwd.daemon.paths import ensure_private_dir

    paths = daemon_paths()
    ensure_private_dir(paths.directory)
    lock = DaemonLock(paths)
    lock.acquire()  # this test process "is" the daemon; no socket answers
    try:
        code, check, _ = await _doctor_daemon_check(str(sandbox.kubeconfig_path))
    finally:
        lock.release()
    assert code == 1
    assert check["status"] == "fail"
    assert f"a daemon (pid {os.getpid()}) holds" in str(check["summary"])
    assert f"kill {os.getpid()}" in str(check["fix"])


async def test_doctor_warns_of_a_daemon_of_another_version(
    daemon: InProcessDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("portfwd.daemon.server.__version__", "0.0.1-old")
    code, check, _ = await _doctor_daemon_check(str(daemon.sandbox.kubeconfig_path))
    assert code == 0  # it works; restarting it is advice
    assert check["status"] == "warn"
    assert "portfwd 0.0.1-old" in str(check["summary"])
    assert "portfwd daemon stop" in str(check["fix"])
