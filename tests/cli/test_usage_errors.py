"""Usage mistakes get one `error:` line pointing at the right --help, exit 2, no usage dump."""

from __future__ import annotations

import pytest

from tests.support.cli import portfwd

run = portfwd


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ("forward", "svc/web"),
            "error: Missing argument 'PORTS...'. (see 'portfwd forward --help')",
        ),
        (("forward",), "error: Missing argument 'TARGET'. (see 'portfwd forward --help')"),
        (("frobnicate",), "error: No such command 'frobnicate'. (see 'portfwd --help')"),
        (("lss",), "error: No such command 'lss'. Did you mean 'ls'? (see 'portfwd --help')"),
        (
            ("forward", "--nope", "svc/web", "80"),
            "error: No such option '--nope'. Did you mean '--probe'? "
            "(see 'portfwd forward --help')",
        ),
        (
            ("sandbox", "--port", "abc"),
            "error: Invalid value for '--port': 'abc' is not a valid integer. "
            "(see 'portfwd sandbox --help')",
        ),
        (
            ("forward", "--ping-interval", "abc", "svc/web", "80"),
            "error: Invalid value for '--ping-interval': 'abc' is not a number of seconds >= 1 "
            "(0 turns the pings off) (see 'portfwd forward --help')",
        ),
        (
            ("forward", "--ping-interval", "-1", "svc/web", "80"),
            "error: Invalid value for '--ping-interval': '-1' is not a number of seconds >= 1 "
            "(0 turns the pings off) (see 'portfwd forward --help')",
        ),
        (
            ("--ping-interval", "nan"),
            "error: Invalid value for '--ping-interval': 'nan' is not a number of seconds >= 1 "
            "(0 turns the pings off) (see 'portfwd --help')",
        ),
        (
            ("forward", "--ping-interval", "1e-9", "svc/web", "80"),
            "error: Invalid value for '--ping-interval': '1e-9' is not a number of seconds >= 1 "
            "(0 turns the pings off) (see 'portfwd forward --help')",
        ),
        (
            ("demo", "--ping-interval=-0.5"),
            "error: Invalid value for '--ping-interval': '-0.5' is not a number of seconds >= 1 "
            "(0 turns the pings off) (see 'portfwd demo --help')",
        ),
    ],
)
def test_usage_mistake_is_one_line(args: tuple[str, ...], line: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [line]


def test_help_and_version_still_exit_0() -> None:
    help_result = run("forward", "--help")
    assert help_result.returncode == 0
    assert help_result.stdout.startswith("Usage: portfwd forward [OPTIONS] TARGET PORTS...")
    version = run("--version")
    assert version.returncode == 0
    assert version.stdout.strip() == "portfwd, version 0.1.0"
