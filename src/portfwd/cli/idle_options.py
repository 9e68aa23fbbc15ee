"""`--lazy`, `--idle-after D`, `--idle-stop D`: one set of flags for `forward`, `add`, `up` and
`run` (engine/lazy.py says what they do). `--idle-after` alone means `--lazy`: a wait before
the tunnel closes only makes sense for a forward that closes it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import click

from portfwd.cli import options
from portfwd.engine.model import ForwardSpec

F = TypeVar("F", bound=Callable[..., Any])


def idle_options(func: F) -> F:
    func = click.option(
        "--idle-stop",
        default=None,
        metavar="DURATION",
        callback=options.duration,
        help="Stop the forward (unbind its port) after DURATION without a connection or a "
        "byte, e.g. 30m.",
    )(func)
    func = click.option(
        "--idle-after",
        default=None,
        metavar="DURATION",
        callback=options.duration,
        help="With --lazy: close the tunnel after DURATION without a connection or a byte "
        "(default 10m); implies --lazy.",
    )(func)
    func = click.option(
        "--lazy",
        is_flag=True,
        help="Bind the port now, open the tunnel on the first connection (which waits for "
        "it), close it again when idle (◌ idle): the cluster is not asked anything meanwhile.",
    )(func)
    return func


def idle_fields(lazy: bool, idle_after: float | None, idle_stop: float | None) -> dict[str, Any]:
    """The spec fields these flags set (none when none was given)."""
    fields: dict[str, Any] = {}
    if lazy or idle_after is not None:
        fields["lazy"] = True
    if idle_after is not None:
        fields["idle_after"] = idle_after
    if idle_stop is not None:
        fields["idle_stop"] = idle_stop
    return fields


def with_idle(specs: list[ForwardSpec], fields: dict[str, Any]) -> list[ForwardSpec]:
    """`specs` with the flags' fields (a profile's forwards, when the flags were given)."""
    return [replace(spec, **fields) for spec in specs] if fields else specs
