"""The dashboard on its own engine process (daemon/private.py): it shows the forwards that
process runs, and exits with code 1 when that process dies under it."""

from __future__ import annotations

import os
import signal

import pytest

from portfwd.daemon.private import PrivateEngine
from portfwd.engine.catalog import KubeCatalog
from portfwd.engine.clients import ClientPool
from portfwd.engine.model import ForwardSpec, ForwardState
from portfwd.sandbox.cluster import SandboxCluster
from tests.tui.conftest import RecordingApp
from tests.tui.helpers import settle, wait_until

pytestmark = pytest.mark.timeout(90)


async def test_the_dashboard_exits_when_its_engine_process_dies(sandbox: SandboxCluster) -> None:
    kubeconfig = str(sandbox.kubeconfig_path)
    engine = await PrivateEngine.open(kubeconfig=kubeconfig, ping_interval=30.0)
    clients = ClientPool(kubeconfig)
    try:
        app = RecordingApp(
            engine,
            catalog=KubeCatalog(clients, kubeconfig=kubeconfig),
            session=None,
            context="sandbox",
            cluster="sandbox",
            namespace="demo",
        )
        async with app.run_test(size=(160, 40)) as pilot:
            fid = await engine.add(ForwardSpec(target="svc/echo", remote_port="tcp"))
            await wait_until(
                pilot,
                lambda: "active" in str(app.dashboard.table.get_row(fid)[0]),
                what="the forward on screen",
            )
            assert engine.get(fid).state is ForwardState.ACTIVE
            await settle(pilot)
            assert engine.pid is not None
            os.kill(engine.pid, signal.SIGKILL)
            await wait_until(pilot, lambda: not app.is_running, what="the app to exit")
        assert app.return_code == 1 and app.daemon_lost
    finally:
        await engine.shutdown()
        await clients.close()
