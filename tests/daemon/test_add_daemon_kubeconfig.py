"""`portfwd add` without --kubeconfig (and no $KUBECONFIG) uses the daemon's own kubeconfig,
`portfwd daemon --kubeconfig F`, and the current context of that file: not this shell's
default file, which may not exist or may point at another cluster."""

from __future__ import annotations

import asyncio
from pathlib import Path

from .conftest import InProcessDaemon
from .test_cli import portfwd


async def test_add_uses_the_daemons_kubeconfig(daemon: InProcessDaemon, tmp_path: Path) -> None:
    home = tmp_path / "home"  # no ~/.kube/config here
    home.mkdir()
    env = {"HOME": str(home), "KUBECONFIG": ""}
    added = await portfwd("add", "-n", "demo", "--name", "dk", "svc/echo", ":80", env=env)
    assert added.code == 0, added.err
    snap = next(s for s in daemon.manager.snapshot() if s.spec.name == "dk")
    assert snap.spec.kubeconfig == str(daemon.sandbox.kubeconfig_path)
    assert snap.spec.context == "sandbox"
    reader, writer = await asyncio.open_connection("127.0.0.1", snap.local_port)
    writer.write(b"ping")
    assert await asyncio.wait_for(reader.readexactly(4), 10) == b"ping"
    writer.close()
