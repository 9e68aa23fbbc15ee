"""`portfwd up PROFILE [GROUP...]` as a real subprocess against the sandbox cluster."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from portfwd.sandbox.cluster import SandboxCluster
from tests.support.cli import PORTFWD, portfwd, portfwd_async, private_env, write_private

LINE_RE = re.compile(r"^([\w.-]+): Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)$")


def _profiles(kubeconfig: Path, busy: int) -> str:
    return f"""\
# test profiles
profiles:
  pair:
    defaults: {{kubeconfig: "{kubeconfig}", context: sandbox, namespace: demo, address: 127.0.0.1}}
    forwards:
      - {{name: echo, target: svc/echo, ports: [":80"]}}
      - {{name: echo-pod, target: deploy/echo, ports: [":9000"]}}
    groups:
      one: [echo-pod]
  mixed:
    defaults: {{kubeconfig: "{kubeconfig}", context: sandbox, namespace: demo, address: 127.0.0.1}}
    forwards:
      - {{name: echo, target: svc/echo, ports: [":80"]}}
      - {{name: missing, target: svc/nope, ports: [":80"]}}
      - {{name: busy, target: svc/echo, ports: ["{busy}:80"]}}
  fragile:
    defaults: {{kubeconfig: "{kubeconfig}", context: sandbox, namespace: demo, address: 127.0.0.1}}
    forwards:
      - {{name: echo, target: svc/echo, ports: [":80"]}}
      - {{name: toolbox, target: pod/toolbox, ports: [":7000"], reconnect: false}}
  bare:
    description: "names no kubeconfig, context or namespace: \\e[31mred"
    forwards:
      - {{name: echo, target: svc/echo, ports: [":80"], address: 127.0.0.1}}
"""


@contextlib.contextmanager
def held_port() -> Iterator[int]:
    """A local port this test listens on, so nothing else can."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def setup(sandbox: SandboxCluster, tmp_path: Path) -> Iterator[tuple[dict[str, str], int]]:
    with held_port() as busy:
        env = private_env(tmp_path)
        write_private(
            tmp_path / "config" / "profiles.yaml", _profiles(sandbox.kubeconfig_path, busy)
        )
        yield env, busy


