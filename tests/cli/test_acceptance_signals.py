"""Acceptance: `portfwd forward` "runs until Ctrl-C or SIGTERM, and exits 0 with no traceback
and nothing left open" (issue 2 §8) -- with connections still open and busy at that moment.

test_forward_sandbox.py stops the process after its only connection has closed; a user hits
Ctrl-C while a client is still connected, which is the case that hangs or prints tracebacks.
"""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from portfwd.sandbox.cluster import SandboxCluster
from tests.support.cli import forward_process

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
async def test_signal_with_open_busy_connections(
    sandbox: SandboxCluster, stop_signal: signal.Signals
) -> None:
    kc = str(sandbox.kubeconfig_path)
    args = ("--kubeconfig", kc, "--address", "127.0.0.1", "svc/echo", ":80")
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        async with forward_process(*args, expect_lines=1, stop_signal=stop_signal) as fp:
            (port,) = fp.ports
            for _ in range(5):
                conns.append(await asyncio.open_connection("127.0.0.1", port))
            for reader, writer in conns:
                block = os.urandom(1000)
                writer.write(block)
                assert await asyncio.wait_for(reader.readexactly(1000), 20) == block
            assert sandbox.backends.open_connections() >= 5
            # Leave unanswered bytes in flight on every connection when the signal comes.
            for _, writer in conns:
                writer.write(os.urandom(256 * 1024))
        # forward_process sent the signal and waited for the exit.
        assert fp.returncode == 0, fp.stderr_text
        assert "Traceback" not in fp.stderr_text
        assert fp.stderr_text == ""
        for reader, _ in conns:  # every client is disconnected (EOF or reset), none hangs
            try:
                while await asyncio.wait_for(reader.read(65536), 20):
                    pass
            except ConnectionResetError:
                pass
        # Nothing left open on the cluster side either.
        assert await sandbox.wait_for(lambda: sandbox.backends.open_connections() == 0, 20), (
            sandbox.backends.open_connections()
        )
    finally:
        for _, writer in conns:
            writer.close()
