"""`portfwd run ... -- COMMAND` as a real subprocess against the sandbox, forwards in its own
process (no daemon runs: the session's runtime dir is private and empty): bytes through the
variables, the command's status passed on, signals passed to it, the port gone afterwards,
and the one-line failures with their exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import pytest

from portfwd.sandbox.cluster import SandboxCluster
from tests.support.cli import PORTFWD, Ran, portfwd_async
from tests.support.wait import eventually

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

NOT_READY, NO_SUCH_COMMAND, USAGE = 124, 127, 2

# Sends bytes through the forward named by the variables and checks the echo; prints the port.
ECHO_CLIENT = """
import os, socket, sys
port = int(os.environ["PORTFWD_ECHO_PORT"])
assert os.environ["PORTFWD_ECHO_ADDR"] == os.environ["PORTFWD_ECHO_HOST"] + ":" + str(port)
assert sys.argv[1] == str(port), sys.argv
payload = os.urandom(100_000)
with socket.create_connection((os.environ["PORTFWD_ECHO_HOST"], port), timeout=20) as s:
    s.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = s.recv(65536)
        assert chunk, "closed early"
        got += chunk
assert got == payload
print(port, flush=True)
sys.exit(7)
"""


def kube(sandbox: SandboxCluster) -> tuple[str, ...]:
    return ("--kubeconfig", str(sandbox.kubeconfig_path), "-n", "demo")


async def refused(port: int) -> bool:
    try:
        async with asyncio.timeout(10):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    return False


async def test_bytes_flow_through_the_variables_and_the_status_is_the_commands(
    sandbox: SandboxCluster,
) -> None:
    ran = await portfwd_async(
        "run", *kube(sandbox), "svc/echo", ":80", "--", sys.executable, "-c", ECHO_CLIENT,
        "{echo.port}",
    )  # fmt: skip
    assert ran.code == 7, ran
    assert ran.err == ""
    port = int(ran.out.strip())
    assert await refused(port), "the forward outlived the command"


async def test_a_command_that_does_not_exist_is_one_line_and_127(sandbox: SandboxCluster) -> None:
    ran = await portfwd_async("run", *kube(sandbox), "svc/echo", ":80", "--", "no-such-cmd-x")
    assert ran.code == NO_SUCH_COMMAND, ran
    assert ran.one_error() == "error: no-such-cmd-x: no such command"


async def test_a_command_killed_by_a_signal_exits_128_plus_n(sandbox: SandboxCluster) -> None:
    kill_self = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    ran = await portfwd_async("run", *kube(sandbox), "svc/echo", ":80", "--", sys.executable,
                              "-c", kill_self)  # fmt: skip
    assert ran.code == 128 + signal.SIGKILL, ran


async def test_a_forward_not_ready_in_time_is_named_and_the_command_never_starts(
    sandbox: SandboxCluster, tmp_path: Path
) -> None:
    marker = tmp_path / "started"
    touch = f"open({str(marker)!r}, 'w').close()"
    ran = await portfwd_async(
        "run", *kube(sandbox), "svc/crashy", ":80", "--timeout", "1s", "--",
        sys.executable, "-c", touch,
    )  # fmt: skip
    assert ran.code == NOT_READY, ran
    line = ran.one_error()
    assert line.startswith("error: crashy: not ready after 1s: "), line
    assert "has no Ready pod" in line
    assert not marker.exists()


async def test_a_target_that_does_not_exist_fails_at_once(sandbox: SandboxCluster) -> None:
    ran = await portfwd_async("run", *kube(sandbox), "svc/nope", ":80", "--", "true")
    assert ran.code == NOT_READY, ran
    assert ran.one_error().startswith("error: nope: not ready: "), ran.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["svc/echo", ":80"], "give the command after '--'"),
        (["svc/echo", ":80", "--"], "no COMMAND after '--'"),
        (["svc/web", ":80", ":80", "--", "true"], 'forwards "web-80" and "web-80" are both'),
        (["svc/echo", ":80", "--", "echo", "{db.port}"], '"{db.port}" names no forward'),
    ],
)
async def test_usage_mistakes_start_nothing(
    sandbox: SandboxCluster, args: list[str], message: str
) -> None:
    ran = await portfwd_async("run", *kube(sandbox), *args)
    assert ran.code == USAGE, ran
    assert message in ran.one_error()


async def _started(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        line = await proc.stdout.readline()
    assert line, "the command never started"
    return line.decode().strip()


async def _finish(proc: asyncio.subprocess.Process) -> Ran:
    try:
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_signals_reach_the_command(sandbox: SandboxCluster, sig: signal.Signals) -> None:
    """A signal to portfwd (Ctrl-C from a script, a supervisor's SIGTERM) is the command's to
    handle: its handler runs and its status is portfwd's."""
    waits = f"""
import os, signal, sys, threading
got = threading.Event()
signal.signal({int(sig)}, lambda *_: got.set())
print(os.environ["PORTFWD_ECHO_PORT"], flush=True)
got.wait(60)
sys.exit(42 if got.is_set() else 1)
"""
    proc = await asyncio.create_subprocess_exec(
        *PORTFWD, "run", *kube(sandbox), "svc/echo", ":80", "--", sys.executable, "-c", waits,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        port = int(await _started(proc))
        proc.send_signal(sig)
    finally:
        ran = await _finish(proc)
    assert ran.code == 42, ran
    assert await refused(port)


def _catches(pid: int, sig: signal.Signals) -> bool:
    """The process has a handler for `sig` (Linux: SigCgt in /proc): portfwd sets its own for
    SIGINT and SIGTERM together, once it starts the forwards (Python catches SIGINT from the
    start, so SIGTERM tells)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (sig - 1)))


async def test_an_interrupt_before_the_command_stops_everything(sandbox: SandboxCluster) -> None:
    """Ctrl-C while a forward is still getting ready: nothing starts, exit 130."""
    proc = await asyncio.create_subprocess_exec(
        *PORTFWD, "run", *kube(sandbox), "svc/crashy", ":80", "--timeout", "0", "--", "true",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await eventually(lambda: _catches(proc.pid, signal.SIGTERM), limit=30)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
    finally:
        ran = await _finish(proc)
    assert ran.code == 130, ran


def _profiles(tmp_path: Path, sandbox: SandboxCluster, forwards: str) -> Path:
    path = tmp_path / "profiles.yaml"
    path.write_text(
        f"""\
profiles:
  dev:
    defaults: {{kubeconfig: "{sandbox.kubeconfig_path}", namespace: demo, address: 127.0.0.1}}
    forwards:
{forwards}"""
    )
    path.chmod(0o600)
    return path


async def test_a_profile_runs_with_a_variable_per_forward(
    sandbox: SandboxCluster, tmp_path: Path
) -> None:
    profiles = _profiles(
        tmp_path,
        sandbox,
        "      - {name: echo, target: svc/echo, ports: [':80']}\n"
        "      - {name: my-web, target: svc/web, ports: [':80']}\n",
    )
    show = "import os; print(os.environ['PORTFWD_ECHO_PORT'], os.environ['PORTFWD_MY_WEB_PORT'])"
    ran = await portfwd_async(
        "run", "--profile", "dev", "--profiles", str(profiles), "--", sys.executable, "-c", show,
    )  # fmt: skip
    assert ran.code == 0, ran
    echo, web = (int(p) for p in ran.out.split())
    assert echo != web
    assert await refused(echo) and await refused(web)


async def test_profile_names_that_give_one_variable_are_refused(
    sandbox: SandboxCluster, tmp_path: Path
) -> None:
    profiles = _profiles(
        tmp_path,
        sandbox,
        "      - {name: my-db, target: svc/echo, ports: [':80']}\n"
        "      - {name: my.db, target: svc/web, ports: [':80']}\n",
    )
    ran = await portfwd_async("run", "--profile", "dev", "--profiles", str(profiles), "--", "true")
    assert ran.code == USAGE, ran
    assert ran.one_error() == (
        'error: forwards "my-db" and "my.db" map to the same variables (PORTFWD_MY_DB_PORT); '
        "give them distinct names (--name, or the profile's names)"
    )
