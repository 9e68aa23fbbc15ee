"""`portfwd proxy` options, password, `proxy env`, and the SOCKS5/HTTP parsers on bad input."""

from __future__ import annotations

import asyncio
import base64

import pytest
from click.testing import CliRunner

from portfwd.cli.root import cli
from portfwd.reach import httphead
from portfwd.reach.names import ClusterName, context_label, parse_name
from portfwd.reach.pac import pac_file

from .conftest import Proxy, curl


def test_env_lines() -> None:
    result = CliRunner().invoke(cli, ["proxy", "--listen", "127.0.0.1:1081", "env"])
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "export ALL_PROXY=socks5h://127.0.0.1:1081",
        "export HTTPS_PROXY=http://127.0.0.1:1081",
        "export HTTP_PROXY=http://127.0.0.1:1081",
        "export NO_PROXY=localhost,127.0.0.1,::1",
    ]


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["--listen", "0.0.0.0:1080"], {}, "needs --allow-remote, --username and a password"),
        (["--listen", "0.0.0.0:1080", "--allow-remote"], {}, "needs --allow-remote"),
        (["--listen", "0.0.0.0:1080", "--username", "u"], {}, "needs a password"),
        (["--listen", "nonsense"], {}, "use ADDRESS:PORT"),
        (["--listen", "web:1080"], {}, "must be an IP address"),
    ],
)
def test_bad_listen_options_are_one_line(args: list[str], env: dict[str, str], words: str) -> None:
    result = CliRunner().invoke(cli, ["proxy", *args], env=env)
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    assert line.startswith("error: ") and words in line


def test_names() -> None:
    assert parse_name("web.demo") == ClusterName("demo", "web")
    assert parse_name("Web.Demo.svc.cluster.local.") == ClusterName("demo", "web")
    assert parse_name("postgres-0.postgres.data.svc") == ClusterName(
        "data", "postgres", "postgres-0"
    )
    assert parse_name("web.demo.svc.sandbox-2") == ClusterName("demo", "web", context="sandbox-2")
    for bad in ("web", "a.b.c.d", "web.demo.svc.a.b", "-x.demo", "web..demo", "", "é.demo"):
        assert parse_name(bad) is None, bad
    assert context_label("arn:aws:eks:eu-west-1:1234:cluster/Prod") == (
        "arn-aws-eks-eu-west-1-1234-cluster-prod"
    )


def test_pac_names_only_cluster_hosts() -> None:
    text = pac_file("127.0.0.1:1080", ["demo"], ["sandbox-2"])
    assert 'return "PROXY 127.0.0.1:1080";' in text and 'return "DIRECT";' in text


def test_http_head_helpers() -> None:
    assert httphead.split_authority("web.demo:443", None) == ("web.demo", 443)
    assert httphead.split_authority("[::1]:80", None) == ("::1", 80)
    assert httphead.absolute_target("http://web.demo:8080/a?b=1") == ("web.demo", 8080, "/a?b=1")
    head = httphead.Head(
        "GET", "http://web.demo/", [(b"host", b"web.demo"), (b"proxy-connection", b"keep-alive")]
    )
    assert httphead.origin_head(head, "/") == (
        b"GET / HTTP/1.1\r\nhost: web.demo\r\nconnection: close\r\n\r\n"
    )


async def test_password_protected_proxy(proxy: Proxy) -> None:
    proxy.server.credentials = ("user", "s3cret")
    code, out = await curl("--proxy", f"socks5h://{proxy.where}", "http://web.demo/cluster")
    assert code == 97  # no acceptable method: a password is required
    url = "http://web.demo/cluster"
    code, out = await curl("--proxy", f"socks5h://user:s3cret@{proxy.where}", url)
    assert (code, out) == (0, "sandbox\n")
    code, out = await curl("--proxy", f"socks5h://user:wrong@{proxy.where}", url)
    assert code == 97
    code, out = await curl("-i", "--proxy", f"http://{proxy.where}", url)
    assert out.startswith("HTTP/1.1 407 ")
    code, out = await curl("--proxy", f"http://user:s3cret@{proxy.where}", url)
    assert (code, out) == (0, "sandbox\n")
    # by hand: a Basic header with the wrong password
    host, _, port = proxy.where.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    token = base64.b64encode(b"user:nope").decode()
    auth = f"Proxy-Authorization: Basic {token}"
    writer.write(f"GET {url} HTTP/1.1\r\nHost: web.demo\r\n{auth}\r\n\r\n".encode())
    assert (await asyncio.wait_for(reader.read(), 10)).startswith(b"HTTP/1.1 407 ")
    writer.close()


async def test_malformed_socks_requests_keep_the_proxy_serving(proxy: Proxy) -> None:
    host, _, port = proxy.where.rpartition(":")
    for junk in (b"\x05\x01\x00\x05\x02\x00\x03", b"\x05\x01\x00\x05\x01\x00\x09", b"\x05"):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(junk)
        writer.write_eof()
        await asyncio.wait_for(reader.read(), 10)  # answered or closed, not hung
        writer.close()
    code, out = await curl("--proxy", f"socks5h://{proxy.where}", "http://web.demo/cluster")
    assert (code, out) == (0, "sandbox\n")
