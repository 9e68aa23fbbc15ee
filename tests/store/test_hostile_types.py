"""Hardening (issue 8, item 5): loose types are refused at every boundary, with one message.

`running: 'no'` in the session file read as true (and restarted the forward); `remote_port:
-5`, `10**12` and `addresses: [not-an-ip]` passed the loader; the engine accepted
`local_port=99999` and died in an OverflowError traceback when it bound. One validation
(ForwardSpec's) serves the session file, the command line and the engine API.
"""

from __future__ import annotations

import string
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec
from portfwd.errors import InputError
from portfwd.store.state import StateStore

FIXED = 1_780_000_000.0
GOOD = {"id": "web1", "target": "svc/web", "remote_port": 80, "local_port": 8080}


def load_entry(tmp_path: Path, **changes: Any) -> tuple[list[str], list[Any]]:
    """Write a session file with one forward entry; (warnings, forwards) after loading it."""
    entry = {**GOOD, **changes}
    path = tmp_path / "state.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "forwards": [entry]}))
    result = StateStore(path, clock=lambda: FIXED).load()
    return result.warnings, result.forwards


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"running": "no"}, "forward web1: bad running (true or false)"),
        ({"running": "yes"}, "forward web1: bad running (true or false)"),
        ({"running": 1}, "forward web1: bad running (true or false)"),
        ({"remote_port": -5}, "forward web1: remote port -5 is out of range; use 1..65535"),
        (
            {"remote_port": 10**12},
            "forward web1: remote port 1000000000000 is out of range; use 1..65535",
        ),
        ({"remote_port": 0}, "forward web1: remote port 0 is out of range; use 1..65535"),
        ({"remote_port": 80.5}, "forward web1: remote port 80.5 is not a number"),
        ({"remote_port": True}, "forward web1: remote port True is not a number"),
        ({"remote_port": "80"}, 'forward web1: remote port "80" is neither a number'),
        ({"remote_port": "Not A Name"}, 'forward web1: remote port "Not A Name" is neither'),
        ({"remote_port": None}, "forward web1: remote port None is not a number"),
        ({"local_port": 99999}, "forward web1: local port 99999 is out of range; use 0..65535"),
        ({"local_port": -1}, "forward web1: local port -1 is out of range; use 0..65535"),
        ({"local_port": "8080"}, 'forward web1: local port "8080" is not a number'),
        (
            {"addresses": ["not-an-ip"]},
            "forward web1: invalid listen address 'not-an-ip': use IP addresses or localhost",
        ),
        ({"addresses": [5]}, "forward web1: listen addresses (5,) are not a list of text"),
        ({"addresses": "127.0.0.1"}, "forward web1: bad addresses (a list of IP addresses"),
        ({"target": "svc/Web!"}, 'forward web1: invalid name "Web!" in target "svc/Web!"'),
        ({"target": "nope/web"}, 'forward web1: unknown target type "nope" in "nope/web"'),
        ({"namespace": 7}, "forward web1: namespace 7 is not text"),
        ({"context": ["a"]}, "forward web1: context ['a'] is not text"),
        ({"reconnect": "sometimes"}, "forward web1: bad reconnect (true or false)"),
    ],
)
def test_the_session_loader_refuses_the_entry_with_one_message(
    tmp_path: Path, changes: dict[str, Any], problem: str
) -> None:
    warnings, forwards = load_entry(tmp_path, **changes)
    assert forwards == []  # the entry is not used, nothing of it restarted
    assert len(warnings) == 1
    assert f"left out 1 entry(ies) that could not be read (entry 1: {problem}" in warnings[0]
    assert "\n" not in warnings[0]
    assert (tmp_path / "state.yaml.bak-20260528T202640").exists()  # kept for the user


