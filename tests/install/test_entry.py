"""The single-file binary's entry point (packaging/entry.py), run from source: as `portfwd`
it takes the console script's quick path (`--version` without click), and its other names
still reach the kubectl plugin. The built binary itself is checked in test_binary.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import runpy
import sys
sys.argv = [{name!r}, *sys.argv[1:]]
try:
    runpy.run_path({entry!r}, run_name="__main__")
except SystemExit as exc:
    print("exit", exc.code or 0)
print("click imported:", "click" in sys.modules)
"""


def _run(name: str, *args: str) -> list[str]:
    code = PROBE.format(entry=str(ROOT / "packaging" / "entry.py"), name=name)
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_version_as_portfwd_answers_without_importing_click() -> None:
    lines = _run("/usr/local/bin/portfwd", "--version")
    assert lines[0].startswith("portfwd, version ")
    assert lines[1:] == ["exit 0", "click imported: False"]


def test_the_plugin_names_still_reach_the_kubectl_plugin() -> None:
    lines = _run("kubectl-portfwd", "--help")
    assert any("Usage:" in line for line in lines)
    assert lines[-1] == "click imported: True"
    lines = _run("kubectl_complete-portfwd", "svc/")
    assert lines[-1] == "click imported: True"
