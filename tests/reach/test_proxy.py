"""`portfwd proxy` against two sandbox clusters: curl through SOCKS5 and HTTP, by name."""

from __future__ import annotations

import asyncio
import os

from .conftest import Proxy, curl, socks_open


async def test_curl_by_name_through_socks5h_and_http_connect(proxy: Proxy) -> None:
    for via in (
        ["--proxy", f"socks5h://{proxy.where}"],
        ["-p", "--proxy", f"http://{proxy.where}"],
    ):
        code, out = await curl(*via, "http://web.demo/")
        assert code == 0 and out.startswith("hello from web-"), out
        code, out = await curl(*via, "http://web.demo.svc.sandbox-2/cluster")
        assert (code, out) == (0, "sandbox-2\n")
        code, out = await curl(*via, "http://web.demo.svc.cluster.local/cluster")
        assert (code, out) == (0, "sandbox\n")
    # plain HTTP through the proxy
    code, out = await curl("--proxy", f"http://{proxy.where}", "http://api.demo:9090/cluster")
    assert (code, out) == (0, "sandbox\n")
    # *.localhost: no proxy settings at all
    code, out = await curl(f"http://web.demo.localhost:{proxy.server.port}/cluster")
    assert (code, out) == (0, "sandbox\n")


async def connect_open(
    where: str, host: str, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """An HTTP CONNECT tunnel by name."""
    address, _, proxy_port = where.rpartition(":")
    reader, writer = await asyncio.open_connection(address, int(proxy_port))
    writer.write(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200 "), head
    return reader, writer


async def test_echo_byte_exact_through_both(proxy: Proxy) -> None:
    """echo speaks no HTTP (curl cannot end its request), so raw bytes, both ways."""
    for opener in (socks_open, connect_open):
        reader, writer = await opener(proxy.where, "echo.demo.svc.cluster.local", 80)
        payload = os.urandom(300_000)
        writer.write(payload)
        assert await asyncio.wait_for(reader.readexactly(len(payload)), 20) == payload
        writer.close()


async def test_headless_pod_by_name(proxy: Proxy) -> None:
    for pod, opener in (("postgres-0", socks_open), ("postgres-1", connect_open)):
        reader, writer = await opener(proxy.where, f"{pod}.postgres.data", 5432)
        writer.write(b"ping\n")
        assert await asyncio.wait_for(reader.readline(), 10) == f"{pod} ping\n".encode()
        writer.close()


async def test_non_cluster_names_are_refused(proxy: Proxy) -> None:
    code, out = await curl("--proxy", f"socks5h://{proxy.where}", "http://example.com/")
    assert code == 97 and "(2)" in out  # SOCKS5: connection not allowed by ruleset
    code, out = await curl("-i", "--proxy", f"http://{proxy.where}", "http://example.com/")
    assert out.startswith("HTTP/1.1 403 ") and "not a cluster name" in out
    code, out = await curl("-p", "--proxy", f"http://{proxy.where}", "https://example.com/")
    assert code != 0 and "403" in out
    code, out = await curl("--proxy", f"socks5h://{proxy.where}", "http://nope.demo/")
    assert code == 97 and "(4)" in out  # host unreachable: no such Service
    code, out = await curl("--proxy", f"socks5://{proxy.where}", "http://127.0.0.1/")
    assert code == 97 and "(2)" in out  # an IP address names no Service
    assert sum("example.com" in line for line in proxy.log) == 3  # one line per request
    # A malformed request costs one line, and the proxy keeps serving.
    host, _, port = proxy.where.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    assert (await asyncio.wait_for(reader.read(), 10)) == b""
    writer.close()
    code, out = await curl("--proxy", f"socks5h://{proxy.where}", "http://web.demo/cluster")
    assert (code, out) == (0, "sandbox\n")
    assert any("bad request" in line for line in proxy.log)


async def test_concurrent_connections_share_one_session_per_pod(proxy: Proxy) -> None:
    first = proxy.fleet[0]
    _, writer = await socks_open(proxy.where, "echo.demo", 80)  # sessions opened
    writer.close()
    pods = len(first.pod_names("demo", {"app": "echo"}))
    before = first.portforward_requests

    async def one(i: int) -> None:
        payload = os.urandom(16 * 1024 + i)
        reader, writer = await socks_open(proxy.where, "echo.demo", 80)
        try:
            writer.write(payload)
            got = await asyncio.wait_for(reader.readexactly(len(payload)), 30)
        finally:
            writer.close()
        assert got == payload

    await asyncio.gather(*(one(i) for i in range(200)))
    # 200 connections spread over the echo pods, on the sessions already open to them (at
    # most one more per pod if the first connection found only one of them).
    assert first.portforward_requests - before <= pods - 1
    assert proxy.server.served == 201


async def test_pac_file_sends_only_cluster_names(proxy: Proxy) -> None:
    code, text = await curl(f"http://{proxy.where}/proxy.pac")
    assert code == 0 and "function FindProxyForURL" in text
    assert f"PROXY {proxy.where}" in text and "demo" in text
