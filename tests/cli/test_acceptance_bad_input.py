"""Acceptance: issue 2's "Bad input" cases that the other CLI tests only simulate.

The suite runs as root, where binding a low port and reading a mode-0 file both succeed, so
the existing tests monkeypatch the socket layer or skip. Here the real `portfwd forward`
process runs as root *without* the capability in question (setpriv drops it from the
bounding set), so the kernel itself refuses, exactly as for an ordinary user.

Also: "nothing half-started" when only one of several ports is bad.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from portfwd.sandbox.cluster import SandboxCluster
from tests.support.cli import PORTFWD, run_cli

pytestmark = pytest.mark.timeout(60)


def _setpriv_dropping(*caps: str) -> list[str]:
    """argv prefix running the rest as root minus `caps`; skips when that is impossible."""
    if os.geteuid() != 0:
        pytest.skip("needs root (the test drops capabilities from root)")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) not installed")
    prefix = [setpriv, "--bounding-set", ",".join(f"-{c}" for c in caps)]
    probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=10, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot drop capabilities here: {probe.stderr.decode().strip()}")
    return prefix


def _free_privileged_port() -> int:
    for port in range(1023, 0, -1):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port below 1024")


def _run_forward(prefix: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, *PORTFWD, "forward", *args],
        capture_output=True,
        text=True,
        timeout=45,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_privileged_port_refused_by_the_kernel() -> None:
    prefix = _setpriv_dropping("net_bind_service")
    port = _free_privileged_port()
    line = _one_error_line(_run_forward(prefix, "svc/web", f"{port}:80"))
    assert line == (
        f"error: binding port {port} needs root or CAP_NET_BIND_SERVICE; pick a port above 1023"
    )


def test_kubeconfig_the_user_may_not_read(tmp_path: Path) -> None:
    prefix = _setpriv_dropping("dac_override", "dac_read_search")
    config = tmp_path / "config"
    config.write_text("apiVersion: v1\nkind: Config\n")
    config.chmod(0)
    line = _one_error_line(_run_forward(prefix, "--kubeconfig", str(config), "svc/web", ":80"))
    assert line == f"error: cannot read kubeconfig {config}: permission denied; fix its permissions"


async def test_one_bad_port_of_several_starts_nothing(sandbox: SandboxCluster) -> None:
    """The first port is fine, the second is not exposed: no `Forwarding from` line at all."""
    kc = str(sandbox.kubeconfig_path)
    code, out, err = await run_cli("--kubeconfig", kc, "svc/echo", ":80", ":81")
    assert (code, out) == (1, "")
    assert err.strip() == "error: svc/echo does not expose port 81; its ports: 80/TCP (tcp)"


async def test_second_local_port_in_use_starts_nothing(sandbox: SandboxCluster) -> None:
    """The first local port is free, the second is taken: nothing listens afterwards, and the
    first port was never announced."""
    kc = str(sandbox.kubeconfig_path)
    with socket.socket() as free, socket.socket() as held:
        free.bind(("127.0.0.1", 0))
        first = free.getsockname()[1]
        free.close()
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        args = ("--kubeconfig", kc, "--address", "127.0.0.1", "svc/echo")
        code, out, err = await run_cli(*args, f"{first}:80", f"{taken}:80")
    assert (code, out) == (1, "")
    assert err.strip().startswith(f"error: local port {taken} is already in use on 127.0.0.1")
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", first)) != 0
