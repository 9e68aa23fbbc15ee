"""`portfwd run`'s variables and `{name.port}` substitution (cli/run_env.py)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfwd.cli.run_env import (
    Where,
    check_names,
    check_placeholders,
    environment,
    substitute,
    var_stem,
)
from portfwd.engine.model import NAME_RE
from portfwd.errors import InputError

names = st.from_regex(NAME_RE, fullmatch=True)


@given(names)
def test_every_forward_name_gives_a_shell_variable(name: str) -> None:
    assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", var_stem(name) + "_PORT")


def test_the_documented_names() -> None:
    where = {
        "my-db": Where("127.0.0.1", 5432, "127.0.0.1:5432"),
        "v6": Where("::1", 80, "[::1]:80"),
    }
    assert environment(where) == {
        "PORTFWD_MY_DB_HOST": "127.0.0.1",
        "PORTFWD_MY_DB_PORT": "5432",
        "PORTFWD_MY_DB_ADDR": "127.0.0.1:5432",
        "PORTFWD_V6_HOST": "::1",
        "PORTFWD_V6_PORT": "80",
        "PORTFWD_V6_ADDR": "[::1]:80",
    }


def test_names_that_collide_are_refused_naming_both() -> None:
    with pytest.raises(InputError) as caught:
        check_names(["web", "my-db", "my.db"])
    assert str(caught.value) == (
        'forwards "my-db" and "my.db" map to the same variables (PORTFWD_MY_DB_PORT); give '
        "them distinct names (--name, or the profile's names)"
    )
    check_names(["a", "b", "a-1"])


def test_substitution_touches_only_known_placeholders() -> None:
    where = {"db": Where("127.0.0.1", 5432, "127.0.0.1:5432"), "a.b": Where("h", 1, "h:1")}
    args = ["-h", "{db.host}", "-p{db.port}", "{a.b.addr}", '{"json": {db.port}}', "{x}", "$HOME"]
    assert substitute(args, where) == [
        "-h", "127.0.0.1", "-p5432", "h:1", '{"json": 5432}', "{x}", "$HOME",
    ]  # fmt: skip
    check_placeholders(args, list(where))
    with pytest.raises(InputError) as caught:
        check_placeholders(["{dB.port}"], list(where))
    assert str(caught.value) == '"{dB.port}" names no forward (the forwards: a.b, db)'
