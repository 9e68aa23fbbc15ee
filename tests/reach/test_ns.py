"""`portfwd ns` against the sandbox: every Service at its own address and native port."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardState
from portfwd.reach.loopback import AddressTable, local_ports
from portfwd.reach.namespaces import NamespaceForwarder, Scope, Want
from portfwd.sandbox.cluster import SandboxCluster
from portfwd.sandbox.fleet import SandboxFleet
from portfwd.sandbox.topology import ServicePortSpec, ServiceSpec
from tests.support.wait import eventually


def _forwarder(
    manager: Manager, kubeconfig: Path, scopes: list[Scope], tmp_path: Path, lines: list[str]
) -> NamespaceForwarder:
    return NamespaceForwarder(
        manager,
        scopes,
        kubeconfig=str(kubeconfig),
        selector=None,
        exclude=[],
        table=AddressTable(tmp_path / "addresses.json"),
        port_start=0,  # the native ports, as root has them (the tests run as root)
        on_lines=lines.extend,
        on_warning=lines.append,
    )


async def _exchange(
    address: str, port: int, data: bytes, expect: int | None = None, *, tls: bool = False
) -> bytes:
    ctx: ssl.SSLContext | None = None
    if tls:  # the sandbox's own CA: the bytes matter here, not the certificate
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(address, port, ssl=ctx)
    try:
        writer.write(data)
        if expect is None:
            await writer.drain()
            if not tls:
                writer.write_eof()
            return await asyncio.wait_for(reader.read(), 10)
        return await asyncio.wait_for(reader.readexactly(expect), 10)
    finally:
        writer.close()


async def _check(want: Want, port: int, cluster: str = "sandbox") -> None:
    """The Service's own backend answers, byte-exact, at its address and port."""
    if want.service == "echo":
        payload = bytes(range(256)) * 64
        assert await _exchange(want.address, port, payload, len(payload)) == payload
    elif want.service in ("postgres", "redis"):
        got = await _exchange(want.address, port, b"hello\n", None)
        assert got.endswith(b" hello\n")
        if want.pod:
            assert got == want.pod.encode() + b" hello\n"
    else:  # HTTP backends
        got = await _exchange(
            want.address,
            port,
            b"GET /cluster HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            tls=want.port_name == "https",
        )
        assert got.startswith(b"HTTP/1.1 200") and got.endswith(f"{cluster}\n".encode())


async def _active(
    fwd: NamespaceForwarder,
    manager: Manager,
    want: Callable[[list[Want]], bool] = lambda active: True,
) -> list[Want]:
    """The forwards that are active once every one has left `starting` and `want(active)`
    holds (under load a forward with Ready pods may still be starting, or retrying once,
    when the Services are synced)."""
    await asyncio.wait_for(fwd.synced.wait(), 30)

    def active() -> list[Want]:
        return [
            w for w, fid in fwd.forwards.items() if manager.get(fid).state is ForwardState.ACTIVE
        ]

    try:
        await eventually(
            lambda: (
                all(
                    manager.get(f).state is not ForwardState.STARTING for f in fwd.forwards.values()
                )
                and want(active())
            ),
            limit=30,
        )
    except TimeoutError:
        states = {
            f"{w.context}/{w.namespace}/{w.service}/{w.pod}:{w.port}": (
                manager.get(f).state.value,
                manager.get(f).reason,
            )
            for w, f in fwd.forwards.items()
        }
        raise AssertionError(f"forwards not as wanted in 30 s: {states}") from None
    return active()


async def test_every_service_at_its_own_address_and_port(
    manager: Manager, sandbox: SandboxCluster, tmp_path: Path
) -> None:
    lines: list[str] = []
    fwd = _forwarder(
        manager,
        sandbox.kubeconfig_path,
        [Scope(None, "demo"), Scope(None, "data")],
        tmp_path,
        lines,
    )
    await fwd.start()
    try:
        expected = {
            ("demo", "echo", "", 80),
            ("demo", "web", "", 80),
            ("demo", "api", "", 443),
            ("demo", "api", "", 9090),
            ("data", "redis", "", 6379),
            ("data", "postgres", "", 5432),
            ("data", "postgres", "postgres-0", 5432),
            ("data", "postgres", "postgres-1", 5432),
        }
        active = await _active(
            fwd,
            manager,
            lambda act: {(w.namespace, w.service, w.pod, w.port) for w in act} >= expected,
        )
        assert not any(w.service in ("dns", "external-db") for w in fwd.forwards)  # UDP, no pods
        for want in active:
            assert want.local_port == want.port  # native port numbers
            assert ipaddress.IPv4Address(want.address) in ipaddress.IPv4Network("127.0.0.0/8")
            await _check(want, want.port)
        by_name: dict[tuple[str, str, str], str] = {}
        for want in fwd.forwards:
            by_name.setdefault((want.namespace, want.service, want.pod), want.address)
        assert len(set(by_name.values())) == len(by_name)  # one address per Service and pod
        assert any("web.demo" in line and ":80" in line for line in lines)
        assert any(
            line.startswith(by_name[("demo", "web", "")] + " web web.demo ") for line in lines
        )

        # Followed: a Service created, one deleted.
        sandbox._create_service(
            "demo",
            ServiceSpec("web2", {"app": "web"}, (ServicePortSpec(8081, 8080, "http"),)),
        )
        sandbox._sync("demo")
        await eventually(lambda: any(w.service == "web2" for w in fwd.forwards))
        (web2,) = [w for w in fwd.forwards if w.service == "web2"]
        await eventually(lambda: manager.get(fwd.forwards[web2]).state is ForwardState.ACTIVE)
        await _check(web2, 8081)
        await sandbox.delete_object("services", "demo", "echo")
        # The line is written once the forward is gone (its listener closed).
        await eventually(lambda: any(line.startswith("removed echo.demo") for line in lines))
        assert not any(w.service == "echo" for w in fwd.forwards)
        echo = next(w for w in active if w.service == "echo")
        with pytest.raises(OSError):
            await _exchange(echo.address, 80, b"x", 1)
        assert any(line.startswith("added web2.demo") for line in lines)
    finally:
        await fwd.close()
    assert manager.snapshot() == []


