"""The real dashboard attached to a real daemon, in a real terminal (issue 11).

Start a sandbox API server and `portfwd daemon --detach`; open `portfwd` in tmux (the header
says it is attached); add svc/echo through the picker; quit (detach); `portfwd ls` shows the
forward active and bytes still flow; attach again and find it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_tmux import EXIT_MARK, Tmux, echo_roundtrip, row_with, tmux  # noqa: F401
from tests.support import cli
from tests.support.cli import PORTFWD
from tests.support.ports import reserved_port

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A sandbox API server process, and the environment of a user whose daemon runs on it."""
    runtime = Path(tempfile.mkdtemp(prefix="pft-", dir="/tmp"))
    kubeconfig = tmp_path / "sandbox.kubeconfig"
    env = {
        **os.environ,
        "PORTFWD_CONFIG_DIR": str(tmp_path / "config"),
        "PORTFWD_RUNTIME_DIR": str(runtime / "run"),
        "KUBECONFIG": str(kubeconfig),
    }
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    sandbox = subprocess.Popen(
        [*PORTFWD, "sandbox", "--kubeconfig-out", str(kubeconfig)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not kubeconfig.exists() or not kubeconfig.read_text().strip():
            assert sandbox.poll() is None and time.monotonic() < deadline, "no sandbox"
            time.sleep(0.05)
        started = portfwd(env, "daemon", "--detach")
        assert started.returncode == 0, started.stderr
        yield env
    finally:
        portfwd(env, "daemon", "stop")
        sandbox.terminate()
        sandbox.wait(20)
        shutil.rmtree(runtime, ignore_errors=True)


def portfwd(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return cli.portfwd(*args, env=env)


def dashboard_command(env: dict[str, str]) -> str:
    keep = ("PORTFWD_CONFIG_DIR", "PORTFWD_RUNTIME_DIR", "KUBECONFIG")
    assigns = " ".join(f"{k}={shlex.quote(env[k])}" for k in keep)
    return f"env -u COLUMNS -u LINES {assigns} {shlex.quote(sys.executable)} -m portfwd"


def test_attach_add_detach_ls_and_attach_again(tmux: Tmux, world: dict[str, str]) -> None:  # noqa: F811
    command = dashboard_command(world)
    port = reserved_port()
    tmux.start("one", command)
    tmux.wait_for("one", lambda s: "attached to the daemon" in s, "the attached header")
    tmux.wait_for("one", lambda s: "No forwards yet" in s, "the empty dashboard")
    tmux.keys("one", "n")
    tmux.wait_for("one", lambda s: "contexts selectable" in s, "contexts")
    tmux.keys("one", "Enter")
    tmux.wait_for("one", lambda s: "namespaces selectable" in s, "namespaces")
    tmux.type("one", "demo")
    tmux.wait_for("one", lambda s: row_with(s, "demo") is not None, "namespace demo")
    tmux.keys("one", "Enter")
    tmux.wait_for("one", lambda s: "3/6  Kind" in s and "kinds selectable" in s, "kinds")
    tmux.keys("one", "Enter")  # service
    tmux.wait_for("one", lambda s: "services selectable" in s, "services")
    tmux.type("one", "echo")
    tmux.wait_for("one", lambda s: row_with(s, "echo", "ClusterIP") is not None, "svc/echo")
    tmux.keys("one", "Enter")  # one TCP port: no port step (issue 18)
    tmux.wait_for(
        "one", lambda s: "6/6  Local port" in s and " is free" in s, "the local port step"
    )
    tmux.keys("one", "C-u")
    tmux.wait_for("one", lambda s: "enter a local port" in s, "the emptied local port")
    tmux.type("one", str(port))
    tmux.wait_for("one", lambda s: f":{port} is free" in s, "the port check")
    tmux.keys("one", "Enter")
    tmux.wait_for(
        "one",
        lambda s: row_with(s, "● active", "svc/echo", f":{port}") is not None,
        "the new forward active",
    )
    tmux.keys("one", "q")
    tmux.wait_for("one", lambda s: f"{EXIT_MARK}0" in s, "a clean detach")

    # Detached: the daemon still runs the forward.
    listed = portfwd(world, "ls", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    (forward,) = json.loads(listed.stdout)["forwards"]
    assert forward["state"] == "active" and forward["local_port"] == port
    table = portfwd(world, "ls").stdout
    assert row_with(table, "active", "svc/echo", f":{port}->80") is not None, table
    assert echo_roundtrip(port, b"after detach") == b"after detach"

    tmux.start("two", command)
    tmux.wait_for(
        "two",
        lambda s: (
            "attached to the daemon" in s
            and row_with(s, "● active", "svc/echo", f":{port}") is not None
        ),
        "the forward, attached again",
    )
    assert echo_roundtrip(port, b"attached again") == b"attached again"
    tmux.keys("two", "q")
    tmux.wait_for("two", lambda s: f"{EXIT_MARK}0" in s, "a clean detach")
    assert portfwd(world, "ls", "-o", "json").returncode == 0
