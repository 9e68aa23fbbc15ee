"""`--no-reconnect` and `--ping-interval`: parsing, what reaches the engine, what is printed.

The subprocess tests against the sandbox need the engine's reconnect (Manager.set_reconnect,
ping_interval, the RECONNECTING state); the others run in-process on fakes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, cast

import pytest

from portfwd.cli import root as cli_module
from portfwd.cli.printer import Printer, print_events
from portfwd.engine.events import Event, ForwardChanged, LogLine
from portfwd.engine.launch import failed_for_good, watch
from portfwd.engine.manager import Manager, Subscription
from portfwd.engine.model import (
    ForwardSnapshot,
    ForwardSpec,
    ForwardState,
    LogEntry,
    LogKind,
    LogLevel,
)
from portfwd.sandbox.cluster import SandboxCluster
from tests.support.cli import forward_process

pytestmark = pytest.mark.timeout(120)


def _invoke(monkeypatch: pytest.MonkeyPatch, *args: str) -> dict[str, Any]:
    """Run the command line in-process with the command bodies replaced: their arguments."""
    seen: dict[str, Any] = {}

    def record(name: str) -> Any:
        def fake(**kwargs: Any) -> int:
            seen.update(kwargs, called=name)
            return 0

        return fake

    import portfwd.cli.forward
    import portfwd.demo
    import portfwd.tui.run

    monkeypatch.setattr(portfwd.cli.forward, "run_forward", record("forward"))
    monkeypatch.setattr(portfwd.tui.run, "run_tui", record("tui"))
    monkeypatch.setattr(portfwd.demo, "run_demo", record("demo"))
    with pytest.raises(SystemExit) as exit_info:
        cli_module.cli.main(list(args), prog_name="portfwd")
    assert exit_info.value.code == 0
    return seen


@pytest.mark.parametrize(
    ("args", "command", "ping", "reconnect"),
    [
        (("forward", "svc/web", "80"), "forward", 30.0, True),
        (("forward", "--no-reconnect", "svc/web", "80"), "forward", 30.0, False),
        (("forward", "--ping-interval", "0", "svc/web", "80"), "forward", 0.0, True),
        (("forward", "--ping-interval", "2.5", "svc/web", "80"), "forward", 2.5, True),
        ((), "tui", 30.0, None),
        (("--ping-interval", "10"), "tui", 10.0, None),
        (("demo",), "demo", 30.0, None),
        (("demo", "--ping-interval", "0"), "demo", 0.0, None),
    ],
)
def test_options_reach_the_command(
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    command: str,
    ping: float,
    reconnect: bool | None,
) -> None:
    seen = _invoke(monkeypatch, *args)
    assert seen["called"] == command
    assert seen["ping_interval"] == ping
    if reconnect is not None:
        assert seen["reconnect"] is reconnect


class _Stream:
    """A subscription that yields the given events, then ends."""

    def __init__(self, events: list[Event]) -> None:
        self.events = events

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[Event]:
        for event in self.events:
            yield event

    def close(self) -> None:
        pass


def _line(level: LogLevel, message: str, kind: LogKind = LogKind.NOTE) -> LogLine:
    return LogLine("f1", LogEntry(0.0, level, message, kind))


async def _printed(events: list[Event], *, started: bool = True) -> tuple[list[str], list[str]]:
    out: list[str] = []
    err: list[str] = []
    printer = Printer(out.append, err.append)
    if started:
        printer.started()
    await print_events(cast(Subscription, _Stream(events)), lambda fid: printer)
    return out, err


async def test_recovery_lines_go_to_stderr_and_stdout_stays_kubectl() -> None:
    events: list[Event] = [
        _line(LogLevel.INFO, "resolving svc/web port 80 in demo", LogKind.RESOLVED),
        _line(
            LogLevel.WARNING,
            "reconnecting (attempt 2, next try in 0.8 s): pod web-1 deleted",
            LogKind.RECONNECTING,
        ),
        _line(LogLevel.INFO, "switched to pod web-2 (was web-1)", LogKind.RECOVERED),
        _line(LogLevel.INFO, "active again: pod web-2 port 8080", LogKind.RECOVERED),
        _line(LogLevel.INFO, "Handling connection for 8080", LogKind.CONNECTION),
        _line(LogLevel.ERROR, "pod/web-2 was deleted; waiting for it", LogKind.GONE),
        _line(LogLevel.ERROR, "pod web-2 was deleted", LogKind.FAILED),  # printed once, by the CLI
        _line(LogLevel.DEBUG, "active again (a debug line is not shown)"),
    ]
    out, err = await _printed(events)
    assert out == ["Handling connection for 8080"]
    assert err == [
        "warning: reconnecting (attempt 2, next try in 0.8 s): pod web-1 deleted",
        "switched to pod web-2 (was web-1)",
        "active again: pod web-2 port 8080",
        "warning: pod/web-2 was deleted; waiting for it",
    ]


async def test_lines_are_chosen_by_kind_not_by_words() -> None:
    events: list[Event] = [
        _line(LogLevel.INFO, "active again: a note that only looks like a recovery"),
        _line(LogLevel.INFO, "Handling connection for 1 (a note, not a connection)"),
        _line(LogLevel.INFO, "any words at all", LogKind.CONNECTION),
    ]
    out, err = await _printed(events)
    assert out == ["any words at all"]
    assert err == []


async def test_a_failed_first_start_says_its_reason_once() -> None:
    """`forward pod/crashy`: the "waiting" warning restates the reason the start fails with;
    the CLI's one `error:` line is enough (issue 12). Other warnings still show."""
    events: list[Event] = [
        _line(
            LogLevel.WARNING,
            "waiting: pod crashy is Running but not Ready (CrashLoopBackOff)",
            LogKind.WAITING,
        ),
        _line(LogLevel.WARNING, "cannot listen on [::1]:8080; listening on 127.0.0.1 only"),
    ]
    out, err = await _printed(events, started=False)
    assert out == []
    assert err == ["warning: cannot listen on [::1]:8080; listening on 127.0.0.1 only"]