async def test_two_clusters_and_namespaces_without_collision(
    sandbox_pair: SandboxFleet, tmp_path: Path
) -> None:
    manager = Manager(kubeconfig=str(sandbox_pair.kubeconfig_path))
    lines: list[str] = []
    scopes = [Scope(c, ns) for c in ("sandbox", "sandbox-2") for ns in ("demo", "data")]
    fwd = _forwarder(manager, sandbox_pair.kubeconfig_path, scopes, tmp_path, lines)
    try:
        await fwd.start()
        active = await _active(
            fwd,
            manager,
            lambda act: {w.context for w in act if w.service == "web"} == {"sandbox", "sandbox-2"},
        )
        keys = {(w.context, w.namespace, w.service, w.pod) for w in fwd.forwards}
        addresses = {(w.context, w.namespace, w.service, w.pod): w.address for w in fwd.forwards}
        assert len(set(addresses.values())) == len(keys)
        webs = [w for w in active if w.service == "web"]
        assert {w.context for w in webs} == {"sandbox", "sandbox-2"}
        for want in webs:
            await _check(want, want.port, cluster=want.context)
        # The second cluster's names carry its context; the first's are the cluster DNS forms.
        text = "\n".join(lines)
        assert " web.demo.svc.sandbox-2" in text and " web.demo.svc.cluster.local " in text
    finally:
        await fwd.close()
        await asyncio.wait_for(manager.shutdown(), 20)
    # Stable: a new table from the same file gives every key the same address.
    again = AddressTable(tmp_path / "addresses.json")
    for (ctx, ns, svc, pod), address in addresses.items():
        assert again.address(ctx, ns, f"{pod}.{svc}" if pod else svc) == address


def test_privileged_ports_move_by_a_fixed_rule() -> None:
    assert local_ports([80, 443, 5432], 1024) == {80: 8080, 443: 8443, 5432: 5432}
    assert local_ports([80, 8080], 1024) == {80: 9080, 8080: 8080}
    assert local_ports([80, 443], 0) == {80: 80, 443: 443}


async def test_without_rights_to_low_ports_and_without_many_addresses(
    manager: Manager, sandbox: SandboxCluster, tmp_path: Path
) -> None:
    lines: list[str] = []
    fwd = _forwarder(manager, sandbox.kubeconfig_path, [Scope(None, "demo")], tmp_path, lines)
    fwd.port_start = 1024  # as for a user without CAP_NET_BIND_SERVICE
    await fwd.start()
    try:
        wanted = {("web", 80), ("api", 443), ("api", 9090)}
        found = await _active(
            fwd, manager, lambda act: {(w.service, w.port) for w in act} >= wanted
        )
        active = {(w.service, w.port): w for w in found}
        assert active[("web", 80)].local_port == 8080
        assert active[("api", 443)].local_port == 8443
        assert active[("api", 9090)].local_port == 9090
        for want in active.values():
            await _check(want, fwd.local_port(want))
        assert any("web.demo" in line and ":8080" in line for line in lines)
    finally:
        await fwd.close()

    # macOS and others: one address, a free port per Service port, the table says which.
    lines.clear()
    fwd = _forwarder(manager, sandbox.kubeconfig_path, [Scope(None, "demo")], tmp_path, lines)
    fwd.many_addresses = False
    await fwd.start()
    try:
        active_list = await _active(fwd, manager)
        ports = {fwd.local_port(w) for w in active_list}
        assert len(ports) == len(active_list) and 0 not in ports
        for want in active_list:
            assert want.address == "127.0.0.1"
            await _check(want, fwd.local_port(want))
            assert any(f"127.0.0.1:{fwd.local_port(want)}" in line for line in lines)
        assert not any(line.startswith("# hosts-file") for line in lines)
    finally:
        await fwd.close()