def test_real_booleans_still_load(tmp_path: Path) -> None:
    warnings, forwards = load_entry(tmp_path, running=True, reconnect=False)
    assert warnings == []
    assert forwards[0].running is True and forwards[0].spec.reconnect is False


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"local_port": 99999}, "local port 99999 is out of range; use 0..65535"),
        ({"local_port": -1}, "local port -1 is out of range; use 0..65535"),
        ({"remote_port": 70000}, "remote port 70000 is out of range; use 1..65535"),
        ({"addresses": ("not-an-ip",)}, "invalid listen address 'not-an-ip'"),
        ({"reconnect": "no"}, 'reconnect "no" is not true or false'),
    ],
)
async def test_the_engine_api_refuses_bad_specs(changes: dict[str, Any], problem: str) -> None:
    """Manager.add and Manager.update get an InputError (a PortfwdError: one line for the
    user), not an OverflowError from the socket layer."""
    manager = Manager(follow=False, detect_wake=False)
    try:
        good = ForwardSpec(target="svc/web", remote_port=80, local_port=0)
        fid = await manager.add(good, start=False)
        with pytest.raises(InputError, match="^" + problem):
            await manager.add(ForwardSpec(**{**good.__dict__, **changes}), start=False)
        with pytest.raises(InputError, match="^" + problem):
            await manager.update(fid, replace(good, **changes))
        assert [s.spec for s in manager.snapshot()] == [good]  # nothing half-changed
    finally:
        await manager.shutdown()


# -- the validator, property-based ------------------------------------------------------------

port_names = st.text(alphabet=string.ascii_lowercase + string.digits + "-", max_size=20)
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    port_names,
    st.lists(st.integers(), max_size=2),
)


def _valid_remote(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 1 <= value <= 65535
    if isinstance(value, str):
        return (
            0 < len(value) <= 15
            and set(value) <= set(string.ascii_lowercase + string.digits + "-")
            and any(c.isalpha() for c in value)
            and not value.startswith("-")
            and not value.endswith("-")
            and "--" not in value
        )
    return False


@given(remote=st.one_of(anything, st.integers(min_value=-5, max_value=70000)))
def test_remote_port_accepted_exactly_when_valid(remote: Any) -> None:
    try:
        spec = ForwardSpec(target="svc/web", remote_port=remote)
    except InputError as exc:
        assert not _valid_remote(remote)
        assert "\n" not in str(exc) and str(exc).startswith("remote port ")
    else:
        assert _valid_remote(remote) and spec.remote_port == remote


@given(local=st.one_of(anything, st.integers(min_value=-5, max_value=70000)))
def test_local_port_accepted_exactly_when_valid(local: Any) -> None:
    valid = isinstance(local, int) and not isinstance(local, bool) and 0 <= local <= 65535
    try:
        ForwardSpec(target="svc/web", remote_port=80, local_port=local)
    except InputError as exc:
        assert not valid
        assert "\n" not in str(exc) and str(exc).startswith("local port ")
    else:
        assert valid


@given(
    target=anything,
    namespace=anything,
    context=anything,
    addresses=st.one_of(anything, st.tuples(anything), st.tuples(st.text(max_size=15))),
    reconnect=anything,
)
def test_any_field_value_is_accepted_or_refused_with_one_line(
    target: Any, namespace: Any, context: Any, addresses: Any, reconnect: Any
) -> None:
    """Whatever a file or a caller puts in a spec: an InputError with a one-line message, or a
    spec whose fields have the declared types. Never another exception."""
    try:
        spec = ForwardSpec(
            target=target,
            remote_port=80,
            namespace=namespace,
            context=context,
            addresses=addresses,
            reconnect=reconnect,
        )
    except InputError as exc:
        assert "\n" not in str(exc) and str(exc)
    else:
        assert isinstance(spec.target, str)
        assert spec.namespace is None or isinstance(spec.namespace, str)
        assert spec.context is None or isinstance(spec.context, str)
        assert isinstance(spec.addresses, tuple) and spec.addresses
        assert isinstance(spec.reconnect, bool)
