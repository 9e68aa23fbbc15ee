"""Hardening (issue 8, item 10): the sandbox answers bad requests like a real API server and
logs one line for each, nothing more.

- One 1000-port WebSocket upgrade whose client vanished logged 1,978 warning lines.
- Malformed HTTP logged full aiohttp tracebacks.
- `?limit=abc&timeoutSeconds=1e309&watch=maybe` answered 200. A real API server converts the
  query with apimachinery (`Convert_Slice_string_To_int64` and friends: `strconv.ParseInt`
  texts, 400 BadRequest), and reads `watch=maybe` as true (only "0" and "false" are false).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import pytest
import yaml

from portfwd.sandbox.cluster import SandboxCluster
from tests.sandbox.helpers import call, ssl_ctx

pytestmark = pytest.mark.timeout(60)

PODS = "/api/v1/namespaces/demo/pods"


def admin_token(sandbox: SandboxCluster) -> str:
    kc = yaml.safe_load(sandbox.kubeconfig_path.read_text())
    return str(next(u["user"]["token"] for u in kc["users"] if u["user"].get("token")))


class Said(logging.Handler):
    """Sets `event` when a record containing `needle` is logged."""

    def __init__(self, needle: str) -> None:
        super().__init__()
        self.needle = needle
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.needle in record.getMessage():
            self.event.set()


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


def bad_status(message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "BadRequest",
        "code": 400,
    }


@pytest.mark.parametrize(
    ("query", "message"),
    [
        # timeoutSeconds is converted before limit (ListOptions' field order).
        ("limit=abc&timeoutSeconds=1e309&watch=maybe", 'parsing "1e309": invalid syntax'),
        ("limit=abc", 'parsing "abc": invalid syntax'),
        ("limit=", 'parsing "": invalid syntax'),
        ("limit=1.5", 'parsing "1.5": invalid syntax'),
        ("limit=99999999999999999999", 'parsing "99999999999999999999": value out of range'),
        ("timeoutSeconds=1e309", 'parsing "1e309": invalid syntax'),
        ("watch=1&timeoutSeconds=ten", 'parsing "ten": invalid syntax'),
    ],
)
async def test_unparsable_numbers_are_400_with_the_api_servers_words(
    sandbox: SandboxCluster, query: str, message: str
) -> None:
    status, body = await call(sandbox, "GET", f"{PODS}?{query}", admin_token(sandbox))
    assert (status, body) == (400, bad_status(f"strconv.ParseInt: {message}"))


async def test_an_unparsable_resource_version_on_a_list_is_400(sandbox: SandboxCluster) -> None:
    status, body = await call(sandbox, "GET", f"{PODS}?resourceVersion=abc", admin_token(sandbox))
    assert (status, body) == (
        400,
        bad_status(
            'invalid resource version: resourceVersion: Invalid value: "abc": '
            'strconv.ParseUint: parsing "abc": invalid syntax'
        ),
    )


@pytest.mark.parametrize("query", ["limit=-1", "limit=%2B2", "limit=0", "resourceVersion=0"])
async def test_numbers_go_accepts_are_accepted(sandbox: SandboxCluster, query: str) -> None:
    status, body = await call(sandbox, "GET", f"{PODS}?{query}", admin_token(sandbox))
    assert status == 200 and body["kind"] == "PodList"


@pytest.mark.parametrize(("value", "watches"), [("maybe", True), ("", True), ("FALSE", False)])
async def test_watch_is_true_unless_0_or_false(
    sandbox: SandboxCluster, value: str, watches: bool
) -> None:
    """`watch=maybe` is a watch on a real API server: a stream of events, not a PodList."""
    headers = {"Authorization": f"Bearer {admin_token(sandbox)}"}
    url = f"{sandbox.url}{PODS}?watch={value}&timeoutSeconds=1"
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s,
        s.get(url, ssl=ssl_ctx(sandbox), headers=headers) as r,
    ):
        assert r.status == 200
        text = await r.text()  # the watch ends after timeoutSeconds
    first = json.loads(text.splitlines()[0])
    if watches:
        assert first["type"] == "ADDED" and first["object"]["kind"] == "Pod"
    else:
        assert first["kind"] == "PodList"


async def test_each_bad_api_request_is_one_log_line(
    sandbox: SandboxCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = admin_token(sandbox)
    for query in ("limit=abc", "timeoutSeconds=\x1b[2J", "resourceVersion=x"):
        status, _ = await call(sandbox, "GET", f"{PODS}?{query}", token)
        assert status == 400
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/merge-patch+json"}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s,
        s.patch(
            f"{sandbox.url}/api/v1/namespaces/demo/services/web",
            data=b"[" * 100_000 + b"]" * 100_000,  # JSON nested beyond the parser's recursion
            headers=headers,
            ssl=ssl_ctx(sandbox),
        ) as r,
    ):
        assert r.status == 400
    lines = [r.getMessage() for r in warnings(caplog)]
    assert len(lines) == 4, lines
    assert all("\n" not in line and "\x1b" not in line for line in lines)
    assert lines[0].startswith(f"bad request from 127.0.0.1: GET {PODS}?limit=abc: 400 strconv")
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 10000 + b"\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad\x1b[2J Header\r\n\r\n",
    ],
    ids=["content-length", "line-too-long", "not-http", "control-characters"],
)
async def test_malformed_http_is_one_log_line_without_a_traceback(
    sandbox: SandboxCluster, caplog: pytest.LogCaptureFixture, raw: bytes
) -> None:
    caplog.set_level(logging.DEBUG)
    reader, writer = await asyncio.open_connection("127.0.0.1", sandbox.port, ssl=ssl_ctx(sandbox))
    try:
        writer.write(raw)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)  # aiohttp closes after its 400
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
    lines = [r.getMessage() for r in warnings(caplog)]
    assert len(lines) == 1, lines
    assert lines[0].startswith("bad request from 127.0.0.1: 400 ")
    assert "\n" not in lines[0] and "\x1b" not in lines[0]
    assert not [r for r in caplog.records if r.exc_info]


async def test_a_1000_port_upgrade_whose_client_vanished_is_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    watcher = Said("went away")
    logging.getLogger().addHandler(watcher)
    cluster = SandboxCluster()
    await asyncio.wait_for(cluster.start(), 30)
    try:
        pod = next(p for p in cluster.pod_names("demo") if p.startswith("echo"))
        ports = ",".join(["9000"] * 1000)
        request = (
            f"GET /api/v1/namespaces/demo/pods/{pod}/portforward?ports={ports} HTTP/1.1\r\n"
            f"Host: x\r\nAuthorization: Bearer {admin_token(cluster)}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n"
        )
        _, writer = await asyncio.open_connection("127.0.0.1", cluster.port, ssl=ssl_ctx(cluster))
        writer.write(request.encode())
        await writer.drain()
        writer.transport.abort()  # gone before the 1000 ports' prefix frames are sent

        await asyncio.wait_for(watcher.event.wait(), 20)
    finally:
        logging.getLogger().removeHandler(watcher)
        await asyncio.wait_for(cluster.stop(), 30)  # every handler has ended
    lines = [r.getMessage() for r in warnings(caplog)]
    assert len(lines) == 1, lines[:5]
    assert lines[0] == (
        f"port-forward to pod {pod}: the client went away before the prefix frames of "
        "its 1000 ports were sent"
    )
