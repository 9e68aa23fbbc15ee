"""`kubectl portfwd ...`: portfwd as a kubectl plugin.

What kubectl hands a plugin (kubectl's `HandlePluginCommand` and `DefaultPluginHandler`, read
from its source, v1.32 to v1.37): for `kubectl portfwd svc/web 8080:80 -n demo` it execs the
first `kubectl-portfwd` on PATH with exactly the words after `portfwd`
(`svc/web 8080:80 -n demo`) and its own environment unchanged (so KUBECONFIG holds; kubectl
1.37 adds KUBECTL_PATH). It passes none of its own global flags: `kubectl --context x
portfwd ...` is refused by kubectl itself ("flags cannot be placed before plugin name"), and
flags written after `portfwd` reach the plugin verbatim. So `--context`, `-n`, `--kubeconfig`
after `portfwd` are portfwd's own options, meaning what they mean to kubectl.

The words are portfwd's command line, with one rule added: when the first word that is not an
option is not one of portfwd's commands, the command is `forward` (kubectl port-forward's
replacement): `kubectl portfwd svc/web 8080:80` is `portfwd forward svc/web 8080:80`. With no
such word (`kubectl portfwd`, `kubectl portfwd --context prod`) the dashboard opens.

`kubectl_complete-portfwd` is kubectl's completion hook for plugins (kubectl 1.26+): for
`kubectl portfwd svc/w<TAB>` kubectl runs it with the plugin's words and the incomplete one
last (`svc/w`), and reads one completion per line (`value<TAB>help`), then `:DIRECTIVE`.
"""

from __future__ import annotations

import sys

import click
from click.shell_completion import CompletionItem, ShellComplete

from portfwd.cli.completion import COMPLETE_VAR, quiet
from portfwd.cli.root import COMMANDS, cli
from portfwd.cli.root import main as portfwd_main

# Cobra's ShellCompDirective values kubectl understands.
_NO_FILE_COMP = 4
_DEFAULT = 0


def _value_options() -> set[str]:
    """Every option spelling (of the group and of `forward`) that takes a value."""
    names: set[str] = set()
    with click.Context(cli) as ctx:
        forward = cli.get_command(ctx, "forward")
    for command in (cli, forward):
        if command is None:
            continue
        for param in command.params:
            if isinstance(param, click.Option) and not param.is_flag and not param.count:
                names.update(param.opts)
                names.update(param.secondary_opts)
    return names


def _first_word(args: list[str]) -> int | None:
    """The index of the first word that is not an option or an option's value."""
    takes_value = _value_options()
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return i + 1 if i + 1 < len(args) else None
        if arg.startswith("-") and arg != "-":
            if "=" not in arg and arg in takes_value:
                i += 1  # its value is the next word
            i += 1
            continue
        return i
    return None


def plugin_args(args: list[str]) -> list[str]:
    """portfwd's command line for the words kubectl passed."""
    first = _first_word(args)
    if first is None or args[first] in COMMANDS:
        return list(args)
    return ["forward", *args]


def main() -> None:
    """The `kubectl-portfwd` console script."""
    sys.argv = ["kubectl portfwd", *plugin_args(sys.argv[1:])]
    portfwd_main()


def completions(words: list[str]) -> tuple[list[CompletionItem], int]:
    """The completions for kubectl's plugin hook: `words` are the plugin's words, the last
    one the incomplete one (maybe empty)."""
    args, incomplete = list(words[:-1]), (words[-1] if words else "")
    comp = ShellComplete(cli, {}, "portfwd", COMPLETE_VAR)
    items: list[CompletionItem] = []
    if _first_word(args) is None and not incomplete.startswith("-"):
        # The first word: one of portfwd's commands, or forward's TARGET.
        items += comp.get_completions(args, incomplete)
        items += comp.get_completions(["forward", *args], incomplete)
    else:
        items += comp.get_completions(plugin_args(args), incomplete)
    files = any(item.type in ("file", "dir") for item in items)
    kept = [item for item in items if item.type == "plain"]
    return kept, (_DEFAULT if files else _NO_FILE_COMP)


def complete() -> None:
    """The `kubectl_complete-portfwd` console script."""
    with quiet():
        try:
            items, directive = completions(sys.argv[1:])
        except Exception:  # a completion never fails out loud
            items, directive = [], _NO_FILE_COMP
    for item in items:
        print(f"{item.value}\t{item.help}" if item.help else item.value)
    print(f":{directive}")
