"""Shell completion, through each shell's protocol, against the sandbox and a dead cluster.

Click's protocol (`_PORTFWD_COMPLETE=bash_complete` and friends, what the scripts of
`portfwd completion SHELL` run) is driven directly for exact answers; then the real shells run
the scripts `portfwd completion SHELL` prints: bash calls its completion function as
readline would, zsh runs it with compsys' two output functions (`_describe`, `compadd`)
replaced by printers, fish answers `complete -C`. Every case also checks that nothing was
written to stderr: the shell would show it inside the user's prompt.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from portfwd.sandbox.cluster import SandboxCluster
from tests.install.helpers import run

BIN = Path(sys.executable).parent

pytestmark = pytest.mark.timeout(300)


def _env(kubeconfig: Path | str, state: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("_PORTFWD")}
    env["KUBECONFIG"] = str(kubeconfig)
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    if state is not None:
        env["PORTFWD_CONFIG_DIR"] = str(state.parent)
    return env


async def click_protocol(line: str, env: dict[str, str], shell: str = "bash") -> list[str]:
    """The values Click answers for the last (maybe empty) word of `line`."""
    words = line.split(" ")
    protocol_env = {
        **env,
        "_PORTFWD_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": line,
        "COMP_CWORD": str(len(words) - 1) if shell != "fish" else words[-1],
    }
    code, out, err = await run(str(BIN / "portfwd"), env=protocol_env, limit=60)
    assert (code, err) == (0, "")
    if shell == "zsh":
        lines = out.split("\n")
        return [lines[i + 1].replace("\\:", ":") for i in range(0, len(lines) - 2, 3)]
    return [entry.split(",", 1)[1].split("\t")[0] for entry in out.splitlines() if entry]


def _contexts(sandbox: SandboxCluster) -> set[str]:
    """The contexts the sandbox's kubeconfig defines (seven identities)."""
    return {c["name"] for c in yaml.safe_load(sandbox.kubeconfig_path.read_text())["contexts"]}


@pytest.fixture
def dead_kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "dead.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "dead",
                "clusters": [{"name": "dead", "cluster": {"server": "https://127.0.0.1:9"}}],
                "contexts": [
                    {"name": "dead", "context": {"cluster": "dead", "user": "u"}},
                    {"name": "dead-too", "context": {"cluster": "dead", "user": "u"}},
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        )
    )
    path.chmod(0o600)
    return path


async def test_commands_and_flags(dead_kubeconfig: Path) -> None:
    env = _env(dead_kubeconfig)
    commands = await click_protocol("portfwd ", env)
    assert {"forward", "port-forward", "doctor", "completion", "demo", "sandbox"} <= set(commands)
    flags = await click_protocol("portfwd forward --p", env)
    assert {"--pod-running-timeout", "--ping-interval", "--protocol"} <= set(flags)
    assert await click_protocol("portfwd doctor -o ", env) == ["text", "json"]
    assert await click_protocol("portfwd completion ", env) == ["bash", "zsh", "fish"]


async def test_live_values_from_the_sandbox(sandbox: SandboxCluster) -> None:
    env = _env(sandbox.kubeconfig_path)
    contexts = await click_protocol("portfwd forward --context ", env)
    assert set(contexts) == _contexts(sandbox) and contexts[0] == "sandbox"  # current first
    assert {"demo", "data", "shop"} <= set(await click_protocol("portfwd forward -n ", env))
    targets = await click_protocol("portfwd forward ", env)
    assert {"svc/echo", "svc/web", "deploy/web"} <= set(targets)
    assert any(t.startswith("pod/echo-") for t in targets)
    services = await click_protocol("portfwd forward svc/", env)
    assert services and all(s.startswith("svc/") for s in services)
    assert await click_protocol("portfwd forward service/ec", env) == ["service/echo"]
    # The namespace and context given before the command choose where to look.
    shop = await click_protocol("portfwd -n shop forward svc/", env)
    assert shop and "svc/echo" not in shop
    assert await click_protocol("portfwd forward -n data sts/", env) == ["sts/postgres"]
    assert await click_protocol("portfwd forward svc/echo ", env) == ["80", "tcp"]
    assert await click_protocol("portfwd forward svc/api 8443:", env) == [
        "8443:443",
        "8443:https",
        "8443:9090",
        "8443:metrics",
    ]


