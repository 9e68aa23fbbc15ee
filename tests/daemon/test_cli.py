"""`portfwd ls|add|start|stop|restart|rm|logs` as real subprocesses, against a real
`portfwd daemon` process and the sandbox cluster: exit codes, the one `error:` line, and bytes
really flowing through the daemon's forwards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from portfwd.sandbox.cluster import SandboxCluster
from tests.hostile import SHOWN_OSC52, forbidding_api, raw_found
from tests.support.cli import PORTFWD, Ran, portfwd_async, with_env
from tests.support.wait import until

from .conftest import DaemonProcess, Dirs, daemon_process

pytestmark = pytest.mark.timeout(120)

NO_DAEMON, NOT_FOUND = 3, 4


# -- helpers (test_service.py uses them too) -----------------------------------------------


async def portfwd(*args: str, limit: float = 60.0, env: dict[str, str] | None = None) -> Ran:
    """`portfwd ARGS` to its end; `env` holds overrides on top of this process's environment."""
    return await portfwd_async(*args, env=with_env(**(env or {})), limit=limit)


async def forwards() -> list[dict[str, Any]]:
    """`portfwd ls -o json`'s forwards."""
    ls = await portfwd("ls", "-o", "json")
    assert ls.code == 0, ls.err
    found = json.loads(ls.out)["forwards"]
    assert isinstance(found, list)
    return found


async def forward_named(name: str) -> dict[str, Any]:
    matching = [f for f in await forwards() if f["spec"].get("name") == name]
    assert len(matching) == 1, matching
    return matching[0]


async def active(name: str) -> dict[str, Any]:
    """The forward once `ls` shows it active (bounded)."""

    async def check() -> dict[str, Any] | None:
        fwd = await forward_named(name)
        return fwd if fwd["state"] == "active" else None

    found: dict[str, Any] = await until(check)
    return found


async def echo_through(port: int, size: int = 200_000) -> None:
    """Send `size` random bytes to 127.0.0.1:PORT and read the same bytes back."""
    payload = os.urandom(size)
    async with asyncio.timeout(30):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:

            async def send() -> None:
                writer.write(payload)
                await writer.drain()

            _, echoed = await asyncio.gather(send(), reader.readexactly(size))
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    assert echoed == payload


async def refused(port: int) -> bool:
    try:
        async with asyncio.timeout(10):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    return False


def add_echo(*extra: str) -> tuple[str, ...]:
    return ("add", "-n", "demo", "--address", "127.0.0.1", *extra, "svc/echo", ":80")


