"""`portfwd profile example|schema|ls|show|validate|edit|save` (`portfwd up`: up.py).

Exit codes: 0 done; 1 problems found (validate, a broken profile, an edit not saved, a
forward of `up` that could not start); 2 usage (an unknown profile or group: the line names
the known ones).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from click.shell_completion import CompletionItem

from portfwd.cli import options
from portfwd.cli.completion import quiet
from portfwd.cli.run import Exit, ExitCode, error_line, run
from portfwd.configdir import default_state_file
from portfwd.engine.model import NAME_RE, ForwardSpec
from portfwd.errors import PortfwdError
from portfwd.filecheck import FileTooLarge, read_capped
from portfwd.kube.config import list_contexts
from portfwd.kube.targets import printable, quote
from portfwd.safetext import escape_controls
from portfwd.store.profiles import (
    default_profiles_file,
    load_profiles,
    load_text,
    read_profiles_text,
    save_profile,
    shown_path,
)
from portfwd.store.profiles_model import profile_from_specs
from portfwd.store.profiles_schema import example_text, schema
from portfwd.store.state import STATE_MAX_BYTES, _decode, check_session_path, write_atomic

_err = error_line


def _path(ctx: click.Context, given: str | None) -> Path:

    if given:
        return Path(given).expanduser()
    group = (ctx.obj or {}).get("profiles_file")
    return Path(group).expanduser() if group else default_profiles_file()


_GROUP_GLOBALS = {"kubeconfig": "--kubeconfig", "state_file": "--state"}


def _takes(ctx: click.Context, *names: str) -> None:
    """Refuse a global option written before `profile` that this subcommand does not use
    (as `_with_globals` does for every other command)."""
    for name, flag in _GROUP_GLOBALS.items():
        if name not in names and (ctx.obj or {}).get(name) is not None:
            raise click.UsageError(f"{flag} does not apply to '{ctx.command_path}'; remove it", ctx)


def context_lister(kubeconfig: str | None) -> Callable[[str | None], list[str] | None]:
    """Contexts of a kubeconfig (the forward's, else `kubeconfig`, else the default one);
    None when it cannot be read (then contexts are not checked)."""

    def known(named: str | None) -> list[str] | None:
        try:
            infos, _ = list_contexts(named or kubeconfig)
        except (PortfwdError, OSError, ValueError):
            return None
        return [info.name for info in infos]

    return known


def _table(rows: list[list[str]]) -> None:
    """Rows in columns two spaces apart (text escaped: it comes from the file)."""
    cells = [[escape_controls(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells if i < len(r)) for i in range(max(map(len, cells)))]
    for row in cells:
        click.echo("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())


def _unknown_profile(loaded: Any, name: str) -> Exit:

    names = loaded.names
    known = ", ".join(quote(n) for n in names) if names else "none yet"
    where = loaded.path if loaded.existed else f"{loaded.path} (no such file)"
    _err(f"no profile {quote(name)} in {where}; profiles: {known}")
    return Exit(ExitCode.USAGE)


# -- completion ---------------------------------------------------------------------------------


def _completion_file(ctx: click.Context) -> Path:
    """The profiles file a completion reads: --profiles as written so far (after the command
    or before it, on `profile`), else the default."""

    current: click.Context | None = ctx
    while current is not None:
        given = current.params.get("profiles_file")
        if given:
            return Path(given).expanduser()
        current = current.parent
    return default_profiles_file()


def _completion_profiles(ctx: click.Context) -> Any:

    with quiet():
        try:
            return load_profiles(_completion_file(ctx)).profiles
        except Exception:  # a completer never fails: fewer completions instead
            return {}


def _completions(items: list[tuple[str, str]], incomplete: str) -> list[Any]:
    return [
        CompletionItem(value, help=escape_controls(help_text))
        for value, help_text in items
        if value.startswith(incomplete) and value.isprintable() and " " not in value
    ]


def complete_profiles(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """The profiles of the file, with their descriptions (or how many forwards)."""
    found = _completion_profiles(ctx)
    return _completions(
        [(n, p.description or f"{len(p.forwards)} forwards") for n, p in found.items()],
        incomplete,
    )


def complete_groups(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """The groups of the profile named so far that are not named yet, with their members."""
    prof = _completion_profiles(ctx).get(ctx.params.get("profile") or "")
    if prof is None:
        return []
    named = set(ctx.params.get("groups") or ())
    return _completions(
        [(g, ", ".join(m)) for g, m in prof.groups.items() if g not in named], incomplete
    )


# -- the group ----------------------------------------------------------------------------------


@click.group(name="profile")
@options.profiles_option
@click.pass_context
def profile_group(ctx: click.Context, profiles_file: str | None) -> None:
    """Saved sets of forwards (profiles.yaml), started with `portfwd up PROFILE [GROUP...]`."""
    opts = options.with_globals(ctx, kubeconfig=None, state_file=None, profiles_file=profiles_file)
    ctx.obj = opts


@profile_group.command(name="example")
@click.pass_context
def example_command(ctx: click.Context) -> None:
    """Print a documented example profiles file (`> profiles.yaml` to start one)."""
    _takes(ctx)

    click.echo(example_text(), nl=False)


@profile_group.command(name="schema")
@click.pass_context
def schema_command(ctx: click.Context) -> None:
    """Print the JSON Schema of profiles.yaml, for editors that complete and check YAML."""
    _takes(ctx)

    click.echo(json.dumps(schema(), indent=2))


@profile_group.command(name="ls")
@options.profiles_option
@click.pass_context
def ls_command(ctx: click.Context, profiles_file: str | None) -> None:
    """List the profiles: forwards, groups, description."""
    _takes(ctx)

    def body() -> int:

        loaded = load_profiles(_path(ctx, profiles_file))
        if not loaded.existed:
            click.echo(f"no profiles yet ({loaded.path}); `portfwd profile example` shows one")
            return 0
        rows = [["PROFILE", "FORWARDS", "GROUPS", "DESCRIPTION"]]
        for name in loaded.names:
            prof = loaded.profiles.get(name)
            if prof is None:
                n = sum(1 for p in loaded.problems if p.profile == name)
                rows.append([name, "-", "-", f"not usable: {n} problem(s), see `validate`"])
            else:
                groups = ",".join(prof.groups) or "-"
                rows.append([name, str(len(prof.forwards)), groups, prof.description])
        _table(rows)
        general = [p for p in loaded.problems if p.profile is None]
        for problem in general:
            click.echo(escape_controls(str(problem)), err=True)
        return 1 if general else 0  # the file as a whole is wrong (its syntax, say)

    run(body)


@profile_group.command(name="show")
@options.profiles_option
@click.argument("name", shell_complete=complete_profiles)
@click.pass_context
def show_command(ctx: click.Context, profiles_file: str | None, name: str) -> None:
    """Show a profile's forwards as they would run (defaults applied) and its groups."""
    _takes(ctx)

    def body() -> int:

        loaded = load_profiles(_path(ctx, profiles_file))
        if name not in loaded.names:
            raise _unknown_profile(loaded, name)
        if name not in loaded.profiles:
            for problem in loaded.problems:
                if problem.profile == name:
                    click.echo(escape_controls(str(problem)), err=True)
            return 1
        prof = loaded.profiles[name]
        if prof.description:
            click.echo(escape_controls(f"{name}: {prof.description}"))
        rows = [["NAME", "TARGET", "PORTS", "CONTEXT", "NAMESPACE", "ADDRESS", "RECONNECT"]]
        for _, spec in prof.specs():
            local = str(spec.local_port) if spec.local_port else ""
            rows.append(
                [
                    spec.name or "",
                    spec.target,
                    f"{local}:{spec.remote_port}",
                    spec.context or "(current)",
                    spec.namespace or "(context's)",
                    ",".join(spec.addresses),
                    "yes" if spec.reconnect else "no",
                ]
            )
        _table(rows)
        for entry in prof.namespace_runs():
            what = f"namespace {entry.namespace} (context {entry.context or '(current)'})"
            if entry.selector:
                what += f" -l {entry.selector}"
            if entry.exclude:
                what += " except " + ", ".join(entry.exclude)
            click.echo(escape_controls(f"{what}: every Service, as `portfwd ns`"))
        for group, members in prof.groups.items():
            click.echo(escape_controls(f"group {group}: {', '.join(members)}"))
        return 0

    run(body)


@profile_group.command(name="validate")
@click.option(
    "--kubeconfig",
    default=None,
    metavar="FILE",
    help="Kubeconfig whose contexts forwards may name (default: $KUBECONFIG, ~/.kube/config).",
)
@click.argument("file", required=False)
@click.pass_context
def validate_command(ctx: click.Context, kubeconfig: str | None, file: str | None) -> None:
    """Check a profiles file; every problem as FILE:LINE:COLUMN: what to fix. Exit 1 if any."""
    _takes(ctx, "kubeconfig")
    group_value = (ctx.obj or {}).get("kubeconfig")
    if kubeconfig and group_value and kubeconfig != group_value:
        raise click.UsageError("--kubeconfig is given twice with different values; give it once")
    kubeconfig = kubeconfig or group_value
    options.with_globals(ctx)

    def body() -> int:

        path = _path(ctx, file)
        loaded = load_profiles(path, known_contexts=context_lister(kubeconfig))
        if not loaded.existed:
            _err(f"no profiles file {loaded.path}")
            return 1
        for problem in loaded.problems:
            click.echo(escape_controls(str(problem)), err=True)
        forwards = sum(len(p.forwards) for p in loaded.profiles.values())
        summary = f"{loaded.path}: {len(loaded.profiles)} profile(s), {forwards} forward(s)"
        spaces = sum(len(p.namespaces) for p in loaded.profiles.values())
        if spaces:
            summary += f", {spaces} namespace(s)"
        if loaded.problems:
            click.echo(
                escape_controls(f"{summary} usable; {len(loaded.problems)} problem(s)"), err=True
            )
            return 1
        click.echo(escape_controls(f"{summary}: no problems"))
        return 0

    run(body)


# -- edit -------------------------------------------------------------------------------------


def _editor() -> list[str]:
    for var in ("VISUAL", "EDITOR"):
        value = os.environ.get(var, "").strip()
        if value:
            return shlex.split(value)
    return ["vi"]


@profile_group.command(name="edit")
@options.profiles_option
@click.argument("name", shell_complete=complete_profiles)
@click.pass_context
def edit_command(ctx: click.Context, profiles_file: str | None, name: str) -> None:
    """Edit the profiles file in $VISUAL/$EDITOR; it is saved only once it validates
    (on a problem, it offers to edit again). NAME: the profile you mean to edit."""
    _takes(ctx, "kubeconfig")
    kubeconfig = (ctx.obj or {}).get("kubeconfig")
    run(lambda: _edit(_path(ctx, profiles_file), name, kubeconfig))


def _edit(path: Path, name: str, kubeconfig: str | None) -> int:

    loaded = load_profiles(path)
    if name not in loaded.names:
        raise _unknown_profile(loaded, name)
    original = read_profiles_text(path) or ""
    real = Path(os.path.realpath(path))
    fd, tmp_name = tempfile.mkstemp(prefix=f".{real.stem}.edit-", suffix=".yaml", dir=real.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    keep = False
    try:
        text = original
        while True:
            tmp.write_text(text, encoding="utf-8")
            editor = [*_editor(), str(tmp)]
            try:
                status = subprocess.call(editor)
            except OSError as exc:
                raise PortfwdError(
                    f"cannot run the editor {editor[0]!r} ({exc.strerror}); set $EDITOR"
                ) from None
            if status != 0:
                _err(f"the editor exited with {status}; {loaded.path} was not changed")
                return 1
            text = tmp.read_text(encoding="utf-8")
            checked = load_text(text, shown_path(path), known_contexts=context_lister(kubeconfig))
            if not checked.problems:
                break
            for problem in checked.problems:
                click.echo(escape_controls(str(problem)), err=True)
            if not click.confirm("Edit again?", default=True, err=True):
                keep = True
                _err(f"{loaded.path} was not changed; your edit is kept in {tmp}")
                return 1
        if text == original:
            click.echo(f"{loaded.path}: no changes")
            return 0
        write_atomic(path, text)
        click.echo(f"saved {loaded.path}")
        return 0
    finally:
        if not keep:
            tmp.unlink(missing_ok=True)


# -- save -------------------------------------------------------------------------------------


@profile_group.command(name="save")
@options.profiles_option
@click.option(
    "--from-session",
    "from_session",
    is_flag=True,
    default=True,
    help="From the saved session's forwards (the only source for now; the default).",
)
@click.option("--state", "state_file", default=None, metavar="FILE", help="Session state file.")
@click.option("--description", default=None, help="The profile's description.")
@click.argument("name")
@click.pass_context
def save_command(
    ctx: click.Context,
    profiles_file: str | None,
    from_session: bool,
    state_file: str | None,
    description: str | None,
    name: str,
) -> None:
    """Save the session's forwards as profile NAME (replacing its forwards if it exists;
    its description and groups are kept). The file's comments and layout are kept."""
    _takes(ctx, "state_file")
    group_value = (ctx.obj or {}).get("state_file")
    if state_file and group_value and state_file != group_value:
        raise click.UsageError("--state is given twice with different values; give it once")
    state = state_file or group_value
    run(lambda: _save(_path(ctx, profiles_file), name, state, description))


def _session_specs(state_file: str | None) -> list[ForwardSpec]:
    """The session's forwards as the user asked for them; one in error is skipped, with a
    line on stderr saying so."""
    path = Path(state_file).expanduser() if state_file else default_state_file()
    check_session_path(path)
    try:
        text = read_capped(path, STATE_MAX_BYTES, regular_only=True).decode("utf-8")
        forwards = _decode(text)
    except FileNotFoundError:
        raise PortfwdError(
            f"no session file {printable(str(path))}: start some forwards first (or --state FILE)"
        ) from None
    except (FileTooLarge, OSError, ValueError) as exc:
        raise PortfwdError(f"cannot use session file {printable(str(path))}: {exc}") from None
    specs = []
    for saved in forwards:
        if not saved.running and saved.reason:  # in error: the profile would not start it
            name = saved.spec.name or f"{saved.spec.target} {saved.spec.remote_port}"
            click.echo(escape_controls(f"skipped {name}: in error ({saved.reason})"), err=True)
            continue
        # A free port the user asked for stays free (`:8080`), not the port it happened to get.
        specs.append(replace(saved.spec, local_port=0) if saved.free_port else saved.spec)
    return specs


def _save(path: Path, name: str, state_file: str | None, description: str | None) -> int:

    if not NAME_RE.fullmatch(name):
        _err(f"profile name {quote(name)}: up to 63 letters, digits, '.', '_' and '-'")
        return ExitCode.USAGE
    specs = _session_specs(state_file)
    if not specs:
        raise PortfwdError("the session has no forwards: nothing to save")
    prof = profile_from_specs(name, specs, description=(description or "").strip())
    loaded = load_profiles(path)
    old = loaded.profiles.get(name)
    if old is not None:
        names = {f.name for f in prof.forwards}
        groups = {g: tuple(m for m in members if m in names) for g, members in old.groups.items()}
        prof = replace(
            prof,
            description=prof.description or old.description,
            groups={g: m for g, m in groups.items() if m},
            namespaces=old.namespaces,  # whole namespaces are not in a session: kept as written
        )
    new = save_profile(path, prof)
    verb = "saved new profile" if new else "updated profile"
    click.echo(
        escape_controls(f"{verb} {name} ({len(prof.forwards)} forwards) in {shown_path(path)}")
    )
    return 0