async def echo(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        async with asyncio.timeout(20):
            return await reader.readexactly(len(payload))
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@dataclass
class Up:
    proc: asyncio.subprocess.Process
    ports: dict[str, int] = field(default_factory=dict)
    stdout: list[str] = field(default_factory=list)
    stderr: str = ""
    code: int | None = None


@contextlib.asynccontextmanager
async def up(
    *args: str, env: dict[str, str], expect: list[str], stop: int = signal.SIGINT
) -> AsyncIterator[Up]:
    """`portfwd up ARGS` until every name in `expect` printed its Forwarding line; on exit
    SIGINT, then the exit code and stderr are collected."""
    proc = await asyncio.create_subprocess_exec(
        *PORTFWD,
        "up",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    run = Up(proc)
    try:
        assert proc.stdout is not None
        while set(expect) - set(run.ports):
            async with asyncio.timeout(30):
                raw = await proc.stdout.readline()
            if not raw:
                assert proc.stderr is not None
                raise AssertionError(f"portfwd up ended: {(await proc.stderr.read()).decode()}")
            line = raw.decode().rstrip("\n")
            run.stdout.append(line)
            match = LINE_RE.match(line)
            if match:
                run.ports[match.group(1)] = int(match.group(2))
        yield run
    finally:
        if proc.returncode is None:
            proc.send_signal(stop)
        try:
            async with asyncio.timeout(15):
                out, err = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        run.stdout += out.decode().splitlines()
        run.stderr = err.decode()
        run.code = proc.returncode


async def test_bytes_through_two_forwards_of_a_profile(setup: tuple[dict[str, str], int]) -> None:
    env, _ = setup
    async with up("pair", env=env, expect=["echo", "echo-pod"]) as run:
        assert await echo(run.ports["echo"], b"through the service") == b"through the service"
        assert await echo(run.ports["echo-pod"], b"x" * 100_000) == b"x" * 100_000
        assert run.ports["echo"] != run.ports["echo-pod"]
    assert run.code == 0, run.stderr
    for line in run.stdout:
        assert line.startswith(("echo: ", "echo-pod: ")), line
    assert f"echo: Handling connection for {run.ports['echo']}" in run.stdout


async def test_a_group_starts_only_its_forwards(setup: tuple[dict[str, str], int]) -> None:
    env, _ = setup
    async with up("pair", "one", env=env, expect=["echo-pod"], stop=signal.SIGTERM) as run:
        assert await echo(run.ports["echo-pod"], b"group") == b"group"
    assert run.code == 0, run.stderr
    assert not [line for line in run.stdout if line.startswith("echo: ")]
    assert list(run.ports) == ["echo-pod"]


async def test_dry_run_resolves_and_binds_nothing(
    setup: tuple[dict[str, str], int], sandbox: SandboxCluster
) -> None:
    env, busy = setup
    # `busy` is held by this test: the dry run says the real `up` could not listen there
    # (issue 18: it said "would listen on" it).
    code, out, err = await portfwd_async("up", "mixed", "--dry-run", env=env)
    assert code == 1  # svc/nope does not resolve, busy is held
    lines = out.splitlines()
    pods = sandbox.pod_names("demo", {"app": "echo"})
    assert len(lines) == 1
    echo_line = re.fullmatch(
        r"echo: svc/echo port 80 \(context sandbox, namespace demo\) -> pod (\S+) port 9000 "
        r"\(echo\); would listen on 127\.0\.0\.1 \(a free port\)",
        lines[0],
    )
    assert echo_line and echo_line.group(1) in pods
    assert err.splitlines() == [
        'missing: error: services "nope" not found in namespace "demo"',
        f"busy: error: local port {busy} is already in use on 127.0.0.1; pick another local "
        "port (:80 picks a free one) or stop the program using it",
    ]
    code, out, err = await portfwd_async("up", "pair", "one", "--dry-run", env=env)
    assert code == 0, err
    assert [line.split(":")[0] for line in out.splitlines()] == ["echo-pod"]


async def test_forwards_that_cannot_start_are_one_line_each_and_exit_1(
    setup: tuple[dict[str, str], int],
) -> None:
    env, busy = setup
    async with up("mixed", env=env, expect=["echo"]) as run:
        assert await echo(run.ports["echo"], b"still here") == b"still here"
    assert run.code == 1
    errors = sorted(run.stderr.splitlines())
    assert errors == [
        f"busy: error: local port {busy} is already in use on 127.0.0.1; pick another local "
        "port (:80 picks a free one) or stop the program using it",
        'missing: error: services "nope" not found in namespace "demo"',
    ]


async def test_a_forward_that_fails_later_is_one_line_the_others_keep_running(
    setup: tuple[dict[str, str], int], sandbox: SandboxCluster
) -> None:
    env, _ = setup
    async with up("fragile", env=env, expect=["echo", "toolbox"]) as run:
        assert run.proc.stderr is not None
        await sandbox.delete_pod("demo", "toolbox")  # reconnect: false -> it fails for good
        said = []
        async with asyncio.timeout(30):
            while not said or not said[-1].startswith("toolbox: error: "):
                line = (await run.proc.stderr.readline()).decode()
                assert line, f"stderr ended: {said}"
                said.append(line)
        assert all(line.startswith("toolbox: ") for line in said), said
        assert await echo(run.ports["echo"], b"unaffected") == b"unaffected"
    assert run.code == 1


async def test_all_or_nothing_ends_when_a_running_forward_fails_for_good(
    setup: tuple[dict[str, str], int], sandbox: SandboxCluster
) -> None:
    env, _ = setup
    async with up("fragile", "--all-or-nothing", env=env, expect=["echo", "toolbox"]) as run:
        await sandbox.delete_pod("demo", "toolbox")
        async with asyncio.timeout(30):
            await run.proc.wait()  # by itself: no signal
    assert run.code == 1
    assert any(line.startswith("toolbox: error: ") for line in run.stderr.splitlines())
    with pytest.raises(OSError):  # everything was stopped, echo too
        await echo(run.ports["echo"], b"gone")


async def test_global_options_fill_what_the_profile_leaves_out(
    setup: tuple[dict[str, str], int], sandbox: SandboxCluster
) -> None:
    env, _ = setup
    kc = str(sandbox.kubeconfig_path)
    args = ("--kubeconfig", kc, "--context", "sandbox", "up", "bare", "-n", "demo", "--dry-run")
    code, out, err = await portfwd_async(*args, env=env)
    assert code == 0, err
    assert out.startswith("echo: svc/echo port 80 (context sandbox, namespace demo) -> pod echo-")
    code, out, err = await portfwd_async(*args[:2], "up", "bare", "--kubeconfig", "x", env=env)
    assert code == 2
    assert "--kubeconfig is given twice with different values" in err
    listed = await portfwd_async("profile", "ls", env=env)
    assert "names no kubeconfig, context or namespace: \\x1b[31mred" in listed[1]


async def test_all_or_nothing_stops_everything(setup: tuple[dict[str, str], int]) -> None:
    env, _ = setup
    code, out, err = await portfwd_async("up", "mixed", "--all-or-nothing", env=env)
    assert code == 1
    assert out == ""  # nothing was listening by the time it said so
    lines = err.splitlines()
    assert lines[-1] == "error: not all forwards started (--all-or-nothing): stopped them all"
    assert sorted(line.split(":")[0] for line in lines[:-1]) == ["busy", "missing"]


def test_unknown_profile_or_group_names_the_known_ones(tmp_path: Path) -> None:
    env = private_env(tmp_path)
    path = write_private(tmp_path / "config" / "profiles.yaml", _profiles(tmp_path / "kc", 1))
    result = portfwd("up", "nope", env=env)
    assert result.returncode == 2
    assert (
        result.stderr
        == f'error: no profile "nope" in {path}; profiles: "pair", "mixed", "fragile", "bare"\n'
    )
    result = portfwd("up", "pair", "two", env=env)
    assert result.returncode == 2
    assert result.stderr == 'error: profile "pair" has no group "two"; groups: "one"\n'
    os.unlink(path)
    result = portfwd("up", "pair", env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("error: no profiles file ")


def test_a_broken_profile_is_not_started(tmp_path: Path) -> None:
    env = private_env(tmp_path)
    path = write_private(
        tmp_path / "p.yaml",
        "profiles:\n  dev:\n    forwards:\n      - {name: a, target: svc/x, ports: [80800]}\n",
    )
    result = portfwd("up", "--profiles", str(path), "dev", env=env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f'error: {path}:4:42: invalid remote port "80800" in "80800": ports are 1..65535; '
        "expected [LOCAL:]REMOTE, e.g. 8080:80, 80, :80 or 8443:https",
        'error: profile "dev" was not started: fix the above',
    ]


def test_a_kubeconfig_others_may_change_is_refused(tmp_path: Path) -> None:
    env = private_env(tmp_path)
    kubeconfig = write_private(tmp_path / "kc", "apiVersion: v1\nkind: Config\n")
    kubeconfig.chmod(0o620)
    write_private(tmp_path / "config" / "profiles.yaml", _profiles(kubeconfig, 1))
    result = portfwd("up", "pair", "--dry-run", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith(f'error: kubeconfig {kubeconfig} (named by profile "pair"')
    assert "is writable by group or others" in result.stderr


def test_profiles_before_up_and_a_did_you_mean(tmp_path: Path) -> None:
    """Issue 18 §5: `portfwd --profiles F up` means `up --profiles F`, as --context does;
    a typo gets a did-you-mean."""
    env = private_env(tmp_path)
    path = write_private(tmp_path / "mine.yaml", _profiles(tmp_path / "kc", 1))
    result = portfwd("--profiles", str(path), "up", "pair", "tow", env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr == 'error: profile "pair" has no group "tow"; groups: "one"\n'
    result = portfwd("--profiles", str(path), "up", "piar", env=env)
    assert result.returncode == 2
    assert result.stderr == (
        f'error: no profile "piar" in {path}; did you mean "pair"? '
        'profiles: "pair", "mixed", "fragile", "bare"\n'
    )
    result = portfwd("--profiles", str(path), "up", "pair", "--profiles", "other.yaml", env=env)
    assert result.returncode == 2
    assert "--profiles is given twice with different values" in result.stderr
    result = portfwd("--profiles", str(path), "forward", "svc/x", "80", env=env)
    assert result.returncode == 2
    assert "--profiles does not apply to 'portfwd forward'" in result.stderr


async def test_one_forward_listed_twice_starts_once(
    sandbox: SandboxCluster, tmp_path: Path
) -> None:
    """Issue 18 §2: a profile naming the same forward twice (an import beside a hand-written
    entry) starts it once and says so."""
    env = private_env(tmp_path)
    write_private(
        tmp_path / "config" / "profiles.yaml",
        f"""\
profiles:
  twice:
    defaults: {{kubeconfig: "{sandbox.kubeconfig_path}", context: sandbox, namespace: demo}}
    forwards:
      - {{name: echo, target: svc/echo, ports: [":80"], address: 127.0.0.1}}
      - {{name: echo-80, target: service/echo, ports: [":80"], address: 127.0.0.1}}
""",
    )
    async with up("twice", env=env, expect=["echo"]) as run:
        assert await echo(run.ports["echo"], b"once") == b"once"
    assert run.code == 0, run.stderr
    assert list(run.ports) == ["echo"]
    assert run.stderr.splitlines()[0] == (
        "echo-80: the same forward as echo (svc/echo 80 (context sandbox, namespace demo));"
        " started once"
    )


async def test_metrics_of_the_forwards_up_runs_here(setup: tuple[dict[str, str], int]) -> None:
    env, _ = setup
    async with up("pair", "--metrics", "127.0.0.1:0", env=env, expect=["echo", "echo-pod"]) as run:
        assert run.proc.stderr is not None
        async with asyncio.timeout(20):
            line = (await run.proc.stderr.readline()).decode()
        assert line.startswith("metrics on http://127.0.0.1:"), line
        url = line.split()[-1]
        host_port = url.removeprefix("http://").removesuffix("/metrics")
        host, _, port = host_port.rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        async with asyncio.timeout(20):
            text = (await reader.read(-1)).decode()
        writer.close()
        assert "portfwd_forward_up{" in text and 'forward="echo-pod"' in text
    assert run.code == 0, run.stderr