@pytest_asyncio.fixture
async def running(
    dirs: Dirs, sandbox: SandboxCluster, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[DaemonProcess]:
    """A `portfwd daemon` process; every child of the test sees the sandbox's kubeconfig."""
    monkeypatch.setenv("KUBECONFIG", str(sandbox.kubeconfig_path))
    async with daemon_process(dirs) as proc:
        yield proc


# -- tests ----------------------------------------------------------------------------------


async def test_ls_without_a_daemon_says_how_to_start_one(dirs: Dirs) -> None:
    ls = await portfwd("ls")
    assert ls.code == NO_DAEMON, ls
    assert ls.out == ""
    assert "portfwd daemon --detach" in ls.one_error()


async def test_add_shows_in_every_listing_and_carries_bytes(
    running: DaemonProcess, sandbox: SandboxCluster
) -> None:
    add = await portfwd(*add_echo())
    assert add.code == 0, add.err
    assert add.err == ""
    assert len(add.out_lines) == 1, add.out
    label, where, state = add.out_lines[0].split("\t")
    shown = re.fullmatch(r"svc/echo 127\.0\.0\.1:(\d+)->80→\d+", where)  # 80→pod's port
    assert shown, where
    assert state == "active"

    [fwd] = await forwards()
    assert fwd["id"] == label
    assert fwd["state"] == "active"
    assert fwd["spec"]["target"] == "svc/echo"
    assert fwd["namespace"] == "demo"
    assert fwd["pod"] in sandbox.pod_names("demo", {"app": "echo"})
    port = fwd["local_port"]
    assert isinstance(port, int) and port > 0
    assert fwd["bound"] == [["127.0.0.1", port]]
    assert int(shown.group(1)) == port

    table = await portfwd("ls")
    assert table.code == 0, table.err
    header, row = table.out_lines
    assert header.split()[:5] == ["NAME", "STATUS", "CONTEXT", "NAMESPACE", "TARGET"]
    assert row.split()[:5] == [label, "active", "sandbox", "demo", "svc/echo"]
    assert f"127.0.0.1:{port}->80" in row

    wide = await portfwd("ls", "-o", "wide")
    assert wide.code == 0, wide.err
    header, row = wide.out_lines
    assert header.split()[5:7] == ["ID", "POD"]
    assert row.split()[5:7] == [label, fwd["pod"]]

    as_yaml = await portfwd("ls", "-o", "yaml")
    assert as_yaml.code == 0, as_yaml.err
    [from_yaml] = yaml.safe_load(as_yaml.out)["forwards"]
    assert (from_yaml["id"], from_yaml["state"], from_yaml["local_port"]) == (label, "active", port)

    await echo_through(port, size=150_000)

    async def counted() -> bool:
        stats = (await forward_named_id(label))["stats"]
        return bool(stats["bytes_in"] >= 150_000 and stats["bytes_out"] >= 150_000)

    await until(counted)


async def forward_named_id(fid: str) -> dict[str, Any]:
    [fwd] = [f for f in await forwards() if f["id"] == fid]
    return fwd


async def test_named_forward_stop_start_restart_rm(running: DaemonProcess) -> None:
    add = await portfwd(*add_echo("--name", "one"))
    assert add.code == 0, add.err
    assert add.out_lines[0].split("\t")[0] == "one"
    port = (await active("one"))["local_port"]
    await echo_through(port)

    stop = await portfwd("stop", "one")
    assert stop.code == 0, stop.err
    assert stop.out_lines[0].startswith("one\t") and stop.out_lines[0].endswith("\tstopped")
    assert (await forward_named("one"))["state"] == "stopped"
    assert await refused(port)

    start = await portfwd("start", "one")
    assert start.code == 0, start.err
    assert start.out_lines[0].endswith("\tactive"), start.out
    await echo_through((await active("one"))["local_port"])

    restart = await portfwd("restart", "one")
    assert restart.code == 0, restart.err
    assert restart.out_lines[0].endswith("\tactive"), restart.out
    await echo_through((await active("one"))["local_port"])

    rm = await portfwd("rm", "one")
    assert (rm.code, rm.out_lines) == (0, ["removed one"]), rm.err
    assert await forwards() == []


async def test_all_variants(running: DaemonProcess) -> None:
    for name in ("a", "b"):
        add = await portfwd(*add_echo("--name", name))
        assert add.code == 0, add.err
    assert [f["state"] for f in await forwards()] == ["active", "active"]

    stop = await portfwd("stop", "--all")
    assert stop.code == 0, stop.err
    assert len(stop.out_lines) == 2 and all(line.endswith("\tstopped") for line in stop.out_lines)
    assert [f["state"] for f in await forwards()] == ["stopped", "stopped"]

    for op in ("start", "restart"):
        done = await portfwd(op, "--all")
        assert done.code == 0, (op, done.err)
        assert len(done.out_lines) == 2, done.out
        for name in ("a", "b"):
            await echo_through((await active(name))["local_port"])

    for wrong in (("stop",), ("stop", "--all", "a")):
        usage = await portfwd(*wrong)
        assert usage.code == 2, (wrong, usage)
        usage.one_error()

    rm = await portfwd("rm", "--all")
    assert rm.code == 0, rm.err
    assert len(rm.out_lines) == 2 and all(line.startswith("removed ") for line in rm.out_lines)
    assert await forwards() == []


async def test_a_name_is_used_once(running: DaemonProcess) -> None:
    first = await portfwd(*add_echo("--name", "same"))
    assert first.code == 0, first.err
    again = await portfwd(*add_echo("--name", "same"))
    assert again.code == 2, again
    assert "same" in again.one_error()
    assert again.out == ""
    assert [f["spec"].get("name") for f in await forwards()] == ["same"]


async def test_a_missing_service_is_not_added(running: DaemonProcess) -> None:
    add = await portfwd("add", "-n", "demo", "--address", "127.0.0.1", "svc/nope", ":80")
    assert add.code == 1, add
    line = add.one_error()
    assert "svc/nope" in line and "not added" in line, line
    assert add.out == ""
    assert await forwards() == []
    ls = await portfwd("ls")
    assert (ls.code, ls.out_lines) == (0, ["no forwards (add one: portfwd add svc/NAME 8080:80)"])


@pytest.mark.parametrize(
    "args",
    [
        ("bad/echo", ":80"),
        ("svc/Not_A_Name", ":80"),
        ("svc/echo", "99999"),
        ("svc/echo", "80:0"),
        ("svc/echo", "tcp"),
        ("svc/echo", "x:y:z"),
    ],
)
async def test_bad_target_or_port_is_refused_before_the_daemon(
    dirs: Dirs, args: tuple[str, ...]
) -> None:
    """No daemon runs: a 2 (not a 3) shows the input was refused before trying to reach it."""
    add = await portfwd("add", *args)
    assert add.code == 2, add
    add.one_error()
    assert add.out == ""


async def test_unknown_forward_is_exit_4(running: DaemonProcess) -> None:
    for op in ("stop", "start", "restart", "rm", "logs"):
        result = await portfwd(op, "ghost")
        assert result.code == NOT_FOUND, (op, result)
        assert "ghost" in result.one_error()
    known = await portfwd(*add_echo("--name", "real"))
    assert known.code == 0, known.err
    mixed = await portfwd("stop", "real", "ghost")
    assert mixed.code == NOT_FOUND, mixed
    assert "ghost" in mixed.one_error()
    assert mixed.out_lines[0].startswith("real\t")  # the known one was stopped all the same
    assert (await forward_named("real"))["state"] == "stopped"


async def test_logs_show_the_forwarding_lines(running: DaemonProcess) -> None:
    add = await portfwd(*add_echo("--name", "lg"))
    assert add.code == 0, add.err
    port = (await active("lg"))["local_port"]
    logs = await portfwd("logs", "lg")
    assert logs.code == 0, logs.err
    assert any(f"Forwarding from 127.0.0.1:{port} -> " in line for line in logs.out_lines), logs.out


async def test_logs_without_a_forward_shows_every_forward(running: DaemonProcess) -> None:
    """`portfwd logs --help`: "no FORWARD: every forward's, and the daemon's own lines"
    (as `logs -f` does), each line prefixed by the forward's name."""
    for name in ("l1", "l2"):
        add = await portfwd(*add_echo("--name", name))
        assert add.code == 0, add.err
    ports = {name: (await active(name))["local_port"] for name in ("l1", "l2")}
    everything = await portfwd("logs")
    assert everything.code == 0, everything.err
    for name, port in ports.items():
        assert any(
            f"{name}: Forwarding from 127.0.0.1:{port}" in line for line in everything.out_lines
        ), everything.out


async def test_logs_follow_prints_new_connections_and_ends_on_ctrl_c(
    running: DaemonProcess,
) -> None:
    add = await portfwd(*add_echo("--name", "fl"))
    assert add.code == 0, add.err
    port = (await active("fl"))["local_port"]
    proc = await asyncio.create_subprocess_exec(
        *PORTFWD,
        "logs",
        "-f",
        "fl",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    seen: list[str] = []

    async def line_with(text: str) -> str:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            while True:
                raw = await proc.stdout.readline()
                assert raw, f"logs -f ended; it printed {seen}"
                seen.append(raw.decode().rstrip("\n"))
                if text in seen[-1]:
                    return seen[-1]

    try:
        await line_with(f"Forwarding from 127.0.0.1:{port}")  # the history comes first
        assert not any("Handling connection" in line for line in seen)
        await echo_through(port, size=1000)
        await line_with(f"Handling connection for {port}")
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            _, err = await proc.communicate()
        assert proc.returncode == 0, err
        assert err == b""
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize(
    "args",
    [
        ("--context", "x", "ls"),
        ("--kubeconfig", "/nowhere", "logs"),
        ("--protocol", "spdy", "stop", "--all"),
    ],
)
async def test_a_global_option_the_command_does_not_take(dirs: Dirs, args: tuple[str, ...]) -> None:
    result = await portfwd(*args)
    assert result.code == 2, result
    assert f"{args[0]} does not apply" in result.one_error()
    assert result.out == ""


async def test_control_characters_in_a_reason_are_escaped(
    running: DaemonProcess, tmp_path: Path
) -> None:
    """An API server whose refusal holds OSC 52, CSI 2J, BEL, a newline and a bidi override:
    none of it reaches stdout or stderr raw, whichever command shows it."""
    async with forbidding_api(tmp_path) as kubeconfig:
        kc = str(kubeconfig)
        add = await portfwd("add", "--kubeconfig", kc, "--address", "127.0.0.1", "svc/web", ":80")
        assert add.code == 1, add
        assert SHOWN_OSC52 in add.one_error().encode()
        assert raw_found(add.raw_out + add.raw_err) == []

        kept = await portfwd(
            "add",
            "--kubeconfig",
            kc,
            "--address",
            "127.0.0.1",
            "--no-start",
            "--name",
            "evil",
            "svc/web",
            ":80",
        )
        assert kept.code == 0, kept.err
        start = await portfwd("start", "evil")
        assert raw_found(start.raw_out + start.raw_err) == []

        async def failed() -> bool:
            return bool((await forward_named("evil"))["reason"])

        await until(failed)
        outputs = [start]
        for args in (
            ("ls",),
            ("ls", "-o", "wide"),
            ("ls", "-o", "json"),
            ("ls", "-o", "yaml"),
            ("logs", "evil"),
            ("logs",),
        ):
            result = await portfwd(*args)
            assert result.code == 0, (args, result.err)
            outputs.append(result)
        for result in outputs:
            assert raw_found(result.raw_out + result.raw_err) == [], result
        reason = json.loads(outputs[3].out)["forwards"][0]["reason"]
        assert "\x1b]52;c;" in reason  # the data keeps the text; only its display is escaped
        assert yaml.safe_load(outputs[4].out)["forwards"][0]["reason"] == reason
        assert SHOWN_OSC52 in outputs[5].raw_out  # `logs evil` shows it, escaped
