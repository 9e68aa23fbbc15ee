"""Hardening (issue 8, item 2): `portfwd forward` never writes hostile bytes to the terminal.

An API server's 403 message holding `ESC]52;c;...BEL ESC[2J` set the clipboard and cleared the
screen from the `error:` line. Here the real command runs on a pseudo-terminal against a hostile
API (a 403 with that message) and against the sandbox serving a pod whose name holds it, which
the kubelet's error-channel text then quotes. The terminal must receive no ESC and no BEL at
all (this command writes plain lines), and the text must still be readable, escaped.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from portfwd.sandbox.cluster import SandboxCluster
from tests.hostile import (
    HOSTILE_POD,
    SHOWN_CLEAR,
    SHOWN_OSC52,
    forbidding_api,
    hostile_topology,
)
from tests.ptyrun import PtyProcess
from tests.support.cli import PORTFWD

pytestmark = pytest.mark.timeout(90)


def _env(tmp_path: Path) -> dict[str, str]:
    return {"HOME": str(tmp_path / "home"), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def _forward(tmp_path: Path, *args: str) -> PtyProcess:
    return PtyProcess([*PORTFWD, "forward", *args], env=_env(tmp_path))


async def test_a_hostile_403_message_reaches_the_terminal_escaped(tmp_path: Path) -> None:
    async with forbidding_api(tmp_path) as kc:
        with _forward(tmp_path, "--kubeconfig", str(kc), "svc/web", ":80") as term:
            out = await asyncio.to_thread(term.read_to_end, 60)
    assert term.proc.returncode == 1
    assert b"\x1b" not in out and b"\x07" not in out
    lines = out.decode().replace("\r\n", "\n").strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert SHOWN_OSC52.decode() in lines[0] and SHOWN_CLEAR.decode() in lines[0]
    assert "forged line\\u202egnp.exe" in lines[0]  # one line, and no bidi flip


async def test_a_hostile_pod_name_and_error_channel_text_reach_the_terminal_escaped(
    tmp_path: Path,
) -> None:
    cluster = SandboxCluster(hostile_topology())
    await asyncio.wait_for(cluster.start(), 30)
    try:
        kc = str(cluster.kubeconfig_path)
        with _forward(tmp_path, "--kubeconfig", kc, "-n", "demo", "svc/evil", ":80") as term:
            out = await asyncio.to_thread(term.read_until, lambda b: b"Forwarding from" in b)
            port = int(out.split(b"Forwarding from 127.0.0.1:")[1].split(b" ")[0])
            # A connection: the pod's port refuses, the kubelet's text names the pod.
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                conn.sendall(b"hello")
            await asyncio.to_thread(
                term.read_until,
                lambda b: b"error forwarding port 9999" in b,
                30,
                "the kubelet text",
            )
            term.send(b"\x03")  # Ctrl-C: exit 0
            out = await asyncio.to_thread(term.read_to_end, 30)
    finally:
        await asyncio.wait_for(cluster.stop(), 30)
    assert b"\x1b" not in out and b"\x07" not in out
    text = out.decode()
    line = next(x for x in text.splitlines() if "error forwarding port 9999" in x)
    assert HOSTILE_POD not in line  # the raw name never shows
    assert SHOWN_OSC52.decode() in line and SHOWN_CLEAR.decode() in line
