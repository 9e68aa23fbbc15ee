"""`portfwd import` and `portfwd export`: forwards from and to other tools' formats.

`portfwd import [FILE|-]` reads kubectl command lines, kftray's JSON export, krelay's targets
file or portfwd's own YAML list (auto-detected, or `--format`), or with `--from-cluster` the
k9s and kftray annotations of a cluster's pods and services. It prints what it found (a table)
and every skipped entry with its reason on stderr, and the forwards as YAML on stdout (or,
with `--into PROFILE`, writes them into that profile; `--dry-run` writes nothing).

`portfwd export [FILE|-] --format yaml|kftray-json|kubectl` reads a YAML list of forwards (as
import writes it) and prints it in that format; forwards the format cannot hold are listed
on stderr.

Exit codes: 0 everything was read (and written); 1 some entries were skipped (or none found);
2 the input could not be read at all (one `error:` line naming file:line).

A `portfwd forward` line is read with the flags the `forward` command itself takes (its click
options and the group's), so the importer never drifts from the command it imports.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from portfwd.cli import options
from portfwd.cli.run import ErrorCodes, Exit, ExitCode, run
from portfwd.engine.model import NAME_RE, ForwardSpec
from portfwd.errors import PortfwdError
from portfwd.eventloop import run as run_loop
from portfwd.filecheck import FileRefused, read_capped
from portfwd.kube.targets import quote
from portfwd.safetext import escape_controls
from portfwd.store.profiles import default_profiles_file, load_profiles, save_profile, shown_path
from portfwd.store.profiles_model import Profile, add_specs
from portfwd.store.profiles_select import UpUsageError, select
from portfwd.transfer.annotations import scan_cluster
from portfwd.transfer.export import export_kubectl, from_yaml, port_text, to_yaml
from portfwd.transfer.formats import detect, parse
from portfwd.transfer.kftray_json import export_kftray
from portfwd.transfer.kftray_ports import target_ports
from portfwd.transfer.kubectl_lines import flags_of
from portfwd.transfer.result import Exported, Imported, Skipped, Unreadable, port_clashes

OK, SOME_SKIPPED, UNREADABLE = ExitCode.OK, ExitCode.FAILED, ExitCode.USAGE
INPUT_LIMIT = 8 << 20  # bytes read from a file or stdin at most
EXPORT_FORMATS = ("yaml", "kftray-json", "kubectl")


def write_into_profile(name: str, specs: list[ForwardSpec]) -> str:
    """Write `specs` into profile `name` of the profiles file (a new profile, or added after
    the forwards of the one there: its comments, defaults and groups stay); returns what to
    tell the user. PortfwdError (nothing written) for a file that does not parse, or a
    forward that would clash in the profile (file:line:column)."""

    if not NAME_RE.fullmatch(name):
        raise PortfwdError(
            f"profile name {name!r} is not usable: up to 63 letters, digits, '.', '_' and '-'"
        )
    path = default_profiles_file()
    loaded = load_profiles(path)
    if name in loaded.broken:
        problem = next(p for p in loaded.problems if p.profile == name)
        raise PortfwdError(f"{problem}; fix profile {name!r} first (nothing was written)")
    old = loaded.profiles.get(name, Profile(name=name))
    merged = add_specs(old, specs)
    added = len(merged.forwards) - len(old.forwards)
    new = save_profile(path, merged)
    kept = len(specs) - added
    again = f" ({kept} it already had)" if kept else ""
    what = "new profile" if new else "profile"
    return f"wrote {added} forward(s){again} into {what} {name} in {shown_path(path)}"


def _err(text: str) -> None:
    click.echo(escape_controls(text), err=True)


def _fail(message: str, code: ExitCode) -> Exit:
    _err(f"error: {message}")
    return Exit(code)


# Unreadable input is a usage matter (nothing was read); other failures leave entries out.
TRANSFER_ERRORS: ErrorCodes = {Unreadable: ExitCode.USAGE}


def forward_flags(ctx: click.Context) -> dict[str, tuple[bool, str]] | None:
    """The flags of a `portfwd forward` line: the `forward` command's and the group's (None
    when this command runs alone, without the group: the importer's own copy then)."""
    root = ctx.find_root().command
    forward = root.get_command(ctx, "forward") if isinstance(root, click.Group) else None
    return flags_of([*root.params, *forward.params]) if forward is not None else None


def read_input(source: str) -> str:
    """The text of FILE or `-` (stdin). Unreadable (one line) when it cannot be read."""
    shown = "stdin" if source == "-" else source
    try:
        if source == "-":
            data = sys.stdin.buffer.read(INPUT_LIMIT + 1)
            if len(data) > INPUT_LIMIT:
                raise Unreadable(f"stdin: more than {INPUT_LIMIT >> 20} MiB; not read")
        else:
            try:
                data = read_capped(Path(source), INPUT_LIMIT, regular_only=False)
            except FileRefused as exc:
                raise Unreadable(f"{shown}: {exc}") from None
    except OSError as exc:
        raise Unreadable(f"{shown}: cannot read it: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise Unreadable(f"{shown}:{line}: not UTF-8 text") from None


def _table(specs: list[ForwardSpec]) -> list[str]:
    rows = [("NAME", "CONTEXT", "NAMESPACE", "TARGET", "PORTS")]

    for s in specs:
        rows.append((s.name or "", s.context or "-", s.namespace or "-", s.target, port_text(s)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def report(found: Imported, what: str) -> None:
    """What an import found, on stderr: the table, then every skipped entry and note."""
    if found.specs:
        _err(f"found {len(found.specs)} forward(s) in {what}:")
        for line in _table(found.specs):
            _err("  " + line)
    for skip in found.skipped:
        _err(str(skip))
    for note in [*found.notes, *port_clashes(found.specs)]:
        _err(str(note))
    if found.skipped:
        _err(f"{len(found.skipped)} entr{'y' if len(found.skipped) == 1 else 'ies'} skipped")


@click.command("import")
@click.argument("source", required=False, default="-", metavar="[FILE|-]")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "kubectl", "kftray", "krelay", "yaml"]),
    default="auto",
    show_default=True,
    help="What the input is (auto: detect it and say why when unsure).",
)
@click.option(
    "--from-cluster",
    is_flag=True,
    help="Read k9s (k9scli.io/*port-forwards) and kftray (kftray.app/*) annotations instead.",
)
@click.option("-n", "--namespace", default=None, help="With --from-cluster: this namespace.")
@click.option("-A", "--all-namespaces", is_flag=True, help="With --from-cluster: every namespace.")
@click.option("--context", default=None, help="With --from-cluster: the kubeconfig context.")
@click.option("--kubeconfig", default=None, metavar="FILE", help="With --from-cluster.")
@click.option("--into", "profile", default=None, metavar="PROFILE", help="Write into PROFILE.")
@click.option(
    "--dry-run", is_flag=True, help="With --into: show what would be written, write nothing."
)
@click.pass_context
def import_command(
    ctx: click.Context,
    source: str,
    fmt: str,
    from_cluster: bool,
    namespace: str | None,
    all_namespaces: bool,
    context: str | None,
    kubeconfig: str | None,
    profile: str | None,
    dry_run: bool,
) -> None:
    """Import forwards from kubectl lines, kftray JSON, krelay targets or a cluster.

    FILE is a file or - (stdin, the default: paste lines, then Ctrl-D). Prints what it found
    and what it skipped (with why) on stderr, the forwards as YAML on stdout.
    """
    # `portfwd --context c import --from-cluster` means what `import --from-cluster
    # --context c` means (the main group's rule).
    opts = options.with_globals(ctx, kubeconfig=kubeconfig, context=context, namespace=namespace)
    kubeconfig, context, namespace = opts["kubeconfig"], opts["context"], opts["namespace"]

    def body() -> int:
        if from_cluster:
            if source != "-":
                raise _fail("--from-cluster reads the cluster: give no FILE", UNREADABLE)
            if namespace and all_namespaces:
                raise _fail("give -n NAMESPACE or -A, not both", UNREADABLE)
            if fmt != "auto":
                raise _fail("--format reads a FILE; --from-cluster reads annotations", UNREADABLE)

            try:
                found = run_loop(
                    scan_cluster(
                        kubeconfig=kubeconfig,
                        context=context,
                        namespace=namespace,
                        all_namespaces=all_namespaces,
                    )
                )
            except PortfwdError as exc:
                raise Unreadable(str(exc)) from None
            what = (
                "all namespaces"
                if all_namespaces
                else (f"namespace {namespace}" if namespace else "the context's namespace")
            )
        else:
            if namespace or all_namespaces or context or kubeconfig:
                raise _fail("-n, -A, --context and --kubeconfig go with --from-cluster", UNREADABLE)

            if source == "-" and sys.stdin.isatty():
                _err("paste kubectl port-forward lines (or JSON), then Ctrl-D")
            text = read_input(source)
            chosen = fmt
            if fmt == "auto":
                chosen, why = detect(text)
                if why:
                    _err(f"note: {why}")
            what = "stdin" if source == "-" else source
            found = parse(text, chosen, what, portfwd=forward_flags(ctx))
        report(found, what)
        if not found.specs and not found.skipped:
            _err(f"no forwards found in {what}")
            return SOME_SKIPPED

        if profile is not None:
            if dry_run:
                _err(f"dry run: would write {len(found.specs)} forward(s) into {profile!r}:")
                click.echo(to_yaml(found.specs), nl=False)
            else:
                _err(write_into_profile(profile, found.specs))
        else:
            click.echo(to_yaml(found.specs), nl=False)
        return SOME_SKIPPED if found.skipped else OK

    run(body, TRANSFER_ERRORS)


def _unsafe(spec: ForwardSpec) -> bool:
    values = (spec.name, spec.context, spec.namespace, spec.kubeconfig, *spec.addresses)
    return any(v is not None and escape_controls(v) != v for v in values)


@click.command("export")
@click.argument("source", required=False, default="-", metavar="[PROFILE|FILE|-]")
@click.argument("groups", nargs=-1)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(EXPORT_FORMATS),
    default="yaml",
    show_default=True,
    help="yaml (portfwd's list), kftray-json (kftray's import), kubectl (a shell script).",
)
@click.option(
    "--profiles",
    "profiles_file",
    default=None,
    metavar="FILE",
    help="Profiles file (default: profiles.yaml in portfwd's config dir).",
)
@click.pass_context
def export_command(
    ctx: click.Context,
    source: str,
    groups: tuple[str, ...],
    fmt: str,
    profiles_file: str | None,
) -> None:
    """Write a profile's forwards (or only its GROUPS'), or those of a YAML list (FILE, or -
    for stdin), as FORMAT on stdout. A name that is not a file is a profile's."""
    # a --context before `export` would be ignored: refused instead; --profiles is taken
    profiles_file = options.with_globals(ctx, profiles_file=profiles_file)["profiles_file"]

    def body() -> int:

        whole: list[Skipped] = []  # a profile's namespaces: entries are no forwards
        if source != "-" and not os.path.exists(source):
            specs, whole = _profile_specs(profiles_file, source, groups)
        elif groups:
            raise Unreadable(f"{source} is a file: GROUPS name groups of a profile")
        else:
            specs = from_yaml(read_input(source), "stdin" if source == "-" else source)
        unsafe = [s for s in specs if _unsafe(s)]
        specs = [s for s in specs if not _unsafe(s)]
        out = Exported("")
        if fmt == "kftray-json":  # kftray dials the targetPort: read from the cluster
            out = export_kftray(specs, run_loop(target_ports(specs)))
        elif fmt == "kubectl":
            out = export_kubectl(specs)
        else:
            out.text = to_yaml(specs)
        out.skipped[:0] = [
            Skipped.of(s.name or s.target, s.target, "holds control characters; not written")
            for s in unsafe
        ] + whole
        click.echo(out.text, nl=False)
        for skip in out.skipped:
            _err(str(skip))
        for note in out.notes:
            _err(str(note))
        return SOME_SKIPPED if out.skipped else OK

    run(body, TRANSFER_ERRORS)


def _profile_specs(
    profiles_file: str | None, profile: str, groups: tuple[str, ...]
) -> tuple[list[ForwardSpec], list[Skipped]]:
    """A profile's forwards as `up` would run them (defaults filled in, the current
    context left to the reader's kubeconfig), and its whole namespaces, said as skipped
    (no export format holds one: `portfwd ns NAMESPACE` runs it)."""

    try:
        chosen = select(
            Path(profiles_file).expanduser() if profiles_file else None,
            profile,
            groups,
            kubeconfig=None,
            context=None,
            namespace=None,
        )
    except UpUsageError as exc:
        raise Unreadable("; ".join(exc.lines) + f" (and no file named {quote(profile)})") from None
    skipped = [
        Skipped.of(
            f"ns/{n.namespace}",
            f"namespace {n.namespace}",
            "a whole namespace, not a forward: run `portfwd up` or `portfwd ns "
            f"{n.namespace}" + (f" --context {n.context}" if n.context else "") + "`",
        )
        for n in chosen.namespaces
    ]
    return chosen.specs, skipped
