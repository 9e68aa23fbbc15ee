"""`portfwd daemon install|uninstall`: the systemd user unit and the launchd agent it writes,
written and removed (also as the real command, in a private HOME)."""

from __future__ import annotations

import os
import plistlib
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from portfwd.daemon.units import (
    Unit,
    install,
    launchd_agent,
    systemd_unit,
    uninstall,
    unit_for_platform,
)
from portfwd.errors import PortfwdError
from tests.support import cli
from tests.support.cli import PORTFWD

COMMAND = [*PORTFWD, "daemon"]


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    return {
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "PATH": "/opt/my tools/bin:/usr/local/bin:/usr/bin",
        "KUBECONFIG": "/home/me/kube 100%/config",
        "SECRET_TOKEN": "not for the unit",
    }


def unit_lines(unit: Unit) -> list[str]:
    return unit.text.splitlines()


def systemd_words(value: str) -> list[str]:
    """A systemd value back into its words (its quoting is shell-like; %% is a literal %)."""
    return [word.replace("%%", "%") for word in shlex.split(value)]


def test_systemd_unit_path_is_under_xdg_config_home(environ: dict[str, str]) -> None:
    unit = systemd_unit(environ)
    assert unit.path == Path(environ["XDG_CONFIG_HOME"]) / "systemd" / "user" / "portfwd.service"


def test_systemd_unit_path_without_xdg_is_under_home_config(environ: dict[str, str]) -> None:
    del environ["XDG_CONFIG_HOME"]
    unit = systemd_unit(environ)
    assert unit.path == Path(environ["HOME"]) / ".config" / "systemd" / "user" / "portfwd.service"


def test_systemd_unit_runs_this_python_in_the_foreground(environ: dict[str, str]) -> None:
    lines = unit_lines(systemd_unit(environ))
    assert "[Service]" in lines and "[Install]" in lines
    assert "Type=notify" in lines
    assert "WantedBy=default.target" in lines
    (exec_start,) = [line for line in lines if line.startswith("ExecStart=")]
    assert systemd_words(exec_start.removeprefix("ExecStart=")) == COMMAND


def test_systemd_unit_carries_path_and_kubeconfig_quoted(environ: dict[str, str]) -> None:
    lines = unit_lines(systemd_unit(environ))
    env_lines = [
        line.removeprefix("Environment=") for line in lines if line.startswith("Environment=")
    ]
    # A space needs quotes, and % is systemd's specifier character: %% for a literal one.
    assert '"PATH=/opt/my tools/bin:/usr/local/bin:/usr/bin"' in env_lines
    assert '"KUBECONFIG=/home/me/kube 100%%/config"' in env_lines
    values = dict(systemd_words(line)[0].split("=", 1) for line in env_lines)
    assert values == {"PATH": environ["PATH"], "KUBECONFIG": environ["KUBECONFIG"]}
    assert "SECRET_TOKEN" not in systemd_unit(environ).text


def test_systemd_unit_quotes_quotes_and_backslashes(environ: dict[str, str]) -> None:
    environ["KUBECONFIG"] = '/home/me/a "b"\\c.yaml'
    lines = unit_lines(systemd_unit(environ))
    (line,) = [x for x in lines if x.startswith("Environment=") and "KUBECONFIG" in x]
    assert systemd_words(line.removeprefix("Environment=")) == [
        f"KUBECONFIG={environ['KUBECONFIG']}"
    ]


def test_systemd_unit_keeps_portfwd_dirs_and_skips_what_is_unset(tmp_path: Path) -> None:
    environ = {
        "HOME": str(tmp_path),
        "PATH": "/usr/bin",
        "PORTFWD_CONFIG_DIR": "/srv/pf/config",
        "PORTFWD_RUNTIME_DIR": "/run/pf",
    }
    lines = unit_lines(systemd_unit(environ))
    env_lines = [
        line.removeprefix("Environment=") for line in lines if line.startswith("Environment=")
    ]
    assert sorted(env_lines) == [
        "PATH=/usr/bin",
        "PORTFWD_CONFIG_DIR=/srv/pf/config",
        "PORTFWD_RUNTIME_DIR=/run/pf",
    ]


