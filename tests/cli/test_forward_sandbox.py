"""`portfwd forward` as a real subprocess against the sandbox cluster."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from portfwd.sandbox.cluster import SandboxCluster
from tests.support.cli import forward_process, run_cli


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _variant(sandbox: SandboxCluster, tmp_path: Path, name: str, change: Any) -> str:
    data = yaml.safe_load(sandbox.kubeconfig_path.read_text())
    change(data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o600)
    return str(path)


def _bad_tls(data: dict[str, Any]) -> None:
    data["clusters"][0]["cluster"]["tls-server-name"] = "wrong.example.invalid"


def _bad_token(data: dict[str, Any]) -> None:
    for user in data["users"]:
        if user["name"] == "admin":
            user["user"]["token"] = "not-a-valid-token"


async def test_cluster_side_failures_are_one_line(sandbox: SandboxCluster, tmp_path: Path) -> None:
    kc = str(sandbox.kubeconfig_path)
    cases: list[tuple[list[str], list[str]]] = [
        (
            ["--kubeconfig", _variant(sandbox, tmp_path, "tls", _bad_tls), "svc/echo", ":80"],
            ["cannot verify the TLS certificate", "Hostname mismatch"],
        ),
        (
            ["--kubeconfig", _variant(sandbox, tmp_path, "401", _bad_token), "svc/echo", ":80"],
            ['rejected the credentials of user "admin" (401 Unauthorized)'],
        ),
        (
            ["--kubeconfig", kc, "--context", "sandbox-viewer", "svc/echo", ":80"],
            [
                'user "viewer" may not port-forward to pod echo-',
                "(cannot get), SPDY (cannot create)",
            ],
        ),
        (
            ["--kubeconfig", kc, "--context", "sandbox-nobody", "svc/echo", ":80"],
            ['user "nobody" may not get services', "403 Forbidden"],
        ),
        (["--kubeconfig", kc, "-n", "nope", "svc/echo", ":80"], ['namespace "nope" not found']),
        (["--kubeconfig", kc, "svc/nope", ":80"], ['services "nope" not found']),
        (["--kubeconfig", kc, "pod/nope", ":80"], ['pods "nope" not found']),
        (["--kubeconfig", kc, "svc/external-db", ":5432"], ["svc/external-db has no selector"]),
        (["--kubeconfig", kc, "svc/crashy", ":80"], ["svc/crashy has no Ready pod"]),
        (["--kubeconfig", kc, "svc/web", ":81"], ["svc/web does not expose port 81"]),
        (
            ["--kubeconfig", kc, "pod/stuck-creating", ":8080"],
            ["pod stuck-creating is not running"],
        ),
        (["--kubeconfig", kc, "svc/dns", ":53"], ["UDP", "TCP only"]),
    ]
    results = await asyncio.gather(*(run_cli(*args) for args, _ in cases))
    for (args, needles), (code, out, err) in zip(cases, results, strict=True):
        assert code == 1, (args, out, err)
        assert out == "", (args, out)
        assert "Traceback" not in err, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, err)
        for needle in needles:
            assert needle in lines[0], (args, lines[0])


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
async def test_forward_prints_like_kubectl_and_stops_cleanly(
    sandbox: SandboxCluster, stop_signal: signal.Signals
) -> None:
    kc = str(sandbox.kubeconfig_path)
    args = ("--kubeconfig", kc, "svc/echo", ":80")
    hosts = ["127.0.0.1", "::1"] if _ipv6_loopback() else ["127.0.0.1"]
    async with forward_process(*args, expect_lines=len(hosts), stop_signal=stop_signal) as fp:
        assert [(h, r) for h, _, r in fp.forwarding] == [(h, 9000) for h in hosts]
        (port,) = fp.ports
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello through portfwd")
        assert await asyncio.wait_for(reader.readexactly(21), 10) == b"hello through portfwd"
        writer.close()
        assert await fp.next_line() == f"Handling connection for {port}"
    assert fp.returncode == 0
    assert "Traceback" not in fp.stderr_text
    if len(hosts) == 2:
        assert fp.stderr_text == ""


async def test_connection_error_text_goes_to_stderr(sandbox: SandboxCluster) -> None:
    kc = str(sandbox.kubeconfig_path)
    async with forward_process(
        "--kubeconfig", kc, "--address", "127.0.0.1", "pod/toolbox", ":7000", expect_lines=1
    ) as fp:
        await sandbox.set_backend_refusing("demo", "toolbox", 7000)
        (port,) = fp.ports
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        assert await fp.next_line() == f"Handling connection for {port}"
    assert fp.returncode == 0
    (line,) = fp.stderr_text.strip().splitlines()
    assert line.startswith(
        f"warning: an error occurred forwarding {port} -> 7000: "
        "error forwarding port 7000 to pod toolbox"
    )
    assert line.endswith("connect: connection refused")
