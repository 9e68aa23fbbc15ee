"""`ns` and `proxy` take the global options as every command does: written before the command,
--kubeconfig and --context mean what they mean after it, and one they do not take is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from portfwd.cli.root import cli

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1"}
contexts:
- name: only
  context: {cluster: c, user: u, namespace: demo}
current-context: only
users:
- name: u
  user: {token: x}
"""


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    "command", [["ns", "demo"], ["proxy", "--listen", "127.0.0.1:0"]], ids=["ns", "proxy"]
)
def test_global_context_and_kubeconfig_are_used(kubeconfig: Path, command: list[str]) -> None:
    # Before the merge, both were dropped: the command ran on the default kubeconfig.
    result = CliRunner().invoke(
        cli,
        ["--kubeconfig", str(kubeconfig), "--context", "elsewhere", *command],
        env={"KUBECONFIG": "/nonexistent/config"},
    )
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    assert line == f'error: context "elsewhere" not found in {kubeconfig}; available: only'


def test_a_global_option_they_do_not_take_is_refused() -> None:
    result = CliRunner().invoke(cli, ["-n", "demo", "ns", "demo"])
    assert result.exit_code == 2
    assert "--namespace does not apply to 'cli ns'; remove it" in result.output
