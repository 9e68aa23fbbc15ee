"""`--protocol` on every command: parsing, what reaches the engine, the wire it picks, and
the session file that keeps it per forward."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from portfwd.engine.model import ForwardSpec
from portfwd.engine.present import kubectl_command
from portfwd.sandbox.cluster import SandboxCluster
from portfwd.store.state import SavedForward
from tests.support.cli import forward_process, run_cli

from .test_reconnect_options import _invoke

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(
    ("args", "command", "protocol"),
    [
        (("forward", "svc/web", "80"), "forward", "auto"),
        (("forward", "--protocol", "spdy", "svc/web", "80"), "forward", "spdy"),
        (("forward", "--protocol", "v4", "svc/web", "80"), "forward", "v4"),
        ((), "tui", "auto"),
        (("--protocol", "websocket"), "tui", "websocket"),
        (("demo", "--protocol", "spdy"), "demo", "spdy"),
    ],
)
def test_the_protocol_reaches_the_command(
    monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], command: str, protocol: str
) -> None:
    seen = _invoke(monkeypatch, *args)
    assert seen["called"] == command and seen["protocol"] == protocol


async def test_an_unknown_protocol_is_a_usage_error() -> None:
    code, out, err = await run_cli("--protocol", "http2", "svc/web", "80")
    assert code == 2 and out == ""
    assert err == (
        "error: Invalid value for '--protocol': 'http2' is not one of 'auto', 'websocket', "
        "'spdy', 'v4'. (see 'portfwd forward --help')\n"
    )


@pytest.mark.parametrize("protocol", ["websocket", "spdy", "v4"])
async def test_portfwd_forward_speaks_the_protocol_asked_for(
    sandbox: SandboxCluster, protocol: str
) -> None:
    kubeconfig = str(sandbox.kubeconfig_path)
    args = ("--kubeconfig", kubeconfig, "--protocol", protocol, "svc/echo", ":80")
    async with forward_process(*args, expect_lines=1) as fp:
        reader, writer = await asyncio.open_connection("127.0.0.1", fp.ports[0])
        writer.write(b"hello")
        assert await asyncio.wait_for(reader.readexactly(5), 30) == b"hello"
        writer.close()
    kinds = {"websocket": "websocket-spdy", "spdy": "spdy", "v4": "v4"}
    assert set(sandbox.portforward_attempts) == {kinds[protocol]}


def test_the_session_file_keeps_the_protocol_and_refuses_unknown_ones(tmp_path: Path) -> None:
    spec = ForwardSpec(target="svc/web", remote_port=80, protocol="spdy")
    saved = SavedForward("a1", spec, running=True)
    data = saved.to_dict()
    assert data["protocol"] == "spdy"
    assert SavedForward.from_dict(yaml.safe_load(yaml.safe_dump(data))).spec == spec
    auto = SavedForward("a2", ForwardSpec(target="svc/web", remote_port=80), running=False)
    assert "protocol" not in auto.to_dict()  # the default is not written
    with pytest.raises(ValueError, match='forward a1: unknown protocol "http2": use one of auto'):
        SavedForward.from_dict({**data, "protocol": "http2"})


def test_the_kubectl_equivalent_says_how_kubectl_speaks_plain_spdy() -> None:
    spec = ForwardSpec(target="svc/web", remote_port=80, local_port=8080, protocol="spdy")
    assert kubectl_command(spec) == (
        "KUBECTL_PORT_FORWARD_WEBSOCKETS=false kubectl port-forward svc/web"
        " --address 127.0.0.1 8080:80"
    )
