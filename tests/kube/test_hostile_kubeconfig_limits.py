"""Hardening (issue 8, item 4): every kubeconfig and plugin answer is read within limits.

A 1.6 KB kubeconfig with an alias bomb under `clusters[].cluster.extensions` (and an exec user
with `provideClusterInfo: true`, so the extension is serialised for the plugin) took 1.57 GB
and 18 s; one level deeper died in a MemoryError traceback. These tests assert the refusal,
quickly and with the limit named; they never let a bomb go off (the CLI test runs under a
1 GiB address-space limit, so a regression fails instead of eating the machine).
"""

from __future__ import annotations

import itertools
import os
import resource
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from portfwd.errors import ConfigError
from portfwd.kube.config import load_connection
from tests.kube.test_config_kit import base_env, write
from tests.support.cli import PORTFWD


def alias_bomb(levels: int) -> str:
    """The issue's kubeconfig: nine aliases per level, under the exec extension."""
    names = "abcdefghijklmnop"[:levels]
    lines = [f"        {names[0]}: &{names[0]} [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in itertools.pairwise(names):
        lines.append(f"        {name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    bomb = "\n".join(lines)
    return f"""\
apiVersion: v1
kind: Config
current-context: bomb
clusters:
- name: bomb
  cluster:
    server: https://127.0.0.1:6443
    insecure-skip-tls-verify: true
    extensions:
    - name: client.authentication.k8s.io/exec
      extension:
{bomb}
contexts:
- name: bomb
  context: {{cluster: bomb, user: u}}
users:
- name: u
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: /bin/true
      interactiveMode: Never
      provideClusterInfo: true
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return base_env(tmp_path / "home")


@pytest.mark.parametrize("levels", [9, 10], ids=["issue", "one-level-deeper"])
def test_alias_bomb_under_the_exec_extension_is_refused(
    tmp_path: Path, env: dict[str, str], levels: int
) -> None:
    kc = write(tmp_path / "kc", alias_bomb(levels))
    assert len(kc.read_bytes()) < 2000  # the 1.6 KB file
    with pytest.raises(ConfigError) as err:
        load_connection(str(kc), environ=env)
    assert str(err.value) == (
        f"kubeconfig {kc} is refused: it has more YAML nodes than portfwd's limit of "
        "500,000, counting aliases expanded"
    )


def test_a_recursive_alias_is_refused(tmp_path: Path, env: dict[str, str]) -> None:
    kc = write(tmp_path / "kc", "clusters: &loop [*loop]\n")
    with pytest.raises(ConfigError, match="a YAML alias in it refers to the node that contains"):
        load_connection(str(kc), environ=env)


def test_a_few_ordinary_aliases_still_load(tmp_path: Path, env: dict[str, str]) -> None:
    """Anchors are legal YAML: a shared cluster body is fine."""
    text = alias_bomb(2).replace("extension:", "extension: &ext")
    kc = write(tmp_path / "kc", text)
    assert load_connection(str(kc), environ=env).server == "https://127.0.0.1:6443"


def run_forward_limited(*args: str) -> subprocess.CompletedProcess[str]:
    """`portfwd forward ARGS` under a 1 GiB address-space limit: a regression that reads or
    expands without bound fails (MemoryError) instead of eating the machine."""

    def one_gib() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run(
        [*PORTFWD, "forward", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        preexec_fn=one_gib,
        check=False,
    )


def test_the_cli_refuses_the_bomb_in_one_line(tmp_path: Path) -> None:
    kc = write(tmp_path / "kc", alias_bomb(9))
    proc = run_forward_limited("--kubeconfig", str(kc), "svc/web", ":80")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        f"error: kubeconfig {kc} is refused: it has more YAML nodes than portfwd's limit of "
        "500,000, counting aliases expanded\n"
    )


def test_an_endless_device_is_refused() -> None:
    proc = run_forward_limited("--kubeconfig", "/dev/zero", "svc/web", ":80")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        "error: kubeconfig /dev/zero is refused: it is over portfwd's limit of 16 MiB\n"
    )


def test_an_oversized_kubeconfig_is_refused_unread(tmp_path: Path, env: dict[str, str]) -> None:
    kc = tmp_path / "kc"
    with kc.open("wb") as fh:  # valid YAML, just big: a comment line, repeated
        line = b"# " + b"x" * 1021 + b"\n"
        for _ in range(17 * 1024):  # 17 MiB
            fh.write(line)
    with pytest.raises(ConfigError) as err:
        load_connection(str(kc), environ=env)
    assert str(err.value) == (
        f"kubeconfig {kc} is refused: it is 17 MiB, over portfwd's limit of 16 MiB"
    )


def test_a_kubeconfig_from_a_pipe_still_works(tmp_path: Path, env: dict[str, str]) -> None:
    """`portfwd forward --kubeconfig <(sops -d kc) ...`: a FIFO is read (kubectl reads it)."""
    doc = {
        "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://k.example:6443"}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
    }
    fifo = tmp_path / "kc.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("w") as fh:
            fh.write(yaml.safe_dump(doc))

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        assert load_connection(str(fifo), environ=env).server == "https://k.example:6443"
    finally:
        if writer.is_alive():  # unblock it: open the reading end once
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(10)


async def test_deeply_nested_plugin_output_is_one_line(tmp_path: Path, env: dict[str, str]) -> None:
    """An exec plugin's answer is capped at 4 MiB; within that, "[[[[..." used to end in a
    RecursionError traceback."""
    plugin = write(
        tmp_path / "plugin.py", f"#!{sys.executable}\nprint('[' * 200_000 + ']' * 200_000)\n"
    )
    plugin.chmod(0o755)
    text = alias_bomb(1).replace("/bin/true", str(plugin))
    kc = write(tmp_path / "kc", text)
    conn = load_connection(str(kc), environ=env)
    with pytest.raises(ConfigError) as err:
        await conn.auth.get()
    assert str(err.value).endswith(
        "printed an invalid ExecCredential: its JSON is nested too deeply"
    )
