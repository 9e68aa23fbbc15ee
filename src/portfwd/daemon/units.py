"""`portfwd daemon install|uninstall`: a systemd user unit (Linux) or a launchd agent (macOS).

The unit runs `portfwd daemon` in the foreground with this Python (so a venv or pipx install
keeps working) and the PATH and KUBECONFIG of the shell that installed it: service managers
start user services with a bare environment, and exec credential plugins (aws, gcloud,
kubelogin) are found through PATH. Nothing is enabled behind the user's back: the command
prints the one line that does it.
"""

from __future__ import annotations

import os
import plistlib
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from portfwd.errors import PortfwdError
from portfwd.store.state import write_atomic

SYSTEMD_UNIT = "portfwd.service"
LAUNCHD_LABEL = "dev.portfwd.daemon"
KEPT_ENV = ("PATH", "KUBECONFIG", "PORTFWD_CONFIG_DIR", "PORTFWD_RUNTIME_DIR")


@dataclass(frozen=True)
class Unit:
    path: Path
    text: str
    enable: str  # the command that turns it on
    disable: str


def _command(extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "portfwd", "daemon", *extra]


def _environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: environ[k] for k in KEPT_ENV if environ.get(k)}


def systemd_unit(
    environ: Mapping[str, str] | None = None, *, extra: list[str] | None = None
) -> Unit:
    env = os.environ if environ is None else environ
    config = Path(env.get("XDG_CONFIG_HOME") or Path(env.get("HOME", "~")) / ".config")
    path = config.expanduser() / "systemd" / "user" / SYSTEMD_UNIT
    lines = [
        "# Written by `portfwd daemon install`; `portfwd daemon uninstall` removes it.",
        "[Unit]",
        "Description=portfwd: Kubernetes port-forwards that outlive the window",
        "",
        "[Service]",
        "Type=notify",
        "ExecStart=" + " ".join(_systemd_quote(a) for a in _command(extra or [])),
        "Restart=on-failure",
        "RestartSec=2",
        "TimeoutStopSec=90",
    ]
    for key, value in _environment(env).items():
        lines.append(f"Environment={_systemd_quote(f'{key}={value}')}")
    lines += ["", "[Install]", "WantedBy=default.target", ""]
    return Unit(
        path=path,
        text="\n".join(lines),
        enable="systemctl --user daemon-reload && systemctl --user enable --now portfwd",
        disable="systemctl --user disable --now portfwd",
    )


def _systemd_quote(word: str) -> str:
    """systemd's own quoting: double quotes, backslash escapes, and %% for a literal %."""
    word = word.replace("%", "%%")
    if word and all(c.isalnum() or c in "/._-=:+,@" for c in word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def launchd_agent(
    environ: Mapping[str, str] | None = None, *, extra: list[str] | None = None
) -> Unit:
    env = os.environ if environ is None else environ
    home = Path(env.get("HOME", "~")).expanduser()
    path = home / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
    logs = home / "Library" / "Logs" / "portfwd-daemon.out.log"
    body = {
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": _command(extra or []),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "EnvironmentVariables": _environment(env),
        "StandardOutPath": str(logs),
        "StandardErrorPath": str(logs),
        "ProcessType": "Background",
    }
    text = plistlib.dumps(body).decode()
    target = f"gui/{os.getuid()}"
    return Unit(
        path=path,
        text=text,
        enable=f"launchctl bootstrap {target} {shlex.quote(str(path))}",
        disable=f"launchctl bootout {target}/{LAUNCHD_LABEL}",
    )


def unit_for_platform(environ: Mapping[str, str] | None = None, platform: str = "") -> Unit:
    platform = platform or sys.platform
    if platform == "darwin":
        return launchd_agent(environ)
    if platform.startswith("linux"):
        return systemd_unit(environ)
    raise PortfwdError(
        f"`portfwd daemon install` knows systemd (Linux) and launchd (macOS), not {platform};"
        " run `portfwd daemon` from your own service manager"
    )


def install(unit: Unit) -> list[str]:
    """Write the unit (atomically, 0600 under a 0700 dir if new); the lines to print."""
    existed = unit.path.exists()
    unit.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(unit.path, unit.text)
    verb = "updated" if existed else "wrote"
    return [
        f"{verb} {unit.path}",
        f"turn it on (now and at every login): {unit.enable}",
    ]


def uninstall(unit: Unit) -> list[str]:
    if not unit.path.exists():
        return [f"nothing to remove: {unit.path} does not exist"]
    unit.path.unlink()
    return [
        f"removed {unit.path}",
        f"if it is still loaded, turn it off with: {unit.disable}",
    ]