async def test_every_kind_forward_takes_completes_in_its_spelling(sandbox: SandboxCluster) -> None:
    """`rs/` and `deploy.apps/` work in `forward`: completion knows them too (it once
    offered nothing after either)."""
    env = _env(sandbox.kubeconfig_path)
    replicasets = await click_protocol("portfwd forward rs/", env)
    assert all(r.startswith("rs/") for r in replicasets)
    web = next(r for r in replicasets if r.startswith("rs/web-"))
    unasked = await click_protocol("portfwd forward ", env)
    assert not any(t.startswith("rs/") for t in unasked)  # a Deployment's: not listed unasked
    assert {"8080", "http"} <= set(await click_protocol(f"portfwd forward {web} ", env))
    assert await click_protocol("portfwd forward deploy.apps/we", env) == ["deploy.apps/web"]
    assert "8080" in await click_protocol("portfwd forward deploy.apps/web ", env)


async def test_no_rights_and_dead_cluster_give_fewer_values_and_no_noise(
    sandbox: SandboxCluster, dead_kubeconfig: Path
) -> None:
    env = _env(sandbox.kubeconfig_path)
    assert await click_protocol("portfwd forward --context sandbox-nobody ", env) == []
    # Without the right to list namespaces: the context's own namespace.
    assert await click_protocol("portfwd forward --context sandbox-limited -n ", env) == ["demo"]
    dead = _env(dead_kubeconfig)
    assert await click_protocol("portfwd forward ", dead) == []
    assert await click_protocol("portfwd forward svc/x ", dead) == []
    # The context's own namespace is known without the cluster.
    assert await click_protocol("portfwd forward -n ", dead) == ["default"]
    assert await click_protocol("portfwd --context ", dead) == ["dead", "dead-too"]


async def test_saved_forwards_come_first(sandbox: SandboxCluster, tmp_path: Path) -> None:
    state = tmp_path / "config" / "state.yaml"
    state.parent.mkdir(mode=0o700)
    state.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "forwards": [
                    {"id": "ab12cd34", "target": "svc/api", "remote_port": 443, "local_port": 8443},
                    {"id": "ff00", "target": "svc/web", "remote_port": 80, "context": "other"},
                ],
            }
        )
    )
    state.chmod(0o600)
    env = _env(sandbox.kubeconfig_path, state)
    targets = await click_protocol("portfwd forward ", env)
    assert targets[0] == "svc/api"  # saved for this context; svc/web is another context's
    assert await click_protocol("portfwd forward --context other svc/w", env) == ["svc/web"]
    ports = await click_protocol("portfwd forward svc/api ", env)
    assert ports[0] == "8443:443"
    assert {"443", "https"} <= set(ports)


async def test_a_saved_local_port_in_use_is_not_offered(
    sandbox: SandboxCluster, tmp_path: Path
) -> None:
    """Issue 18 §6: a saved forward's LOCAL:REMOTE is offered only while LOCAL is free; one
    held now (its own running forward, anything) is offered as `:REMOTE`, as is a forward
    the user gave a free port."""
    import socket

    state = tmp_path / "config" / "state.yaml"
    state.parent.mkdir(mode=0o700)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        busy = held.getsockname()[1]
        forwards = [
            {"id": "a1", "target": "svc/api", "remote_port": 443, "local_port": busy},
            # got a port (the kernel's) when it asked for a free one: offered as asked
            {"id": "b2", "target": "svc/web", "remote_port": 80, "local_port": 41999},
        ]
        forwards[1]["free_port"] = True
        state.write_text(yaml.safe_dump({"version": 1, "forwards": forwards}))
        state.chmod(0o600)
        env = _env(sandbox.kubeconfig_path, state)
        ports = await click_protocol("portfwd forward svc/api ", env)
        assert ports[0] == ":443", ports
        assert f"{busy}:443" not in ports
        web = await click_protocol("portfwd forward svc/web ", env)
        assert web[0] == ":80", web