def test_launchd_agent_is_a_plist_with_the_command_and_environment(
    environ: dict[str, str],
) -> None:
    unit = launchd_agent(environ)
    assert unit.path == (
        Path(environ["HOME"]) / "Library" / "LaunchAgents" / "dev.portfwd.daemon.plist"
    )
    body = plistlib.loads(unit.text.encode())
    assert body["Label"] == "dev.portfwd.daemon"
    assert body["ProgramArguments"] == COMMAND
    assert body["EnvironmentVariables"] == {
        "PATH": environ["PATH"],
        "KUBECONFIG": environ["KUBECONFIG"],  # plist: no escaping of %
    }
    assert body["RunAtLoad"] is True
    assert "launchctl bootstrap" in unit.enable and str(unit.path) in unit.enable
    assert "launchctl bootout" in unit.disable


def test_unit_for_platform_picks_by_platform(environ: dict[str, str]) -> None:
    assert unit_for_platform(environ, "linux").path.name == "portfwd.service"
    assert unit_for_platform(environ, "darwin").path.name == "dev.portfwd.daemon.plist"


def test_unit_for_an_unknown_platform_is_a_one_line_error(environ: dict[str, str]) -> None:
    with pytest.raises(PortfwdError) as info:
        unit_for_platform(environ, "win32")
    message = str(info.value)
    assert message and "\n" not in message
    assert "win32" in message


def test_install_writes_0600_then_updates(environ: dict[str, str]) -> None:
    unit = systemd_unit(environ)
    assert not unit.path.exists()
    first = install(unit)
    assert unit.path.read_text() == unit.text
    assert stat.S_IMODE(os.stat(unit.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(unit.path.parent).st_mode) == 0o700  # new: private
    assert any(line.startswith("wrote ") and str(unit.path) in line for line in first), first
    assert any(unit.enable in line for line in first), first
    assert "systemctl --user" in unit.enable

    second = install(unit)
    assert any(line.startswith("updated ") and str(unit.path) in line for line in second), second
    assert any(unit.enable in line for line in second), second
    assert stat.S_IMODE(os.stat(unit.path).st_mode) == 0o600


def test_install_replaces_an_old_unit_and_keeps_it_private(environ: dict[str, str]) -> None:
    unit = systemd_unit(environ)
    unit.path.parent.mkdir(parents=True)
    unit.path.write_text("old\n")
    os.chmod(unit.path, 0o644)
    lines = install(unit)
    assert lines[0].startswith("updated ")
    assert unit.path.read_text() == unit.text
    assert stat.S_IMODE(os.stat(unit.path).st_mode) == 0o600


def test_uninstall_removes_then_has_nothing_to_remove(environ: dict[str, str]) -> None:
    unit = systemd_unit(environ)
    install(unit)
    removed = uninstall(unit)
    assert not unit.path.exists()
    assert any(line.startswith("removed ") and str(unit.path) in line for line in removed)
    assert any(unit.disable in line for line in removed), removed

    again = uninstall(unit)
    assert len(again) == 1 and again[0].startswith("nothing to remove"), again
    assert not unit.path.exists()


def test_install_and_uninstall_the_launchd_agent(environ: dict[str, str]) -> None:
    unit = launchd_agent(environ)
    assert install(unit)[0].startswith("wrote ")
    assert plistlib.loads(unit.path.read_bytes())["Label"] == "dev.portfwd.daemon"
    assert stat.S_IMODE(os.stat(unit.path).st_mode) == 0o600
    assert uninstall(unit)[0].startswith("removed ")
    assert not unit.path.exists()


@pytest.mark.timeout(120)
def test_the_install_and_uninstall_commands(tmp_path: Path) -> None:
    if not (sys.platform.startswith("linux") or sys.platform == "darwin"):
        pytest.skip("install knows systemd and launchd only")
    env = {
        **os.environ,
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "PATH": os.environ.get("PATH", "/usr/bin"),
    }
    expected = unit_for_platform(env).path
    assert tmp_path in expected.parents

    def portfwd(*args: str) -> subprocess.CompletedProcess[str]:
        return cli.portfwd("daemon", *args, env=env)

    done = portfwd("install")
    assert done.returncode == 0, done.stderr
    assert expected.is_file()
    assert stat.S_IMODE(os.stat(expected).st_mode) == 0o600
    assert str(expected) in done.stdout
    assert unit_for_platform(env).enable in done.stdout
    if sys.platform.startswith("linux"):
        assert "ExecStart=" in expected.read_text()

    again = portfwd("install")
    assert again.returncode == 0, again.stderr
    assert "updated" in again.stdout

    gone = portfwd("uninstall")
    assert gone.returncode == 0, gone.stderr
    assert not expected.exists()
    assert "removed" in gone.stdout

    nothing = portfwd("uninstall")
    assert nothing.returncode == 0, nothing.stderr
    assert "nothing to remove" in nothing.stdout
