"""How to run this same portfwd again (the detached daemon, a service unit's command).

From a venv or a tool install that is this Python with `-m portfwd`; from the single-file
binary (PyInstaller sets `sys.frozen`) it is the binary itself, which takes no `-m`. A child
of the binary is told to unpack its own copy (PYINSTALLER_RESET_ENVIRONMENT), since the
parent's copy is deleted when the parent exits, and a detached daemon outlives it."""

from __future__ import annotations

import sys
from collections.abc import Mapping

RESET_ENV = "PYINSTALLER_RESET_ENVIRONMENT"


def frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def portfwd_command(*args: str) -> list[str]:
    """argv that runs `portfwd ARGS` with this very installation."""
    if frozen():
        return [sys.executable, *args]
    return [sys.executable, "-m", "portfwd", *args]


def child_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` for a portfwd started by this one (see the module's note)."""
    env = dict(environ)
    if frozen():
        env[RESET_ENV] = "1"
    return env