async def test_zsh_and_fish_protocol_answers(sandbox: SandboxCluster) -> None:
    env = _env(sandbox.kubeconfig_path)
    assert await click_protocol("portfwd forward svc/echo ", env, "zsh") == ["80", "tcp"]
    assert "svc/echo" in await click_protocol("portfwd forward svc/e", env, "fish")


# --------------------------------------------------------------------------- real shells


def _needs(shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed (.ci/run installs it)")


BASH = """
source <(portfwd completion bash)
COMP_WORDS=({words}); {last}
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
_portfwd_completion portfwd
printf '%s\\n' "${{COMPREPLY[@]}}"
"""

ZSH = """
compdef() {{ : }}
_describe() {{ print -rl -- "${{(@P)3}}" }}
compadd() {{ print -rl -- "${{(@P)${{@[-1]}}}}" }}
source <(portfwd completion zsh)
words=({words}); {last}
CURRENT=${{#words}}
_portfwd_completion
"""


async def _bash(line: str, env: dict[str, str]) -> list[str]:
    words = line.split(" ")
    last = 'COMP_WORDS+=("")' if line.endswith(" ") else ""
    script = BASH.format(words=" ".join(w for w in words if w), last=last)
    code, out, err = await run("bash", "--norc", "--noprofile", "-c", script, env=env)
    assert (code, err) == (0, "")
    return [v for v in out.splitlines() if v]


async def _zsh(line: str, env: dict[str, str]) -> list[str]:
    words = line.split(" ")
    last = 'words+=("")' if line.endswith(" ") else ""
    script = ZSH.format(words=" ".join(w for w in words if w), last=last)
    code, out, err = await run("zsh", "-f", "-c", script, env=env)
    assert (code, err) == (0, "")
    return [v.split(":", 1)[0] if ":" in v and "\\:" not in v else v for v in out.splitlines()]


async def _fish(line: str, env: dict[str, str]) -> list[str]:
    script = f"portfwd completion fish | source; complete -C '{line}'"
    code, out, err = await run("fish", "--no-config", "-c", script, env=env)
    assert (code, err) == (0, "")
    return [v.split("\t")[0] for v in out.splitlines() if v]


SHELL_RUNNERS = {"bash": _bash, "zsh": _zsh, "fish": _fish}


@pytest.mark.parametrize("shell", list(SHELL_RUNNERS))
async def test_real_shell_completes_live_values(shell: str, sandbox: SandboxCluster) -> None:
    _needs(shell)
    complete = SHELL_RUNNERS[shell]
    env = _env(sandbox.kubeconfig_path)
    assert {"forward", "doctor"} <= set(await complete("portfwd ", env))
    assert "--pod-running-timeout" in await complete("portfwd forward --pod", env)
    assert set(await complete("portfwd forward --context sandbox-", env)) == _contexts(sandbox) - {
        "sandbox"
    }
    assert "svc/echo" in await complete("portfwd forward svc/", env)
    assert set(await complete("portfwd forward svc/echo ", env)) == {"80", "tcp"}


@pytest.mark.parametrize("shell", list(SHELL_RUNNERS))
async def test_real_shell_with_a_dead_cluster_is_quiet(shell: str, dead_kubeconfig: Path) -> None:
    _needs(shell)
    complete = SHELL_RUNNERS[shell]
    env = _env(dead_kubeconfig)
    assert await complete("portfwd forward svc/", env) == []
    assert set(await complete("portfwd --context ", env)) == {"dead", "dead-too"}


async def test_ns_and_proxy_complete_namespaces_and_contexts(sandbox: SandboxCluster) -> None:
    env = _env(sandbox.kubeconfig_path)
    assert "demo" in await click_protocol("portfwd ns ", env)
    assert set(await click_protocol("portfwd ns de", env)) == {"demo", "default"}
    assert "sandbox" in await click_protocol("portfwd ns demo --context ", env)
    assert "sandbox" in await click_protocol("portfwd proxy --context ", env)
