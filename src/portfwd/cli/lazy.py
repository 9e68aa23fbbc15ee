"""Click's lazy-loading group: a subcommand's module is imported when it is used.

`portfwd ls` then imports the daemon's client and the listing, not the Textual app, the
sandbox or the engine's tunnel code; `portfwd --help` and shell completion, which list
every command, load them all. A command is named once, in its group's table:
`"name": "portfwd.cli.module:attribute"`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click


def load(where: str) -> Any:
    """The object at "module:attribute"."""
    module, _, attribute = where.partition(":")
    return getattr(importlib.import_module(module), attribute)


class LazyGroup(click.Group):
    """A group whose subcommands are named by where they live, loaded on first use."""

    def __init__(self, *args: Any, lazy: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            command = load(self.lazy[cmd_name])
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
            self.commands[cmd_name] = command
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and args[0] not in self.lazy:
            for name in self.lazy:  # a typo: click's "did you mean" needs every command
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)
