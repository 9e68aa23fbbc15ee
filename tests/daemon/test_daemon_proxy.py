"""The proxy as a setting of the daemon (`portfwd daemon --proxy ADDR:PORT --proxy-pac`):
served by the daemon's engine, reported by `portfwd daemon status` and in the hello an
attached dashboard shows in its header."""

from __future__ import annotations

import asyncio
import json
import os
import socket

import pytest

from portfwd.daemon.client import RemoteEngine
from portfwd.daemon.server import DaemonServer
from portfwd.engine.catalog import KubeCatalog
from portfwd.engine.clients import ClientPool
from portfwd.engine.manager import Manager
from portfwd.reach.daemon_proxy import DaemonProxy
from portfwd.sandbox.cluster import SandboxCluster
from tests.support.curl import curl
from tests.tui.conftest import RecordingApp
from tests.tui.helpers import settle

from .conftest import Dirs, daemon_process
from .test_cli import portfwd

pytestmark = pytest.mark.timeout(120)


async def test_the_daemon_serves_the_proxy_and_says_where(
    dirs: Dirs, sandbox: SandboxCluster
) -> None:
    kubeconfig = str(sandbox.kubeconfig_path)
    args = ("--kubeconfig", kubeconfig, "--proxy", "127.0.0.1:0", "--proxy-pac")
    async with daemon_process(dirs, *args) as running:
        status = await portfwd("daemon", "status", "-o", "json")
        assert status.code == 0, status.err
        proxy = json.loads(status.out)["proxy"]
        where = proxy["listen"]
        assert where.startswith("127.0.0.1:") and not where.endswith(":0")
        assert proxy["pac"] == f"http://{where}/proxy.pac" and proxy["contexts"] == ["sandbox"]
        text = await portfwd("daemon", "status")
        assert f"  proxy:    {where} (SOCKS5 and HTTP; sandbox), PAC http://{where}" in text.out

        code, body = await curl("--proxy", f"socks5h://{where}", "http://web.demo/cluster")
        assert (code, body) == (0, "sandbox\n")
        code, body = await curl("-p", "--proxy", f"http://{where}", "http://web.demo/cluster")
        assert (code, body) == (0, "sandbox\n")  # HTTP CONNECT
        code, body = await curl("--proxy", f"socks5h://{where}", "http://example.com/")
        assert code != 0  # not a cluster name: no open relay
        code, pac = await curl(f"http://{where}/proxy.pac")
        assert code == 0 and "FindProxyForURL" in pac and f"PROXY {where}" in pac
        assert await running.stop() == 0
    log = (dirs.config / "daemon.log").read_text()
    assert f"proxy (SOCKS5 and HTTP) on {where}" in log


async def test_a_proxy_port_in_use_stops_the_start_with_one_line(
    dirs: Dirs, sandbox: SandboxCluster
) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTFWD_")}
        result = await portfwd(
            "daemon",
            "--kubeconfig",
            str(sandbox.kubeconfig_path),
            "--proxy",
            f"127.0.0.1:{port}",
            env={**env, **dirs.env},
        )
    assert result.code == 1
    assert str(port) in result.one_error()
    assert not dirs.paths.socket.exists()  # it never listened


async def test_the_proxy_listens_on_loopback_only(dirs: Dirs) -> None:
    result = await portfwd("daemon", "--proxy", "0.0.0.0:1080")
    assert result.code == 2
    assert "the daemon's proxy listens on a loopback address only" in result.err


async def test_an_attached_dashboard_shows_the_proxy_in_its_header(
    dirs: Dirs, sandbox: SandboxCluster
) -> None:
    kubeconfig = str(sandbox.kubeconfig_path)
    manager = Manager(kubeconfig=kubeconfig, detect_wake=False)
    proxy = DaemonProxy("127.0.0.1", 0, pac=False)
    server = DaemonServer(manager, None, dirs.paths, companions=[proxy])
    await server.start()
    try:
        remote = await RemoteEngine.attach(dirs.paths, client="dashboard")
        clients = ClientPool(kubeconfig)
        app = RecordingApp(
            remote,
            catalog=KubeCatalog(clients, kubeconfig=kubeconfig),
            session=None,
            context="sandbox",
            cluster="sandbox",
            namespace="demo",
            daemon=remote.server,
        )
        try:
            async with app.run_test(size=(160, 40)) as pilot:
                await settle(pilot)
                assert f"proxy {proxy.where}" in app.sub_title
                assert "proxy" not in app.sub_title.split(f"proxy {proxy.where}")[1]
        finally:
            await remote.shutdown()
            await clients.close()
        assert proxy.server is not None and proxy.server.port != 0
    finally:
        await asyncio.wait_for(server.close(), 30)
    assert proxy.server is None  # closed with the daemon
