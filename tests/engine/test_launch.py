"""The one start policy (engine/launch.py), on a fake engine: what is removed, what gets its
reconnect back, what Ctrl-C does."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any, cast

import pytest

from portfwd.engine.api import EngineAPI
from portfwd.engine.launch import launch
from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState
from portfwd.errors import InputError


class _Engine:
    """Forwards whose start ends in the state `outcome` names for their target."""

    def __init__(self, outcome: dict[str, ForwardState], hang: bool = False) -> None:
        self.outcome = outcome
        self.hang = hang
        self.forwards: dict[str, ForwardSnapshot] = {}
        self.calls: list[tuple[str, Any]] = []

    async def add(
        self, spec: ForwardSpec, *, start: bool = True, forward_id: str | None = None
    ) -> str:
        if spec.name == "taken":
            raise InputError("the name 'taken' is already used")
        fid = f"f{len(self.forwards) + 1}"
        self.forwards[fid] = ForwardSnapshot(fid, spec, ForwardState.STOPPED)
        self.calls.append(("add", spec.reconnect))
        return fid

    async def start(self, forward_id: str) -> ForwardSnapshot:
        if self.hang:
            await asyncio.Event().wait()
        snap = self.forwards[forward_id]
        state = self.outcome[snap.spec.target]
        reason = "" if state is ForwardState.ACTIVE else "no Ready pod"
        self.forwards[forward_id] = replace(snap, state=state, reason=reason)
        return self.forwards[forward_id]

    async def remove(self, forward_id: str) -> None:
        self.calls.append(("remove", forward_id))
        self.forwards.pop(forward_id)

    async def set_reconnect(self, forward_id: str, enabled: bool) -> None:
        self.calls.append(("set_reconnect", forward_id))


def _spec(target: str, **kw: Any) -> ForwardSpec:
    return ForwardSpec(target=target, remote_port=80, **kw)


OUTCOME = {"svc/a": ForwardState.ACTIVE, "svc/b": ForwardState.ERROR, "svc/c": ForwardState.ACTIVE}


async def test_failures_are_removed_and_only_started_ones_reconnect() -> None:
    engine = _Engine(OUTCOME)
    specs = [_spec("svc/a"), _spec("svc/b"), _spec("svc/c", reconnect=False)]
    done = await launch(cast(EngineAPI, engine), specs)
    assert [s.spec.target for s in done.active] == ["svc/a", "svc/c"]
    assert [(s.spec.target, s.reason) for s in done.failed] == [("svc/b", "no Ready pod")]
    assert [s.spec.target for s in done.results] == ["svc/a", "svc/b", "svc/c"]
    assert ("add", True) not in engine.calls  # every forward starts without reconnect
    assert ("remove", "f2") in engine.calls
    assert [c for c in engine.calls if c[0] == "set_reconnect"] == [("set_reconnect", "f1")]
    assert sorted(engine.forwards) == ["f1", "f3"]


async def test_all_or_nothing_removes_the_started_ones_too() -> None:
    engine = _Engine(OUTCOME)
    done = await launch(
        cast(EngineAPI, engine), [_spec("svc/a"), _spec("svc/b")], all_or_nothing=True
    )
    assert (done.active, done.aborted) == ([], True)
    assert engine.forwards == {}
    assert not [c for c in engine.calls if c[0] == "set_reconnect"]


async def test_a_refused_spec_leaves_nothing_behind() -> None:
    engine = _Engine(OUTCOME)
    with pytest.raises(InputError):
        await launch(cast(EngineAPI, engine), [_spec("svc/a"), _spec("svc/c", name="taken")])
    assert engine.forwards == {}


async def test_ctrl_c_while_starting_ends_the_launch() -> None:
    engine = _Engine(OUTCOME, hang=True)
    stop = asyncio.Event()
    task = asyncio.create_task(launch(cast(EngineAPI, engine), [_spec("svc/a")], stop=stop))
    stop.set()
    done = await asyncio.wait_for(task, 10)
    assert done.interrupted and done.active == []
