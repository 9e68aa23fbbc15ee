"""Pasted or piped `kubectl port-forward` command lines (and scripts of them) as forwards.

Reads what people keep in shell scripts, READMEs and history: any flag order, kubectl's
global flags before the verb (`kubectl --context c -n demo port-forward ...`), `-n X`,
`-nX`, `--namespace X`, `--namespace=X`, `--context`, `--kubeconfig`, `--address a,b`,
several ports, `&`, `nohup`, `exec`, `VAR=value` prefixes, trailing `\\` continuations,
comments, `;` / `&&` / `||` joined commands, quotes, redirections. Also `kubectl portfwd`,
`kubectl-portfwd` and `portfwd forward` (portfwd's own command), and `kubectl relay` /
`kubectl-relay` (krelay: its targets, see :mod:`portfwd.transfer.krelay`).

Each port becomes one forward named after its target and port (`web-80`), unique in the
import. A command that cannot be imported is a :class:`Skipped` with the reason; shell
housekeeping (`wait`, `set -e`, `trap`, `sleep`, `echo`, loop keywords) is not an entry and
is passed over. `KUBECTL_PORT_FORWARD_WEBSOCKETS=false` before kubectl means the plain SPDY
wire (`protocol: spdy`), as it does for kubectl.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from portfwd.engine.model import IDLE_AFTER, ForwardSpec
from portfwd.engine.probe_spec import DEFAULT_PROBE_INTERVAL, interval_from, parse_probe
from portfwd.errors import InputError, PortfwdError
from portfwd.humanize import parse_duration
from portfwd.kube.targets import parse_port_mapping, parse_target
from portfwd.transfer.relay_words import _Skip as _Skip  # re-exported: the other importers catch it
from portfwd.transfer.relay_words import check_relay_target, relay_port
from portfwd.transfer.result import Imported, Names, Note, Skipped, generated_name
from portfwd.transfer.scope import check_scope
from portfwd.transfer.shellwords import Command, split_commands

KUBECTL_PROGRAMS = frozenset({"kubectl", "kubectl.exe", "oc", "kubecolor"})
KUBECTL_ADDRESS_DEFAULT = ("localhost",)  # kubectl's --address default: 127.0.0.1 and ::1

# Words before the command that only change how it runs.
_WRAPPERS = frozenset({"nohup", "exec", "command", "time", "setsid", "env", "sudo", "do", "then"})
_WRAPPERS |= {"else", "{", "(", "!"}
# A shell prompt copied along with the command (`$ kubectl port-forward ...` from docs).
_PROMPTS = frozenset({"$", "%", "\u276f", "\u279c"})
# Commands that are part of a script but never a forward: passed over without a word.
_HOUSEKEEPING = frozenset(
    {
        "wait", "set", "trap", "sleep", "echo", "printf", "exit", "true", "false", ":", "cd",
        "export", "unset", "while", "until", "if", "for", "done", "fi", "esac", "}", ")",
        "read", "local", "return", "shift", "kill", "jobs", "disown", "fg", "bg", "[", "test",
    }
)  # fmt: skip
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_SECRET_FLAG = re.compile(r"(--(?:token|password)(?:=|\s+))\S+")

# Flags: name -> (takes a value, what it sets). What: "namespace", "context", "kubeconfig",
# "address", "protocol", "no-reconnect", "spread", "ignore" (read and passed over, with a note) or
# "refuse" (portfwd cannot mean the same: the command is skipped with the reason).
_COMMON: dict[str, tuple[bool, str]] = {
    "-n": (True, "namespace"),
    "--namespace": (True, "namespace"),
    "--context": (True, "context"),
    "--kubeconfig": (True, "kubeconfig"),
    "--address": (True, "address"),
}
_KUBECTL: dict[str, tuple[bool, str]] = {
    **_COMMON,
    "--pod-running-timeout": (True, "ignore"),
    "--metrics": (True, "ignore"),
    "--request-timeout": (True, "ignore"),
    "--cache-dir": (True, "ignore"),
    "-v": (True, "ignore"),
    "--v": (True, "ignore"),
    "--vmodule": (True, "ignore"),
    "--log-file": (True, "ignore"),
    "--log-dir": (True, "ignore"),
    "--profile": (True, "ignore"),
    "--profile-output": (True, "ignore"),
    "--match-server-version": (False, "ignore"),
    "--warnings-as-errors": (False, "ignore"),
    "--disable-compression": (False, "ignore"),
    "--logtostderr": (False, "ignore"),
    "--alsologtostderr": (False, "ignore"),
    "--cluster": (True, "refuse"),
    "--user": (True, "refuse"),
    "-s": (True, "refuse"),
    "--server": (True, "refuse"),
    "--token": (True, "refuse"),
    "--as": (True, "refuse"),
    "--as-group": (True, "refuse"),
    "--as-uid": (True, "refuse"),
    "--username": (True, "refuse"),
    "--password": (True, "refuse"),
    "--certificate-authority": (True, "refuse"),
    "--client-certificate": (True, "refuse"),
    "--client-key": (True, "refuse"),
    "--tls-server-name": (True, "refuse"),
    "--insecure-skip-tls-verify": (False, "refuse"),
}
FlagTable = Mapping[str, tuple[bool, str]]

# What a `portfwd forward` option sets, by its parameter's name; an option named here as
# nothing is one portfwd keeps per process, not per forward (--ping-interval, --state, ...):
# read and passed over, with a note.
_PORTFWD_MEANINGS = {
    "namespace": "namespace",
    "context": "context",
    "kubeconfig": "kubeconfig",
    "addresses": "address",
    "protocol": "protocol",
    "no_reconnect": "no-reconnect",
    "spread": "spread",
    "http_log": "http-log",
    "probe": "probe",
    "probe_interval": "probe-interval",
    "lazy": "lazy",
    "idle_after": "idle-after",
    "idle_stop": "idle-stop",
}


# The same, for callers without the command at hand (the dashboard's quick add, this
# library's own users): `portfwd import` reads the table from the `forward` command itself
# (flags_of), and a test checks that this copy is what flags_of gives for it.
PORTFWD_FORWARD_FLAGS: dict[str, tuple[bool, str]] = {
    **_COMMON,
    "--protocol": (True, "protocol"),
    "--no-reconnect": (False, "no-reconnect"),
    "--spread": (False, "spread"),
    "--http-log": (False, "http-log"),
    "--probe": (True, "probe"),
    "--probe-interval": (True, "probe-interval"),
    "--lazy": (False, "lazy"),
    "--idle-after": (True, "idle-after"),
    "--idle-stop": (True, "idle-stop"),
    "--pod-running-timeout": (True, "ignore"),
    "--metrics": (True, "ignore"),
    "--ping-interval": (True, "ignore"),
    "--state": (True, "ignore"),
    "--no-restore": (False, "ignore"),
    "--daemon": (False, "ignore"),
    "--version": (False, "ignore"),
    "--profiles": (True, "ignore"),
}


def flags_of(params: Iterable[Any]) -> dict[str, tuple[bool, str]]:
    """The flag table of a `portfwd forward` line, from the command's own (click) options:
    every spelling, whether it takes a value, and what it sets. `portfwd import` passes the
    `forward` command's and the `portfwd` group's options, so a flag `forward` takes is
    never "unknown" here."""
    table: dict[str, tuple[bool, str]] = {}
    for param in params:
        if getattr(param, "param_type_name", "") != "option":
            continue
        takes_value = not (getattr(param, "is_flag", False) or getattr(param, "count", False))
        what = _PORTFWD_MEANINGS.get(str(getattr(param, "name", "")), "ignore")
        for spelling in [*param.opts, *param.secondary_opts]:
            table[spelling] = (takes_value, what)
    return table


_RELAY: dict[str, tuple[bool, str]] = {
    **_KUBECTL,
    "-l": (True, "address"),
    "-f": (True, "targets-file"),
    "--file": (True, "targets-file"),
    "--patch": (True, "ignore"),
    "--patch-file": (True, "ignore"),
    "--server.image": (True, "ignore"),
    "--server.namespace": (True, "ignore"),
}
_HELP = frozenset({"-h", "--help"})


@dataclass
class _Parsed:
    mode: str  # "kubectl", "portfwd" or "relay"
    positionals: list[str] = field(default_factory=list)
    namespace: str | None = None
    context: str | None = None
    kubeconfig: str | None = None
    addresses: tuple[str, ...] | None = None
    protocol: str = "auto"
    reconnect: bool = True
    spread: bool = False
    http_log: bool = False
    probe: str = ""
    probe_interval: float = DEFAULT_PROBE_INTERVAL
    lazy: bool = False
    idle_after: float = IDLE_AFTER
    idle_stop: float = 0.0
    notes: list[str] = field(default_factory=list)


def _flag_name_value(word: str) -> tuple[str, str | None]:
    if word.startswith("--"):
        name, eq, value = word.partition("=")
        return name, value if eq else None
    # short flags: -n demo, -ndemo, -n=demo
    name, rest = word[:2], word[2:]
    if rest.startswith("="):
        rest = rest[1:]
    return name, rest or None


def _refusal(flag: str) -> str:
    if flag == "--insecure-skip-tls-verify":
        return (
            f"{flag} is not carried over: portfwd verifies the cluster as its kubeconfig says;"
            " set insecure-skip-tls-verify on that cluster if you mean it"
        )
    return (
        f"{flag} is not carried over: portfwd takes the cluster and credentials from a"
        " kubeconfig context; make a context with them and use --context"
    )


def _parse_args(words: list[str], mode: str, flags: FlagTable) -> _Parsed:
    """Flags (anywhere, as pflag allows) and positionals of the command after its verb."""
    parsed = _Parsed(mode)
    i = 0
    only_positionals = False
    while i < len(words):
        word = words[i]
        i += 1
        if only_positionals or not word.startswith("-") or word == "-":
            parsed.positionals.append(word)
            continue
        if word == "--":
            only_positionals = True
            continue
        if word in _HELP:
            raise _Skip(f"{word} asks for help; it forwards nothing")
        name, value = _flag_name_value(word)
        spec = flags.get(name)
        if spec is None:
            raise _Skip(f"unknown flag {name} for {_verb(mode)}")
        takes_value, what = spec
        if takes_value and value is None:
            if i >= len(words):
                raise _Skip(f"flag {name} needs a value")
            value = words[i]
            i += 1
        _apply(parsed, name, what, value)
    return parsed


def _apply(parsed: _Parsed, name: str, what: str, value: str | None) -> None:
    if what == "refuse":
        raise _Skip(_refusal(name))
    if what == "targets-file":
        shown = "the targets" if value in (None, "-") else repr(value)
        raise _Skip(f"{name} reads krelay targets: import {shown} with --format krelay")
    if what == "ignore":
        parsed.notes.append(f"{name} ignored (portfwd has no such setting per forward)")
        if name == "--pod-running-timeout":
            parsed.notes[-1] = (
                f"{name} ignored: portfwd waits for a pod to become ready while it reconnects"
            )
        return
    if what == "no-reconnect":
        parsed.reconnect = value is not None and value.lower() in ("false", "0")
        return
    if what == "spread":
        parsed.spread = value is None or value.lower() not in ("false", "0")
        return
    if what == "http-log":
        parsed.http_log = value is None or value.lower() not in ("false", "0")
        return
    if what == "lazy":
        parsed.lazy = value is None or value.lower() not in ("false", "0")
        return
    assert value is not None
    if what in ("idle-after", "idle-stop"):
        try:
            seconds = parse_duration(value)
        except InputError as exc:
            raise _Skip(f"{name}: {exc}") from None
        if what == "idle-after":
            parsed.lazy, parsed.idle_after = True, seconds  # (as the flag: it implies --lazy)
        else:
            parsed.idle_stop = seconds
        return
    if what in ("probe", "probe-interval"):
        try:
            if what == "probe":
                probe = parse_probe(value)
                parsed.probe = probe.text if probe is not None else ""
            else:
                parsed.probe_interval = interval_from(value)
        except InputError as exc:
            raise _Skip(str(exc)) from None
        return
    if what == "namespace":
        parsed.namespace = value
    elif what == "context":
        parsed.context = value
    elif what == "kubeconfig":
        parsed.kubeconfig = value
    elif what == "address":  # a string slice, as in kubectl: repeats add up
        more = tuple(a.strip() for a in value.split(",") if a.strip())
        parsed.addresses = (parsed.addresses or ()) + more
    elif what == "protocol":
        parsed.protocol = value


def _verb(mode: str) -> str:
    return {"portfwd": "portfwd forward", "relay": "kubectl relay"}.get(
        mode, "kubectl port-forward"
    )


def _program(words: list[str], portfwd: FlagTable) -> tuple[str, list[str]] | None:
    """(mode, the words after the verb), or None when the command is no forward at all.

    Raises _Skip for a kubectl (or portfwd) command that is not a port-forward."""
    prog = os.path.basename(words[0])
    rest = words[1:]
    if prog in ("kubectl-portfwd",):
        return "portfwd", rest
    if prog in ("kubectl-relay", "krelay"):
        return "relay", rest
    if prog == "portfwd" or prog in KUBECTL_PROGRAMS:
        # global flags may come before the verb; they are parsed with the rest
        flags = _KUBECTL if prog in KUBECTL_PROGRAMS else portfwd
        before: list[str] = []
        i = 0
        while i < len(rest):
            word = rest[i]
            if not word.startswith("-") or word == "-":
                break
            name, value = _flag_name_value(word)
            takes_value = flags.get(name, (False, ""))[0]
            before.append(word)
            i += 1
            if takes_value and value is None and i < len(rest):
                before.append(rest[i])
                i += 1
        if i >= len(rest):
            raise _Skip(f"{prog} without a command forwards nothing")
        verb, after = rest[i], rest[i + 1 :]
        if prog == "portfwd":
            if verb != "forward":
                raise _Skip(f"portfwd {verb} is not a forward; use portfwd forward TARGET PORT")
            return "portfwd", before + after
        if verb == "port-forward":
            return "kubectl", before + after
        if verb == "portfwd":
            return "portfwd", before + after
        if verb == "relay":
            return "relay", before + after
        raise _Skip(f"kubectl {verb} is not a port-forward")
    return None


def _is_forwarder(program: str) -> bool:
    name = os.path.basename(program)
    return name in KUBECTL_PROGRAMS or name in ("portfwd", "kubectl-portfwd", "kubectl-relay")


def _strip_prefix(words: list[str]) -> tuple[list[str], dict[str, str]]:
    """Drop wrappers (`nohup`, `exec`, `env`, ...) and `VAR=value` assignments before the
    program; the assignments are returned."""
    env: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if _ASSIGNMENT.match(word):
            name, _, value = word.partition("=")
            env[name] = value
        elif word in _WRAPPERS or (i == 0 and word in _PROMPTS):
            pass
        elif word.startswith("-") and i > 0 and words[i - 1] in ("env", "sudo", "nohup"):
            pass  # options of the wrapper (env -i, sudo -E)
        else:
            break
        i += 1
    return words[i:], env


PortReader = Callable[[str], tuple[str, str | None]]  # port word -> (port, skip reason)


def specs_from_words(
    words: list[str],
    *,
    names: Names,
    where: str,
    env: dict[str, str] | None = None,
    port_reader: PortReader | None = None,
    seen: dict[ForwardSpec, str] | None = None,
    portfwd: FlagTable | None = None,
) -> tuple[list[ForwardSpec], list[str], list[str]]:
    """The forwards of one command's words (after its wrappers): (specs, notes, reasons
    for single ports that were skipped). Raises _Skip when the whole command cannot be
    imported. `port_reader` rewrites each port word first (krelay's `@udp` suffixes).
    `seen` (unnamed spec -> where it was first) makes a repeated forward one, with a note.
    `portfwd`: the flags of a `portfwd forward` line (`flags_of`; default
    PORTFWD_FORWARD_FLAGS)."""
    portfwd = PORTFWD_FORWARD_FLAGS if portfwd is None else portfwd
    found = _program(words, portfwd)
    if found is None:
        raise _Skip("not a kubectl port-forward command")
    mode, args = found
    flags = {"kubectl": _KUBECTL, "portfwd": portfwd, "relay": _RELAY}[mode]
    parsed = _parse_args(args, mode, flags)
    if mode == "relay" and port_reader is None:
        port_reader = relay_port
    if mode == "relay":
        check_relay_target(parsed.positionals[0] if parsed.positionals else "")
    env = env or {}
    if env.get("KUBECTL_PORT_FORWARD_WEBSOCKETS", "").lower() == "false" and mode == "kubectl":
        parsed.protocol = "spdy"
    if not parsed.positionals:
        raise _Skip(f"{_verb(mode)} needs a target (TYPE/NAME) and ports")
    raw_target, *ports = parsed.positionals
    if not ports:
        raise _Skip(f"no port given for {raw_target}: add [LOCAL:]REMOTE, e.g. 8080:80")
    try:
        target = str(parse_target(raw_target))
        check_scope(parsed.namespace or None, parsed.context or None)
    except InputError as exc:
        raise _Skip(str(exc)) from None
    default_addresses = ("127.0.0.1",) if mode == "relay" else KUBECTL_ADDRESS_DEFAULT
    specs: list[ForwardSpec] = []
    notes = list(parsed.notes)
    skips: list[str] = []
    for raw_port in ports:
        port_text = raw_port
        if port_reader is not None:
            port_text, reason = port_reader(raw_port)
            if reason is not None:
                skips.append(f"port {raw_port}: {reason}")
                continue
        try:
            mapping = parse_port_mapping(port_text)
        except InputError as exc:
            raise _Skip(str(exc)) from None
        local = mapping.local_port
        if mapping.local_from_remote:
            notes.append(
                f"port {raw_port}: local port chosen freely (kubectl binds the number the"
                f" name resolves to); write LOCAL:{mapping.remote} to fix it"
            )
            local = 0
        try:
            spec = ForwardSpec(
                target=target,
                remote_port=mapping.remote,
                local_port=local,
                namespace=parsed.namespace or None,
                context=parsed.context or None,
                kubeconfig=parsed.kubeconfig or None,
                addresses=parsed.addresses or default_addresses,
                reconnect=parsed.reconnect,
                protocol=parsed.protocol,
                spread=parsed.spread,
                http_log=parsed.http_log,
                probe=parsed.probe,
                probe_interval=parsed.probe_interval,
                lazy=parsed.lazy,
                idle_after=parsed.idle_after,
                idle_stop=parsed.idle_stop,
                name=None,
            )
        except InputError as exc:
            raise _Skip(str(exc)) from None
        specs.append(spec)
    named = []
    for spec in specs:
        # the same fixed local port twice: the second could not bind; `:80` twice is two
        first = seen.get(spec) if seen is not None and spec.local_port else None
        if first is not None:
            notes.append(
                f"{spec.target} {spec.local_port}:{spec.remote_port} is the same"
                f" forward as on {first}: imported once"
            )
            continue
        if seen is not None:
            seen[spec] = where
        named.append(replace(spec, name=names.take(generated_name(spec.target, spec.remote_port))))
    return named, notes, skips


def _entry_text(text: str, cmd: Command) -> str:
    raw = text[cmd.start : cmd.end].replace("\\\n", " ").rstrip().rstrip(";&|").rstrip()
    return _SECRET_FLAG.sub(r"\1***", raw)


_HOME_WORD = re.compile(r"(?:\$HOME|\$\{HOME\})(/[^$`]*)?")


def _home_as_tilde(cmd: Command) -> tuple[list[str], list[str]]:
    """The command's words with a leading `$HOME` as `~` (portfwd expands that itself), and
    the words that still need the shell."""
    texts: list[str] = []
    expanding: list[str] = []
    for word in cmd.words:
        text = word.text
        if word.expands and text != "$":  # a lone `$` is literal (and a copied prompt)
            home = _HOME_WORD.fullmatch(text)
            if home:
                text = "~" + (home.group(1) or "")
            else:
                expanding.append(text)
        texts.append(text)
    return texts, expanding


def parse_kubectl_lines(
    text: str, source: str = "-", names: Names | None = None, portfwd: FlagTable | None = None
) -> Imported:
    """Every forward in `text` (lines or a script); `source` names it in messages;
    `portfwd`: the flags of `portfwd forward` lines (see `specs_from_words`)."""
    names = names or Names()
    seen: dict[ForwardSpec, str] = {}
    result = Imported()
    normalized = text.replace("\r\n", "\n")
    for cmd in split_commands(normalized):
        where = f"{source}:{cmd.line}"
        entry = _entry_text(normalized, cmd)
        if cmd.error:
            result.skipped.append(Skipped.of(where, entry, cmd.error))
            continue
        texts, expanding = _home_as_tilde(cmd)
        words, env = _strip_prefix(texts)
        if not words or os.path.basename(words[0]) in _HOUSEKEEPING:
            continue
        if cmd.piped and not _is_forwarder(words[0]):
            continue  # reads another command's output (`... | tee log`): not a forward
        if expanding and _program(words, portfwd or PORTFWD_FORWARD_FLAGS) is not None:
            reason = f"{expanding[0]} needs the shell to expand it; write the value itself"
            result.skipped.append(Skipped.of(where, entry, reason))
            continue
        import_words(
            result, words, entry, names=names, where=where, env=env, seen=seen, portfwd=portfwd
        )
    return result


def import_words(
    result: Imported,
    words: list[str],
    entry: str,
    *,
    names: Names,
    where: str,
    env: dict[str, str] | None = None,
    port_reader: PortReader | None = None,
    seen: dict[ForwardSpec, str] | None = None,
    portfwd: FlagTable | None = None,
) -> None:
    """One entry's forwards, notes and skipped ports into `result`; the whole entry skipped,
    with why, when it cannot be imported (kubectl lines and krelay targets alike)."""
    try:
        specs, notes, skips = specs_from_words(
            words,
            names=names,
            where=where,
            env=env,
            port_reader=port_reader,
            seen=seen,
            portfwd=portfwd,
        )
    except _Skip as exc:
        result.skipped.append(Skipped.of(where, entry, exc.reason))
        return
    except PortfwdError as exc:
        result.skipped.append(Skipped.of(where, entry, str(exc)))
        return
    result.specs.extend(specs)
    result.notes.extend(Note.of(where, n) for n in notes)
    result.skipped.extend(Skipped.of(where, entry, s) for s in skips)


def value_flags(mode: str = "kubectl") -> frozenset[str]:
    """The flags that take a value in a line of `mode` (quick add completes after them)."""
    table = {"kubectl": _KUBECTL, "relay": _RELAY}.get(mode, _COMMON)
    return frozenset(name for name, (takes_value, _) in table.items() if takes_value)


def specs_from_command(text: str, names: Names | None = None) -> list[ForwardSpec]:
    """One pasted command (quick add): its forwards, or InputError with the reason."""
    result = parse_kubectl_lines(text, "input", names)
    if result.skipped:
        raise InputError(result.skipped[0].reason)
    if not result.specs:
        raise InputError("no port-forward found: paste a kubectl port-forward command")
    return result.specs
