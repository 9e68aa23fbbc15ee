"""`portfwd completion SHELL`: the shell's completion script (the completers: completion.py)."""

from __future__ import annotations

import click

from portfwd.cli import options
from portfwd.cli.completion import SHELLS, completion_script


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion_command(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    \b
    bash:  portfwd completion bash > ~/.local/share/bash-completion/completions/portfwd
    zsh:   portfwd completion zsh > "${fpath[1]}/_portfwd"
    fish:  portfwd completion fish > ~/.config/fish/completions/portfwd.fish
    """
    options.with_globals(ctx)
    click.echo(completion_script(ctx.find_root().command, shell), nl=False)