def _snap(
    state: ForwardState, *, reconnect: bool, bound: bool, reason: str = ""
) -> ForwardSnapshot:
    return ForwardSnapshot(
        id="f1",
        spec=ForwardSpec(target="pod/toolbox", remote_port=7000, reconnect=reconnect),
        state=state,
        bound=(("127.0.0.1", 7000),) if bound else (),
        reason=reason,
    )


@pytest.mark.parametrize(
    ("state", "reconnect", "bound", "ends"),
    [
        (ForwardState.ERROR, False, False, True),  # --no-reconnect: any failure ends it
        (ForwardState.ERROR, False, True, True),
        (ForwardState.ERROR, True, False, True),  # permanent: nothing left to wait for
        (ForwardState.ERROR, True, True, False),  # waits for its pod to return
        (ForwardState.RECONNECTING, True, True, False),
        (ForwardState.ACTIVE, False, True, False),
    ],
)
def test_which_failures_end_the_command(
    state: ForwardState, reconnect: bool, bound: bool, ends: bool
) -> None:
    assert failed_for_good(_snap(state, reconnect=reconnect, bound=bound)) is ends


class _OneForward:
    """An engine with one forward whose snapshot follows the events as they are read."""

    def __init__(self, snap: ForwardSnapshot, events: list[Event]) -> None:
        self.snap = snap
        self.events = events

    def get(self, forward_id: str) -> ForwardSnapshot:
        return self.snap

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        return cast(Subscription, _Following(self))


class _Following(_Stream):
    def __init__(self, engine: _OneForward) -> None:
        super().__init__(engine.events)
        self.engine = engine

    async def _iter(self) -> AsyncIterator[Event]:
        for event in self.events:
            if isinstance(event, ForwardChanged) and event.snapshot.id == self.engine.snap.id:
                self.engine.snap = event.snapshot
            yield event


