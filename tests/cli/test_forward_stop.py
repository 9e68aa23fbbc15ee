"""Ctrl-C counts while a forward is still starting, even after another one has failed."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import yaml
from aiohttp import web

from tests.support.cli import PORTFWD

FORBIDDEN = {
    "kind": "Status",
    "apiVersion": "v1",
    "status": "Failure",
    "message": 'pods "web" is forbidden: User "u" cannot get resource "pods" in API group ""',
    "reason": "Forbidden",
    "code": 403,
}


async def test_ctrl_c_while_one_forward_is_still_starting(tmp_path: Path) -> None:
    """The first GET fails at once (that forward is in ERROR), the second never answers (that
    one stays starting): SIGINT must end the command with exit 0, not wait for the second."""
    requests = 0
    second = asyncio.Event()
    release = asyncio.Event()

    async def get_pod(request: web.Request) -> web.StreamResponse:
        nonlocal requests
        requests += 1
        if requests == 1:
            return web.json_response(FORBIDDEN, status=403)
        second.set()
        await release.wait()
        return web.json_response(FORBIDDEN, status=403)

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}", get_pod)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    proc: asyncio.subprocess.Process | None = None
    try:
        port = runner.addresses[0][1]
        kubeconfig = tmp_path / "config"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                    "users": [{"name": "u", "user": {"token": "t0ken"}}],
                    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                    "current-context": "x",
                }
            )
        )
        proc = await asyncio.create_subprocess_exec(
            *PORTFWD,
            "forward",
            "--kubeconfig",
            str(kubeconfig),
            "pod/web",
            ":80",
            ":81",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
        )
        async with asyncio.timeout(30):
            await second.wait()
        await asyncio.sleep(0.5)  # let the first forward's 403 land (not a threshold)
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            out, err = await proc.communicate()
        assert (proc.returncode, out.decode(), err.decode()) == (0, "", "")
    finally:
        release.set()
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await runner.cleanup()
