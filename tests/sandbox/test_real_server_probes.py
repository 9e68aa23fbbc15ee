"""The requests on which the sandbox and a real kube-apiserver v1.36.2 answered differently
(docs/protocols.md, section 4), each sent as raw HTTP over TLS with the
admin client certificate (as measured) and compared with what the real server answered:
status, Content-Type, body, headers."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from portfwd.sandbox.cluster import SandboxCluster

from .helpers import ssl_ctx

PF = "/api/v1/namespaces/demo/pods/{pod}/portforward"
WS_HEADERS = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}
# What aiohttp sends with a GET (the measured client), Host aside: with the upgrade's two
# and the X-Forwarded-For the API server adds, the kubelet counts 6.
AIOHTTP_HEADERS = {
    "Accept": "*/*",
    "Accept-Encoding": "gzip, deflate",
    "User-Agent": "Python/3.11 aiohttp/3.14.5",
}


def _status(code: int, message: str, reason: str = "", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
    }
    if reason:
        body["reason"] = reason
    body.update(extra)
    body["code"] = code
    return body


@dataclass
class Probe:
    name: str
    method: str
    path: str
    status: int
    content_type: str | None = None
    text: str | None = None  # the exact body
    json: dict[str, Any] | None = None  # the exact JSON body
    kind: str | None = None  # or only the JSON "kind"
    headers: dict[str, str] = field(default_factory=dict)
    answer_headers: dict[str, str] = field(default_factory=dict)  # present, with this value


PROBES = [
    Probe(
        "watch with a non-numeric resourceVersion",
        "GET",
        "/api/v1/namespaces/demo/pods?watch=1&resourceVersion=abc",
        500,
        "application/json",
        json=_status(
            500,
            'resourceVersion: Invalid value: "abc": strconv.ParseUint: parsing "abc": '
            "invalid syntax",
        ),
    ),
    Probe(
        "a malformed label selector",
        "GET",
        "/api/v1/namespaces/demo/pods?labelSelector=a%3D%3D%3Db",
        400,
        "application/json",
        json=_status(
            400, "unable to parse requirement: found '=', expected: identifier", "BadRequest"
        ),
    ),
    Probe(
        "an unsupported field label",
        "GET",
        "/api/v1/namespaces/demo/pods?fieldSelector=spec.foo%3Dbar",
        400,
        "application/json",
        json=_status(400, "field label not supported: spec.foo", "BadRequest"),
    ),
    Probe(
        "port-forward POST without upgrade headers",
        "POST",
        PF + "?ports=9000",
        400,
        "application/json",
        json=_status(400, "Upgrade request required", "BadRequest"),
        headers={"Content-Length": "0"},
    ),
    Probe(
        "port-forward GET without upgrade headers",
        "GET",
        PF + "?ports=9000",
        400,
        "application/json",
        json=_status(400, "Upgrade request required", "BadRequest"),
    ),
    Probe(
        "SPDY upgrade without X-Stream-Protocol-Version",
        "GET",
        PF + "?ports=9000",
        400,
        "text/plain; charset=utf-8",
        text="unable to upgrade: header X-Stream-Protocol-Version does not exist in request "
        "with 6 headers\n",
        headers={**AIOHTTP_HEADERS, "Connection": "Upgrade", "Upgrade": "SPDY/3.1"},
    ),
    Probe(
        "v4 upgrade without ports",
        "GET",
        PF,
        400,
        "text/plain; charset=utf-8",
        text='query parameter "port" is required\n',
        headers={**WS_HEADERS, "Sec-WebSocket-Protocol": "v4.channel.k8s.io"},
    ),
    Probe(
        "WebSocket upgrade offering no subprotocol",
        "GET",
        PF + "?ports=9000",
        101,
        headers=WS_HEADERS,
        answer_headers={"sec-websocket-protocol": ""},
    ),
    Probe(
        "Content-Type of an object",
        "GET",
        "/api/v1/namespaces/demo/pods/{pod}",
        200,
        "application/json",
        kind="Pod",
    ),
    Probe(
        "Content-Type of a list",
        "GET",
        "/api/v1/namespaces/demo/pods",
        200,
        "application/json",
        kind="PodList",
    ),
    Probe(
        "Content-Type of a 404",
        "GET",
        "/api/v1/namespaces/demo/pods/nope",
        404,
        "application/json",
        json=_status(
            404, 'pods "nope" not found', "NotFound", details={"name": "nope", "kind": "pods"}
        ),
    ),
    Probe(
        "Content-Type of a port-forward's ports=70000",
        "GET",
        PF + "?ports=70000",
        400,
        "application/json",
        json=_status(
            400,
            'cannot convert to []int32: strconv.ParseUint: parsing "70000": value out of range',
            "BadRequest",
        ),
        headers=WS_HEADERS,
    ),
]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


async def _send(sb: SandboxCluster, probe: Probe, pod: str) -> Answer:
    """One request, written byte for byte; the answer's head (and body unless 101)."""
    host, port = sb.url.removeprefix("https://").rsplit(":", 1)
    async with asyncio.timeout(20):
        reader, writer = await asyncio.open_connection(
            host, int(port), ssl=ssl_ctx(sb, cert=True), server_hostname=host
        )
        try:
            lines = [f"{probe.method} {probe.path.format(pod=pod)} HTTP/1.1", f"Host: {host}"]
            headers = probe.headers or {"Accept": "*/*"}
            lines += [f"{name}: {value}" for name, value in headers.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            await writer.drain()
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            status = int(head[0].split()[1])
            answer: dict[str, str] = {}
            for line in head[1:]:
                if line:
                    name, _, value = line.partition(":")
                    answer[name.strip().lower()] = value.strip()
            body = b""
            if status != 101:
                body = await _body(reader, answer)
            return Answer(status, answer, body)
        finally:
            writer.close()


async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    out = b""
    while True:  # chunked
        size = int((await reader.readline()).strip(), 16)
        if size == 0:
            return out
        out += await reader.readexactly(size)
        await reader.readline()


@pytest.mark.parametrize("probe", PROBES, ids=[p.name for p in PROBES])
async def test_the_sandbox_answers_as_a_real_api_server(
    sandbox: SandboxCluster, probe: Probe
) -> None:
    pod = sandbox.pod_names("demo", {"app": "echo"})[0]
    answer = await _send(sandbox, probe, pod)
    assert answer.status == probe.status, answer.body
    if probe.content_type is not None:
        assert answer.headers.get("content-type") == probe.content_type
    if probe.text is not None:
        assert answer.body.decode() == probe.text
    if probe.json is not None:
        assert json.loads(answer.body) == probe.json
    if probe.kind is not None:
        assert json.loads(answer.body)["kind"] == probe.kind
    for name, value in probe.answer_headers.items():
        assert answer.headers.get(name) == value, answer.headers