async def test_lost_returns_the_reason_of_the_first_final_failure() -> None:
    active = _snap(ForwardState.ACTIVE, reconnect=False, bound=True)
    gone = replace(active, state=ForwardState.ERROR, bound=(), reason="pod toolbox was deleted")
    other = replace(gone, id="other", reason="not ours")
    events: list[Event] = [ForwardChanged(other), ForwardChanged(active), ForwardChanged(gone)]
    engine = cast(Manager, _OneForward(active, events))
    lost = await watch(engine, ["f1"], asyncio.Event(), lambda snap: None, all_or_nothing=True)
    assert [s.reason for s in lost] == ["pod toolbox was deleted"]
    # The stream ending (the command stops) is not a failure.
    engine = cast(Manager, _OneForward(active, []))
    assert await watch(engine, ["f1"], asyncio.Event(), lambda snap: None) == []


# -- against the sandbox (these need the engine's reconnect) ----------------------------------


async def test_no_reconnect_exits_1_with_the_reason_when_the_pod_is_deleted(
    sandbox: SandboxCluster,
) -> None:
    kc = str(sandbox.kubeconfig_path)
    args = ("--kubeconfig", kc, "--address", "127.0.0.1", "--no-reconnect", "pod/toolbox", ":7000")
    async with forward_process(*args, expect_lines=1) as fp:
        await sandbox.delete_pod("demo", "toolbox")
        code = await fp.wait()
    assert code == 1
    lines = fp.stderr_text.strip().splitlines()
    assert "Traceback" not in fp.stderr_text
    assert lines and lines[-1].startswith("error: "), fp.stderr_text
    assert "toolbox" in lines[-1]
    assert "waiting" not in lines[-1]  # it does not wait: it exits (issue 12)
    assert not any(line.startswith("warning: reconnecting") for line in lines)
    assert [line for line in fp.stdout_lines if not line.startswith("Forwarding from")] == []


async def test_with_reconnect_a_deleted_pod_is_followed_and_the_forward_keeps_working(
    sandbox: SandboxCluster,
) -> None:
    kc = str(sandbox.kubeconfig_path)
    args = ("--kubeconfig", kc, "--address", "127.0.0.1", "svc/echo", ":80")
    async with forward_process(*args, expect_lines=1) as fp:
        (port,) = fp.ports
        for pod in sandbox.pod_names("demo", {"app": "echo"}):
            await sandbox.delete_pod("demo", pod)
        line = await fp.err_line_matching(
            lambda s: s.startswith(("switched to pod", "active again")), limit=60
        )
        assert "pod" in line
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"still here")
        assert await asyncio.wait_for(reader.readexactly(10), 10) == b"still here"
        writer.close()
        assert fp.proc.returncode is None  # kept running through the failure
    assert fp.returncode == 0
    assert not any(s.startswith("error:") for s in fp.stderr_lines)
    assert "Traceback" not in fp.stderr_text


async def test_with_reconnect_a_deleted_pod_target_keeps_its_port_and_waits(
    sandbox: SandboxCluster,
) -> None:
    kc = str(sandbox.kubeconfig_path)
    args = ("--kubeconfig", kc, "--address", "127.0.0.1", "pod/toolbox", ":7000")
    async with forward_process(*args, expect_lines=1) as fp:
        await sandbox.delete_pod("demo", "toolbox")
        # The user is told the pod is gone and that portfwd waits for it (not left guessing).
        await fp.err_line_matching(
            lambda s: s.startswith("warning: ") and "pod/toolbox was deleted" in s and "wait" in s,
            limit=60,
        )
        # Still running (waiting for the pod to return): Ctrl-C ends it with 0.
        assert fp.proc.returncode is None
    assert fp.returncode == 0
    assert "error:" not in fp.stderr_text
