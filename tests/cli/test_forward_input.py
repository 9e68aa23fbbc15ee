"""`portfwd forward` with bad input and bad configuration: one line, exit 1, no traceback.

These cases need no cluster (or one that is unreachable), so they run in-process with
click's CliRunner.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from portfwd.cli.root import cli
from portfwd.tunnel import listener as listener_mod
from tests.support.ports import refused_port


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["forward", *args], catch_exceptions=False)


def _one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert result.stdout == ""
    return lines[0]


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig whose server is a closed loopback port."""
    path = tmp_path / "config"
    data = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{refused_port()}"}}],
        "users": [{"name": "u", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "dead", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "dead",
    }
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o600)
    return path


@pytest.fixture
def held_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_malformed_port_spec() -> None:
    line = _one_error_line(_run("svc/echo", "abc:80"))
    assert line.startswith('error: invalid local port "abc" in "abc:80"')


@pytest.mark.parametrize(("spec", "shown"), [("0", '"0"'), ("65536", '"65536"'), ("8080:0", '"0"')])
def test_port_out_of_range(spec: str, shown: str) -> None:
    line = _one_error_line(_run("svc/echo", spec))
    assert f"invalid remote port {shown}" in line and "ports are 1..65535" in line


def test_local_port_out_of_range() -> None:
    line = _one_error_line(_run("svc/echo", "65536:80"))
    assert 'invalid local port "65536"' in line


def test_local_port_in_use(held_port: int, kubeconfig: Path) -> None:
    # The check comes before any cluster access: this kubeconfig's server is unreachable.
    line = _one_error_line(_run("--kubeconfig", str(kubeconfig), "svc/echo", f"{held_port}:80"))
    assert line == (
        f"error: local port {held_port} is already in use on 127.0.0.1; pick another local"
        " port (:80 picks a free one) or stop the program using it"
    )


def test_same_local_port_twice(kubeconfig: Path) -> None:
    port = refused_port()
    line = _one_error_line(_run("svc/echo", f"{port}:80", f"{port}:81"))
    assert line == f"error: local port {port} is given twice; use each once"


def test_privileged_port_without_rights(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests run as root here, so EACCES is simulated at the socket layer."""

    def deny(host: str, port: int) -> socket.socket:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(listener_mod, "open_listening_socket", deny)
    line = _one_error_line(_run("svc/web", "80:80"))
    assert line == (
        "error: binding port 80 needs root or CAP_NET_BIND_SERVICE; pick a port above 1023"
    )


def test_bad_listen_address() -> None:
    line = _one_error_line(_run("--address", "example.com", "svc/echo", ":80"))
    assert line.startswith("error: invalid listen address 'example.com'")


def test_unknown_context(kubeconfig: Path) -> None:
    line = _one_error_line(
        _run("--kubeconfig", str(kubeconfig), "--context", "nope", "svc/echo", ":80")
    )
    assert line.startswith('error: context "nope" not found in')
    assert "available: dead" in line


def test_missing_kubeconfig(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    line = _one_error_line(_run("--kubeconfig", str(missing), "svc/echo", ":80"))
    assert line.startswith(f"error: kubeconfig {missing}")
    assert "does not exist" in line


def test_unreadable_kubeconfig(tmp_path: Path) -> None:
    line = _one_error_line(_run("--kubeconfig", str(tmp_path), "svc/echo", ":80"))
    assert line == f"error: kubeconfig {tmp_path} is a directory, not a file"


def test_unreachable_api_server(kubeconfig: Path) -> None:
    line = _one_error_line(_run("--kubeconfig", str(kubeconfig), "svc/echo", ":80"))
    assert "127.0.0.1" in line
    assert "refused" in line.lower() or "unreachable" in line.lower()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_kubeconfig_without_read_permission(kubeconfig: Path) -> None:
    kubeconfig.chmod(0)
    line = _one_error_line(_run("--kubeconfig", str(kubeconfig), "svc/echo", ":80"))
    assert str(kubeconfig) in line
