"""Issue 10: one context waiting for its exec-plugin login never holds up another context's
forwards (each context has its own client and credentials)."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

from portfwd.engine.model import ForwardSpec, ForwardState
from portfwd.kube.config import load_connection
from tests.engine.conftest import eventually
from tests.kube.test_config_kit import b64, write

from .conftest import LOOPBACK, ManagerFactory, SandboxFactory, close_writer

PLUGIN = textwrap.dedent(
    """\
    import json, pathlib, sys, time
    started, release, token = sys.argv[1:4]
    pathlib.Path(started).write_text("waiting")
    while not pathlib.Path(release).exists():  # a user who has not logged in yet
        time.sleep(0.05)
    print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1",
                      "kind": "ExecCredential", "status": {"token": token}}))
    """
)


async def _echo(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        writer.write(payload)
        await writer.drain()
        async with asyncio.timeout(20):
            return await reader.readexactly(len(payload))
    finally:
        await close_writer(writer)


async def test_a_context_waiting_for_its_login_does_not_hold_up_another(
    make_sandbox: SandboxFactory, make_manager: ManagerFactory, tmp_path: Path
) -> None:
    sandbox = await make_sandbox()
    admin = await asyncio.to_thread(load_connection, str(sandbox.kubeconfig_path), "sandbox")
    token = (await admin.auth.get()).token
    assert token is not None and admin.ca_pem is not None
    plugin = write(tmp_path / "login.py", PLUGIN)
    started, release = tmp_path / "started", tmp_path / "release"
    kubeconfig = write(
        tmp_path / "kubeconfig",
        f"""apiVersion: v1
kind: Config
current-context: fast
clusters:
- name: s
  cluster: {{server: "{admin.server}", certificate-authority-data: {b64(admin.ca_pem)}}}
contexts:
- {{name: fast, context: {{cluster: s, user: t}}}}
- {{name: slow, context: {{cluster: s, user: e}}}}
users:
- name: t
  user: {{token: "{token}"}}
- name: e
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: {sys.executable}
      args: [{plugin}, {started}, {release}, "{token}"]
      interactiveMode: Never
""",
    )
    kubeconfig.chmod(0o600)
    mgr = make_manager(kubeconfig=str(kubeconfig), detect_wake=False)
    slow = asyncio.create_task(
        mgr.add(ForwardSpec("svc/echo", 80, namespace="demo", context="slow"), start=True)
    )
    try:
        await eventually(started.exists, limit=30)  # the slow context's plugin runs, waits
        fid = await asyncio.wait_for(
            mgr.add(ForwardSpec("svc/echo", 80, namespace="demo", context="fast"), start=True), 30
        )
        fast = mgr.get(fid)
        assert fast.state is ForwardState.ACTIVE, fast.reason
        assert await _echo(fast.local_port, b"not held up" * 100) == b"not held up" * 100
        assert not slow.done(), "the slow context's forward still waits for its login"
        release.write_text("logged in")
        slow_fid = await asyncio.wait_for(slow, 30)
        assert mgr.get(slow_fid).state is ForwardState.ACTIVE, mgr.get(slow_fid).reason
    finally:
        release.write_text("done")
        if not slow.done():
            slow.cancel()
        await asyncio.gather(slow, return_exceptions=True)
