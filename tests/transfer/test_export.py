"""Export: the YAML list (read back by from_yaml), the kubectl script (runnable, re-importable)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfwd.engine.model import ForwardSpec
from portfwd.engine.present import kubectl_command
from portfwd.sandbox.cluster import SandboxCluster
from portfwd.transfer.export import from_yaml, to_kubectl_script, to_yaml
from portfwd.transfer.kubectl_lines import parse_kubectl_lines
from portfwd.transfer.result import Unreadable

_dns = st.from_regex(r"[a-z]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_free_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp", "Cf")),
    min_size=1,
    max_size=16,
)

# What an import accepts as a context (`transfer/scope.py`); others are refused with the rule.
_contexts = st.from_regex(r"[A-Za-z0-9._:/@+-]{1,16}", fullmatch=True)


@st.composite
def _spec(draw: st.DrawFn) -> ForwardSpec:
    kind = draw(st.sampled_from(["svc", "pod", "deploy", "sts", "rs"]))
    remote = draw(st.integers(min_value=1, max_value=65535) | st.sampled_from(["http", "web-ui"]))
    return ForwardSpec(
        target=f"{kind}/{draw(_dns)}",
        remote_port=remote,
        local_port=draw(st.integers(min_value=0, max_value=65535)),
        namespace=draw(st.none() | _dns),
        context=draw(st.none() | _contexts),
        kubeconfig=draw(st.none() | _free_text | st.sampled_from(["~/.kube/x y", "~"])),
        addresses=draw(
            st.sampled_from([("localhost",), ("127.0.0.1",), ("0.0.0.0", "::"), ("::1",)])
        ),
        reconnect=draw(st.booleans()),
        http_log=draw(st.booleans()),
        protocol=draw(st.sampled_from(["auto", "websocket", "spdy", "v4"])),
        name=draw(st.none() | st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)),
    )


@settings(max_examples=75, deadline=None)
@given(st.lists(_spec(), max_size=8))
def test_the_yaml_list_reads_back_to_the_same_forwards(specs: list[ForwardSpec]) -> None:
    assert from_yaml(to_yaml(specs), "f.yaml") == specs


def _as_kubectl(spec: ForwardSpec) -> ForwardSpec:
    """What a kubectl command can say of a forward: no name, no reconnect choice, and only
    the plain-SPDY wire (KUBECTL_PORT_FORWARD_WEBSOCKETS=false) among the wire settings."""
    protocol = "spdy" if spec.protocol == "spdy" else "auto"
    return replace(spec, name=None, reconnect=True, protocol=protocol, http_log=False)


@settings(max_examples=75, deadline=None)
@given(st.lists(_spec(), max_size=8))
def test_the_kubectl_script_parses_back_to_the_same_forwards(specs: list[ForwardSpec]) -> None:
    script = to_kubectl_script(specs)
    result = parse_kubectl_lines(script, "script.sh")
    assert result.skipped == []
    expected: list[ForwardSpec] = []
    for spec in map(_as_kubectl, specs):  # a repeated fixed-port forward is imported once
        if not (spec.local_port and spec in expected):
            expected.append(spec)
    assert [_as_kubectl(s) for s in result.specs] == expected


@pytest.mark.skipif(shutil.which("sh") is None, reason="no sh")
def test_the_kubectl_script_is_valid_sh_and_runs_kubectl_with_those_words(tmp_path: Path) -> None:
    specs = [
        ForwardSpec(
            target="svc/web",
            remote_port=80,
            local_port=8080,
            namespace="demo",
            context='it\'s "prod" $(rm -rf /)',
            kubeconfig="~/.kube/my config",
            addresses=("0.0.0.0", "::"),
            protocol="spdy",
            name="web",
        ),
        ForwardSpec(target="pod/db", remote_port="postgres", local_port=0, name="db"),
    ]
    script = to_kubectl_script(specs)
    check = subprocess.run(["sh", "-n"], input=script, text=True, capture_output=True)
    assert check.returncode == 0, check.stderr
    # Run it with a fake kubectl that records its arguments and environment.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    fake = bin_dir / "kubectl"
    # One write per call: the script runs both in the background, so two calls' lines could
    # interleave if each wrote several times.
    fake.write_text(
        '#!/bin/sh\nline="WS=${KUBECTL_PORT_FORWARD_WEBSOCKETS-unset}"\n'
        'for a in "$@"; do line="$line[$a]"; done\nprintf "%s\\n" "$line" >> "$CALLS"\n'
    )
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(log), "HOME": "/home/u"}
    run = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=20)
    assert run.returncode == 0, run.stderr
    calls = log.read_text().splitlines()
    assert sorted(calls) == sorted(
        [
            "WS=false[--kubeconfig][/home/u/.kube/my config][--context]"
            '[it\'s "prod" $(rm -rf /)][-n][demo][port-forward][svc/web]'
            "[--address][0.0.0.0,::][8080:80]",
            "WS=unset[port-forward][pod/db][--address][127.0.0.1][:postgres]",
        ]
    )


def test_one_command_is_what_kubectl_takes() -> None:
    spec = ForwardSpec(target="svc/web", remote_port=80, local_port=80, addresses=("localhost",))
    assert kubectl_command(spec) == "kubectl port-forward svc/web 80"
    spec = ForwardSpec(target="svc/web", remote_port="http", local_port=0, namespace="a b")
    assert kubectl_command(spec) == (
        "kubectl -n 'a b' port-forward svc/web --address 127.0.0.1 :http"
    )


def test_yaml_keys_are_the_profile_keys_in_order() -> None:
    text = to_yaml(
        [
            ForwardSpec(
                target="svc/web",
                remote_port=80,
                local_port=8080,
                namespace="demo",
                context="kind",
                kubeconfig="/k",
                addresses=("localhost",),
                name="web",
            )
        ]
    )
    assert text == (
        "- name: web\n  context: kind\n  namespace: demo\n  target: svc/web\n"
        "  ports:\n  - 8080:80\n  address: localhost\n  reconnect: true\n  kubeconfig: /k\n"
    )


def test_from_yaml_takes_several_ports_and_the_session_spelling() -> None:
    specs = from_yaml(
        "- {name: api, target: deploy/api, ports: ['8443:https', 9090], address: '127.0.0.1'}\n"
        "- {target: svc/web, remote_port: 80, local_port: 8080, addresses: ['::1']}\n"
    )
    assert [(s.name, s.remote_port, s.local_port) for s in specs] == [
        ("api-https", "https", 8443),
        ("api-9090", 9090, 9090),
        (None, 80, 8080),
    ]
    assert specs[2].addresses == ("::1",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- {target: svc/web\n", "f.yaml:2:1: not valid YAML"),
        ("target: svc/web\n", "expected a list of forwards"),
        ("- {name: w, target: svc/web, ports: [80], namspace: x}\n", "forward 1 (w): unknown key"),
        ("- {target: svc/web}\n", "forward 1: a forward needs ports"),
        ("- {target: svc/web, ports: ['80:80:80']}\n", 'invalid port "80:80:80"'),
        ("- {target: svc/web, ports: [https]}\n", "give a local port"),
        ("- {target: svc/web, ports: [80], reconnect: maybe}\n", "reconnect"),
        ("- 42\n", "a forward must be a mapping"),
    ],
)
def test_a_bad_yaml_list_is_unreadable_naming_the_forward(text: str, message: str) -> None:
    with pytest.raises(Unreadable, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_yaml(text, "f.yaml")


def test_an_empty_list() -> None:
    assert to_yaml([]) == "[]\n"
    assert from_yaml("[]\n") == []
    assert from_yaml("") == []


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
async def test_the_exported_script_runs_as_is_with_kubectl_against_the_sandbox(
    sandbox: SandboxCluster, tmp_path: Path
) -> None:
    spec = ForwardSpec(
        target="svc/echo",
        remote_port=80,
        local_port=0,
        namespace="demo",
        kubeconfig=str(sandbox.kubeconfig_path),
        addresses=("127.0.0.1",),
        name="echo",
    )
    script = tmp_path / "forwards.sh"
    script.write_text(to_kubectl_script([spec]))
    env = {**os.environ, "HOME": str(tmp_path)}  # kubectl's cache goes there, not ~/.kube
    proc = await asyncio.create_subprocess_exec(
        "sh",
        str(script),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        port = 0
        while not port:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            assert line, "the script ended before kubectl was forwarding"
            match = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> 9000", line)
            port = int(match.group(1)) if match else 0
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello through the exported script\n")
        await writer.drain()
        echoed = await asyncio.wait_for(reader.readline(), 30)
        writer.close()
        assert echoed == b"hello through the exported script\n"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)


@pytest.mark.skipif(shutil.which("sh") is None, reason="no sh")
def _as_from_a_terminal() -> None:
    """SIGINT as a shell started from a terminal gets it: handled by default, not blocked. A
    shell that inherits it ignored may not trap it (POSIX), and the test process's own
    disposition is not what a user's shell starts with."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


async def test_ctrl_c_on_the_script_stops_every_kubectl_it_started(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text("#!/bin/sh\necho started\nexec sleep 600\n")
    (bin_dir / "kubectl").chmod(0o755)
    specs = [ForwardSpec(target=f"svc/s{i}", remote_port=80, name=f"s{i}") for i in range(3)]
    script = tmp_path / "forwards.sh"
    script.write_text(to_kubectl_script(specs))
    proc = await asyncio.create_subprocess_exec(
        "sh",
        str(script),
        stdout=asyncio.subprocess.PIPE,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
        start_new_session=True,
        preexec_fn=_as_from_a_terminal,
    )
    assert proc.stdout is not None
    try:
        for _ in specs:
            assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"started\n"
        os.kill(proc.pid, signal.SIGINT)  # what Ctrl-C sends (to the shell, not its jobs)
        await asyncio.wait_for(proc.wait(), 30)

        def group_gone() -> bool:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return True
            return False

        for _ in range(300):  # the sleeps get SIGTERM from `kill 0`: gone within moments
            if group_gone():
                break
            await asyncio.sleep(0.1)
        assert group_gone()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
