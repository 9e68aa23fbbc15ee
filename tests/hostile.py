"""Hostile text and the servers that send it, for the terminal-injection tests (issue 8, item 2).

Each hostile string carries what an attacker would send (OSC 52 sets the clipboard, CSI 2J
clears the screen, BEL, a newline that forges a line, bidi and zero-width characters) plus a
marker after each sequence, so a test can tell the attacker's bytes from the terminal
program's own escape sequences.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import yaml
from aiohttp import web

OSC52 = "\x1b]52;c;SElKQUNLRUQ=\x07"  # "HIJACKED" to the clipboard
CLEAR = "\x1b[2JZZ"
HOSTILE_MESSAGE = f'pods "web" is forbidden: {OSC52}{CLEAR}\nerror: forged line\u202egnp.exe'
# A pod name no real API server allows: only a hostile (or broken) one sends it.
HOSTILE_POD = f"evil-{OSC52}{CLEAR}"

# Raw bytes that must never reach the terminal from these strings.
RAW = (b"\x1b]52;c;", b"\x07", b"\x1b[2JZZ", "\u202e".encode())
# What the escaped text looks like on screen.
SHOWN_OSC52 = rb"\x1b]52;c;SElKQUNLRUQ=\x07"
SHOWN_CLEAR = rb"\x1b[2JZZ"


# Textual's own sequences that end in BEL: OSC 22 sets the mouse pointer's shape.
_TEXTUAL_OSC = re.compile(rb"\x1b\]22;[a-z-]*\x07")


def raw_found(output: bytes) -> list[bytes]:
    """The hostile sequences found raw in what the terminal received (none: good)."""
    ours_removed = _TEXTUAL_OSC.sub(b"", output)
    return [seq for seq in RAW if seq in ours_removed]


@contextlib.asynccontextmanager
async def forbidding_api(directory: Path) -> AsyncIterator[Path]:
    """A loopback 'API server' that answers every request with a 403 Status whose message is
    HOSTILE_MESSAGE; yields a kubeconfig (mode 0600) pointing at it."""

    async def forbid(request: web.Request) -> web.Response:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": HOSTILE_MESSAGE,
            "reason": "Forbidden",
            "details": {"name": "web", "kind": "services"},
            "code": 403,
        }
        return web.Response(status=403, text=json.dumps(body), content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forbid)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    kc = directory / "hostile.kubeconfig"
    kc.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "hostile",
                "clusters": [{"name": "h", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "contexts": [
                    {"name": "hostile", "context": {"cluster": "h", "user": "u", "namespace": "d"}}
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        )
    )
    kc.chmod(0o600)
    try:
        yield kc
    finally:
        await runner.cleanup()


def hostile_topology() -> dict[str, object]:
    """One namespace: svc/evil selects one Running pod named HOSTILE_POD whose port 9999 has
    nothing listening, so every connection fails with the kubelet's error-channel text (which
    quotes the pod name)."""
    return {
        "namespaces": [
            {
                "name": "demo",
                "pods": [
                    {
                        "name": HOSTILE_POD,
                        "labels": {"app": "evil"},
                        "ports": [{"containerPort": 9999}],
                    }
                ],
                "services": [
                    {
                        "name": "evil",
                        "selector": {"app": "evil"},
                        "ports": [{"name": "tcp", "port": 80, "targetPort": 9999}],
                    }
                ],
            }
        ]
    }
