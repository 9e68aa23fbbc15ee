"""Several sandbox clusters at once: each its own API server, CA, tokens and pods, one
kubeconfig for all; a portfwd Manager forwards into both and one going away leaves the other
moving bytes."""

from __future__ import annotations

import asyncio
import shutil
import ssl
from pathlib import Path

import pytest
import yaml

from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState
from portfwd.sandbox.cluster import SandboxCluster
from portfwd.sandbox.fleet import SandboxFleet, fleet_cluster_name
from portfwd.sandbox.kubeconfig import merge_kubeconfigs

from ..engine.conftest import eventually

LOOPBACK = "127.0.0.1"


async def _api_get(cluster: SandboxCluster, ca: bytes, token: str) -> tuple[int, str]:
    """GET /api on `cluster`, trusting only `ca`: (status, the server certificate's CN)."""
    ctx = ssl.create_default_context(cadata=ca.decode())
    async with asyncio.timeout(15):
        reader, writer = await asyncio.open_connection(
            cluster.host, cluster.port, ssl=ctx, server_hostname="localhost"
        )
        try:
            peer = writer.get_extra_info("peercert")
            writer.write(
                f"GET /api HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            status_line = await reader.readline()
        finally:
            writer.close()
    cn = dict(x[0] for x in peer["subject"])["commonName"]
    return int(status_line.split()[1]), cn


async def _http_get(port: int, path: str) -> bytes:
    """One HTTP/1.1 GET through a local forward; the response body."""
    async with asyncio.timeout(15):
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            response = await reader.read()
        finally:
            writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK"), head
    return body


async def _echo(port: int, data: bytes) -> bytes:
    async with asyncio.timeout(15):
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        try:
            writer.write(data)
            writer.write_eof()
            return await reader.read()
        finally:
            writer.close()


def test_cluster_names() -> None:
    assert [fleet_cluster_name(i) for i in range(3)] == ["sandbox", "sandbox-2", "sandbox-3"]
    with pytest.raises(ValueError, match="1 to 16"):
        SandboxFleet(0)
    with pytest.raises(ValueError, match="share a name"):
        merge_kubeconfigs([{"current-context": "a", "clusters": [{"name": "x"}], "users": [],
                            "contexts": []}] * 2)  # fmt: skip


async def test_each_cluster_has_its_own_ca_tokens_and_contexts(
    sandbox_pair: SandboxFleet,
) -> None:
    one, two = sandbox_pair
    assert one.port != two.port
    assert one.pki is not None and two.pki is not None
    assert one.pki.ca.cert_pem != two.pki.ca.cert_pem
    # Each answers with its own CA: trusted with its own, refused with the other's.
    assert await _api_get(one, one.pki.ca.cert_pem, one.tokens.admin) == (
        200,
        "portfwd-sandbox-apiserver",
    )
    assert await _api_get(two, two.pki.ca.cert_pem, two.tokens.admin) == (
        200,
        "portfwd-sandbox-2-apiserver",
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        await _api_get(two, one.pki.ca.cert_pem, two.tokens.admin)
    # Its own tokens: the first cluster's admin is nobody on the second.
    assert (await _api_get(two, two.pki.ca.cert_pem, one.tokens.admin))[0] == 401

    cfg = yaml.safe_load(sandbox_pair.kubeconfig_path.read_text())
    assert sandbox_pair.kubeconfig_path.stat().st_mode & 0o777 == 0o600
    assert cfg["current-context"] == "sandbox"
    contexts = {c["name"]: c["context"] for c in cfg["contexts"]}
    for name in ("sandbox", "sandbox-2"):
        for suffix in ("", "-cert", "-viewer", "-pf-create", "-pf-get", "-limited", "-nobody"):
            assert name + suffix in contexts
    assert contexts["sandbox"]["user"] == "admin"
    assert contexts["sandbox-2"]["user"] == "admin@sandbox-2"
    servers = {c["name"]: c["cluster"]["server"] for c in cfg["clusters"]}
    assert servers == {"portfwd-sandbox": one.url, "portfwd-sandbox-2": two.url}
    assert sandbox_pair.contexts == ["sandbox", "sandbox-2"]
    assert sandbox_pair.cluster("sandbox-2") is two


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH")
async def test_kubectl_reads_each_cluster_from_one_kubeconfig(sandbox_pair: SandboxFleet) -> None:
    one, two = sandbox_pair

    async def kubectl(*args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            "kubectl",
            "--kubeconfig",
            str(sandbox_pair.kubeconfig_path),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        return out.decode()

    names: dict[str, set[str]] = {}
    for ctx in ("sandbox", "sandbox-2"):
        out = await kubectl("--context", ctx, "get", "pods", "-n", "demo", "-o", "name")
        names[ctx] = {line.removeprefix("pod/") for line in out.split()}
    assert names["sandbox"] == set(one.pod_names("demo"))
    assert names["sandbox-2"] == set(two.pod_names("demo"))
    assert names["sandbox"] != names["sandbox-2"]  # replica set pods: random suffixes
    listed = (await kubectl("config", "get-contexts", "-o", "name")).split()
    assert {"sandbox", "sandbox-viewer", "sandbox-2", "sandbox-2-viewer"} <= set(listed)


@pytest.mark.timeout(180)
async def test_one_manager_forwards_into_both_and_one_cluster_down_spares_the_other(
    sandbox_pair: SandboxFleet,
) -> None:
    two = sandbox_pair[1]
    mgr = Manager(kubeconfig=str(sandbox_pair.kubeconfig_path))
    try:
        web = {
            ctx: await mgr.add(ForwardSpec(target="svc/web", remote_port=80, context=ctx))
            for ctx in ("sandbox", "sandbox-2")
        }
        echo = {
            ctx: await mgr.add(ForwardSpec(target="svc/echo", remote_port="tcp", context=ctx))
            for ctx in ("sandbox", "sandbox-2")
        }
        for fid in (*web.values(), *echo.values()):
            assert mgr.get(fid).state is ForwardState.ACTIVE, mgr.get(fid).reason
        port = {fid: mgr.get(fid).local_port for fid in (*web.values(), *echo.values())}

        # Bytes from each cluster, and each from its own.
        assert await _http_get(port[web["sandbox"]], "/cluster") == b"sandbox\n"
        assert await _http_get(port[web["sandbox-2"]], "/cluster") == b"sandbox-2\n"
        for ctx, fid in echo.items():
            payload = f"through {ctx} ".encode() * 1000
            assert await _echo(port[fid], payload) == payload

        # The second cluster's API server goes away: only its forwards notice.
        await two.stop_api()
        try:
            await eventually(
                lambda: all(
                    mgr.get(f).state is not ForwardState.ACTIVE
                    for f in (web["sandbox-2"], echo["sandbox-2"])
                ),
                30,
            )
            for ctx_fid in (web["sandbox-2"], echo["sandbox-2"]):
                assert mgr.get(ctx_fid).state is ForwardState.RECONNECTING
            for _ in range(3):  # the first cluster's keep moving bytes meanwhile
                assert await _http_get(port[web["sandbox"]], "/cluster") == b"sandbox\n"
                assert await _echo(port[echo["sandbox"]], b"still here") == b"still here"
                assert mgr.get(web["sandbox"]).state is ForwardState.ACTIVE
                assert mgr.get(echo["sandbox"]).state is ForwardState.ACTIVE
        finally:
            await two.start_api()

        # Back on the same port; the second cluster's forwards recover by themselves.
        assert two.pki is not None
        assert (await _api_get(two, two.pki.ca.cert_pem, two.tokens.admin))[0] == 200
        await eventually(
            lambda: all(
                mgr.get(f).state is ForwardState.ACTIVE
                for f in (web["sandbox-2"], echo["sandbox-2"])
            ),
            60,
        )
        assert mgr.get(web["sandbox-2"]).local_port == port[web["sandbox-2"]]
        assert await _http_get(port[web["sandbox-2"]], "/cluster") == b"sandbox-2\n"
        assert await _echo(port[echo["sandbox-2"]], b"back") == b"back"
    finally:
        await asyncio.wait_for(mgr.shutdown(), 10)


async def test_a_fleet_of_one_is_one_cluster_with_its_kubeconfig(tmp_path: Path) -> None:
    target = tmp_path / "kc"
    async with SandboxFleet(1, kubeconfig_path=target) as fleet:
        assert fleet.kubeconfig_path == target == fleet[0].kubeconfig_path
        cfg = yaml.safe_load(target.read_text())
        assert [c["name"] for c in cfg["clusters"]] == ["portfwd-sandbox"]


async def test_a_cluster_that_cannot_start_stops_the_others() -> None:
    import socket

    busy = socket.socket()
    try:
        for _ in range(50):  # a free port P with P + 1 held here: the second cluster's
            with socket.socket() as probe:
                probe.bind((LOOPBACK, 0))
                first = probe.getsockname()[1]
            try:
                busy.bind((LOOPBACK, first + 1))
                break
            except OSError:
                continue
        busy.listen()
        fleet = SandboxFleet(2, port=first)
        with pytest.raises(OSError):
            await fleet.start()
        # The first cluster had started: it is stopped again, its port free.
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(LOOPBACK, first)
    finally:
        busy.close()


async def test_the_demo_seed_forwards_into_both_clusters(sandbox_pair: SandboxFleet) -> None:
    from dataclasses import replace

    from portfwd.demo import DEMO_SECOND_CONTEXT, demo_seed, second_cluster_seed

    first = demo_seed()
    second = second_cluster_seed(taken=[s.local_port for s in first])
    assert {s.context for s in second} == {DEMO_SECOND_CONTEXT} == {sandbox_pair[1].name}
    assert not {s.local_port for s in second} & {s.local_port for s in first}
    mgr = Manager(kubeconfig=str(sandbox_pair.kubeconfig_path))
    try:
        fids = {s.target: await mgr.add(replace(s, local_port=0)) for s in second}  # port 0
        for fid in fids.values():
            assert mgr.get(fid).state is ForwardState.ACTIVE, mgr.get(fid).reason
        assert await _http_get(mgr.get(fids["deploy/web"]).local_port, "/cluster") == (
            b"sandbox-2\n"
        )
        assert await _echo(mgr.get(fids["svc/echo"]).local_port, b"two") == b"two"
    finally:
        await asyncio.wait_for(mgr.shutdown(), 10)


async def test_a_fleet_in_a_given_workdir_gives_each_cluster_its_own(tmp_path: Path) -> None:
    async with SandboxFleet(2, workdir=tmp_path, kubeconfig_path=tmp_path / "kc") as fleet:
        cas = [(tmp_path / name / "ca.crt").read_bytes() for name in ("sandbox", "sandbox-2")]
        assert cas[0] != cas[1]
        assert [c.ca_path.parent for c in fleet] == [tmp_path / "sandbox", tmp_path / "sandbox-2"]
        cfg = yaml.safe_load((tmp_path / "kc").read_text())
        assert [c["name"] for c in cfg["clusters"]] == ["portfwd-sandbox", "portfwd-sandbox-2"]
