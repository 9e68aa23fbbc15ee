"""The single-file binary starts its daemon and writes service units with itself (it takes no
`-m portfwd`), and its detached child unpacks its own copy; from a venv, this Python -m
portfwd. (tests/install/test_binary.py runs the real binary's daemon.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from portfwd.daemon.units import launchd_agent, systemd_unit
from portfwd.selfexec import RESET_ENV, child_environment, portfwd_command


def test_from_a_venv_it_is_this_python_with_m_portfwd() -> None:
    assert portfwd_command("daemon") == [sys.executable, "-m", "portfwd", "daemon"]
    assert RESET_ENV not in child_environment({"PATH": "/bin"})


def test_from_the_binary_it_is_the_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    binary = str(tmp_path / "portfwd")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", binary)
    assert portfwd_command("daemon", "--state", "s") == [binary, "daemon", "--state", "s"]
    assert child_environment({"PATH": "/bin"}) == {"PATH": "/bin", RESET_ENV: "1"}
    env = {"HOME": str(tmp_path), "PATH": "/bin"}
    (start,) = [x for x in systemd_unit(env).text.splitlines() if x.startswith("ExecStart=")]
    assert start == f"ExecStart={binary} daemon" or start == f'ExecStart="{binary}" daemon'
    assert "<string>-m</string>" not in launchd_agent(env).text
    assert f"<string>{binary}</string>" in launchd_agent(env).text
