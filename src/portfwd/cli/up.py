"""`portfwd up PROFILE [GROUP...]`: a saved profile's forwards, headless here until Ctrl-C, or
handed to the running daemon.

Here, kubectl's lines are printed with the name of the forward each is about
(`echo: Forwarding from 127.0.0.1:8080 -> 80`), so one profile's output can be told apart and
grepped (`| grep '^echo:'`); warnings and failures go to stderr (here.py). The start policy
is engine/launch.py's, the same as `forward` and `add`: a forward that does not become active
is one line (`NAME: error: REASON`) and is dropped, the others keep running (exit 1 at the
end) unless `--all-or-nothing`.

`--dry-run` resolves each forward to its pod and port and prints where it would listen,
binding nothing (`engine.preview`). Unknown profiles and groups, and a profile with problems,
are usage errors (exit 2) that name what there is.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from portfwd.cli import bound, completion, options
from portfwd.cli.handover import hand_over, pin
from portfwd.cli.here import run_here
from portfwd.cli.idle_options import idle_fields, idle_options, with_idle
from portfwd.cli.listing import row
from portfwd.cli.namespaces_here import prefix
from portfwd.cli.profile import complete_groups, complete_profiles
from portfwd.cli.run import ExitCode, error_line, run
from portfwd.daemon.paths import daemon_paths
from portfwd.daemon.replies import NotRunning
from portfwd.daemon.service import ensure_started
from portfwd.daemon.sync_client import SyncClient
from portfwd.engine.clients import ClientPool
from portfwd.engine.identity import clash_line, identity, is_same_spec, split_running
from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState
from portfwd.engine.preview import Preview, preview
from portfwd.eventloop import run as run_loop
from portfwd.kube.targets import quote
from portfwd.safetext import escape_controls
from portfwd.store.profiles_model import ProfileNamespace
from portfwd.store.profiles_select import UpUsageError, select
from portfwd.tunnel.addresses import format_host_port
from portfwd.tunnel.listener import BindError, check_bindable


@click.command(name="up")
@options.profiles_option
@click.option(
    "-n",
    "--namespace",
    default=None,
    help="Namespace where the profile names none.",
    shell_complete=completion.complete_namespaces,
)
@click.option(
    "--context",
    default=None,
    help="Context where the profile names none.",
    shell_complete=completion.complete_contexts,
)
@click.option(
    "--kubeconfig",
    default=None,
    metavar="FILE",
    help="Kubeconfig where the profile names none.",
    shell_complete=completion.complete_files,
)
@click.option(
    "--dry-run", is_flag=True, help="Resolve and print pods, ports and addresses; bind nothing."
)
@click.option(
    "--all-or-nothing",
    is_flag=True,
    help="If any forward cannot start (or later fails for good), stop them all and exit 1.",
)
@click.option(
    "--here",
    is_flag=True,
    help="Run the forwards in this process even when a portfwd daemon runs.",
)
@options.ping_option("WebSocket ping interval on every tunnel; 0 disables (see `portfwd --help`).")
@options.protocol_option("Port-forward wire protocol (see `portfwd --help`).")
@options.metrics_option()
@idle_options
@bound.output_options
@click.argument("profile", shell_complete=complete_profiles)
@click.argument("groups", nargs=-1, shell_complete=complete_groups)
@click.pass_context
def up_command(
    ctx: click.Context,
    profiles_file: str | None,
    namespace: str | None,
    context: str | None,
    kubeconfig: str | None,
    dry_run: bool,
    all_or_nothing: bool,
    here: bool,
    ping_interval: float,
    protocol: str,
    metrics: tuple[str, int] | None,
    lazy: bool,
    idle_after: float | None,
    idle_stop: float | None,
    output: str,
    ports_file: str | None,
    profile: str,
    groups: tuple[str, ...],
) -> None:
    """Start profile PROFILE (or only its GROUPs) headless; kubectl's lines, each prefixed
    by its forward's name. Runs until Ctrl-C. A forward that cannot start is one line and
    makes the exit code 1; the others keep running (unless --all-or-nothing).

    When a portfwd daemon runs (or with --daemon, which starts one), the forwards are handed
    to it instead and `up` returns at once: `portfwd ls` lists them, `portfwd stop` stops
    them. Forwards the daemon already has (the same target and ports, whatever their name)
    are left as they are. --here runs them in this process all the same. --dry-run says
    which of these it would do."""
    opts = options.with_globals(
        ctx,
        kubeconfig=kubeconfig,
        context=context,
        namespace=namespace,
        ping_interval=ping_interval,
        protocol=protocol,
        use_daemon=False,  # only before `up`: `portfwd --daemon up ...` (or PORTFWD_DAEMON=1)
        profiles_file=profiles_file,  # `portfwd --profiles F up ...` too
    )
    profiles_file = opts.pop("profiles_file")
    start_daemon = bool(
        opts.pop("use_daemon") or (ctx.parent and ctx.parent.params.get("use_daemon"))
    )
    if here and start_daemon:
        raise click.UsageError("--here and --daemon contradict each other; give one", ctx)
    run(
        lambda: run_up(
            profiles_file=Path(profiles_file).expanduser() if profiles_file else None,
            profile=profile,
            groups=groups,
            dry_run=dry_run,
            all_or_nothing=all_or_nothing,
            daemon=None if here else start_daemon,
            output=output,
            ports_file=ports_file,
            metrics=metrics,
            idle=idle_fields(lazy, idle_after, idle_stop),
            **opts,
        )
    )


def run_up(
    *,
    profiles_file: Path | None,
    profile: str,
    groups: tuple[str, ...],
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    dry_run: bool = False,
    all_or_nothing: bool = False,
    ping_interval: float = 30.0,
    protocol: str = "auto",
    daemon: bool | None = False,
    output: str = "table",
    ports_file: str | None = None,
    metrics: tuple[str, int] | None = None,
    idle: dict[str, Any] | None = None,
) -> int:
    """`daemon`: None runs here; False hands the forwards to a daemon if one runs; True
    starts one first when none does. `output` json / `ports_file`: what was bound (bound.py);
    json needs the daemon (here, stdout has kubectl's lines)."""
    try:
        chosen = select(
            profiles_file,
            profile,
            groups,
            kubeconfig=kubeconfig,
            context=context,
            namespace=namespace,
            protocol=protocol,
        )
    except UpUsageError as exc:
        for line in exc.lines:
            error_line(line)
        return ExitCode.USAGE
    chosen = replace(chosen, specs=with_idle(chosen.specs, idle or {}))  # --lazy: all of them
    if not chosen.specs and not chosen.namespaces:
        where = " in these groups" if groups else ""
        error_line(f"profile {quote(profile)} has no forwards{where}")
        return ExitCode.USAGE
    if dry_run and (output == "json" or ports_file):
        error_line("--dry-run binds nothing: -o json and --ports-file do not apply")
        return ExitCode.USAGE
    chosen = replace(chosen, specs=_once_each(chosen.specs))
    if dry_run:
        for entry in chosen.namespaces:
            click.echo(escape_controls(f"{prefix(entry)}: would forward {_scope_text(entry)}"))
        if not chosen.specs:
            return ExitCode.OK
        return _dry_run_here_or_daemon(
            chosen.specs,
            daemon=daemon is not None,
            kubeconfig=kubeconfig,
            ping_interval=ping_interval,
        )
    if chosen.namespaces and daemon is not None:
        if daemon or daemon_paths().socket.exists():  # a daemon runs (or was asked for)
            click.echo(
                f"profile {escape_controls(quote(profile))} has whole namespaces: they and its "
                "forwards run in this process (the daemon does not hold namespaces)",
                err=True,
            )
        daemon = None
    if daemon is not None and metrics is not None and (daemon or daemon_paths().socket.exists()):
        click.echo(
            "warning: --metrics serves forwards run in this process; the daemon's come from "
            "`portfwd daemon --metrics ADDR:PORT` (or use --here)",
            err=True,
        )
    if daemon is not None:
        handed = _in_daemon(
            chosen.specs,
            start=daemon,
            all_or_nothing=all_or_nothing,
            kubeconfig=kubeconfig,
            ping_interval=ping_interval,
            output=output,
            ports_file=ports_file,
        )
        if handed is not None:
            return handed
    if output == "json":
        error_line(
            "-o json prints what the daemon bound; with the forwards in this process (no "
            "daemon, or --here) use --ports-file FILE"
        )
        return ExitCode.USAGE

    async def started(snaps: list[ForwardSnapshot]) -> None:
        if ports_file:
            await asyncio.to_thread(bound.report, snaps, "table", ports_file)

    return run_loop(
        run_here(
            chosen.specs,
            kubeconfig=kubeconfig,
            ping_interval=ping_interval,
            named=True,
            all_or_nothing=all_or_nothing,
            namespaces=chosen.namespaces,
            on_started=started,
            metrics=metrics,
        )
    )


def _once_each(specs: list[ForwardSpec]) -> list[ForwardSpec]:
    """The profile's forwards with each forward once (`engine/identity.py`): a second entry
    for the same forward under another name is said and left out, never started twice."""
    _, _, once = split_running(specs, [])
    kept = {id(s) for s in once}
    for spec in specs:
        if id(spec) not in kept:
            first = next(o for o in once if is_same_spec(spec, o))
            click.echo(
                escape_controls(
                    f"{spec.name}: the same forward as {first.name}"
                    f" ({identity(spec).describe()}); started once"
                ),
                err=True,
            )
    return once


def _scope_text(entry: ProfileNamespace) -> str:
    text = f"every Service of namespace {entry.namespace}"
    text += f" (context {entry.context})" if entry.context else " (the current context)"
    if entry.selector:
        text += f" matching -l {entry.selector}"
    if entry.exclude:
        text += " except " + ", ".join(entry.exclude)
    return text


def _in_daemon(
    specs: list[ForwardSpec],
    *,
    start: bool,
    all_or_nothing: bool,
    kubeconfig: str | None,
    ping_interval: float,
    output: str = "table",
    ports_file: str | None = None,
) -> int | None:
    """The profile's forwards handed to the running daemon (one started first with
    --daemon); None when none runs, to run them here."""
    try:
        return _hand_over(specs, all_or_nothing, output, ports_file)
    except NotRunning:
        if not start:
            return None
    ensure_started(kubeconfig=kubeconfig, state_file=None, ping_interval=ping_interval)
    return _hand_over(specs, all_or_nothing, output, ports_file)


def _hand_over(
    specs: list[ForwardSpec], all_or_nothing: bool, output: str, ports_file: str | None
) -> int:
    report: list[ForwardSnapshot] = []
    code = hand_over(
        specs,
        client="up",
        keep_existing=True,
        all_or_nothing=all_or_nothing,
        announce=f"handing {len(specs)} forwards to the portfwd daemon",
        report=report,
        rows=output != "json",
    )
    bound.report(report, output, ports_file)
    click.echo(
        "they run in the daemon: `portfwd ls` lists them, `portfwd stop NAME` stops one", err=True
    )
    return code


# -- --dry-run --------------------------------------------------------------------------------


def _listen_text(spec: ForwardSpec) -> str:
    port = spec.local_port
    hosts = [format_host_port(a.host, port) if port else a.host for a in spec.bind_addresses]
    where = " and ".join(hosts)
    return f"would listen on {where}" + ("" if port else " (a free port)")


def dry_run_line(p: Preview) -> str:
    spec = p.spec
    name = spec.name or spec.target
    if p.error:
        return escape_controls(f"{name}: error: {p.error}")
    port = str(p.container_port) + (f" ({p.port_name})" if p.port_name else "")
    remote = spec.remote_port
    return escape_controls(
        f"{name}: {spec.target} port {remote} (context {p.context}, namespace {p.namespace})"
        f" -> pod {p.pod} port {port}; {_listen_text(spec)}"
    )


def _port_problems(specs: list[ForwardSpec]) -> list[str]:
    """Why each spec's fixed local port could not be listened on now ("" when it could), as
    the real `up` would find: held by a running forward (the daemon's too) or any other
    program. (Two forwards of one profile on one port are refused by its check already.)
    Binds and closes at once; blocking: run it in a thread."""
    problems: list[str] = []
    for spec in specs:
        try:
            check_bindable(spec.bind_addresses, spec.local_port, spec.remote_port)
        except BindError as exc:
            problems.append(str(exc))
        else:
            problems.append("")
    return problems


def _daemon_forwards() -> tuple[list[ForwardSnapshot], str | None] | None:
    """The running daemon's forwards and its own kubeconfig; None when none runs."""
    if not daemon_paths().socket.exists():
        return None
    try:
        client = SyncClient.connect(client="up")
    except NotRunning:
        return None
    try:
        return client.snapshot(), client.server.get("kubeconfig")
    finally:
        client.close()


def _dry_run_here_or_daemon(
    specs: list[ForwardSpec], *, daemon: bool, kubeconfig: str | None, ping_interval: float
) -> int:
    """What the real `up` would do: with a daemon running (and no --here) it hands the
    forwards over, so the ones the daemon already runs are said and left, a name another
    target's forward carries is its clash line, and only the rest are resolved and their
    ports checked (a port one of the daemon's forwards holds is named as such)."""
    running = _daemon_forwards() if daemon else None
    if running is None:
        return run_loop(_dry_run(specs, kubeconfig=kubeconfig, ping_interval=ping_interval))
    snapshots, daemon_kubeconfig = running
    there, clashes, rest = split_running(pin(specs, daemon_kubeconfig), snapshots)
    for _, snap in there:
        click.echo(row(snap, " (already in the daemon: left as it is)"))
    for spec, other in clashes:
        error_line(clash_line(spec, other))
    done: int = ExitCode.OK
    if rest:
        done = run_loop(
            _dry_run(rest, kubeconfig=kubeconfig, ping_interval=ping_interval, daemon_has=snapshots)
        )
    return ExitCode.FAILED if clashes else done


def _held_by(spec: ForwardSpec, snapshots: list[ForwardSnapshot]) -> ForwardSnapshot | None:
    """The daemon's forward listening on `spec`'s fixed local port, if one does."""
    if not spec.local_port:
        return None
    for snap in snapshots:
        if snap.local_port == spec.local_port and snap.state is not ForwardState.STOPPED:
            return snap
    return None


async def _dry_run(
    specs: list[ForwardSpec],
    *,
    kubeconfig: str | None,
    ping_interval: float,
    daemon_has: list[ForwardSnapshot] | None = None,
) -> int:
    clients = ClientPool(kubeconfig, ping_interval=ping_interval)
    try:
        previews = await asyncio.gather(*(preview(clients, s) for s in specs))
    finally:
        await clients.close()
    ports = await asyncio.to_thread(_port_problems, specs)
    if daemon_has:
        ports = [
            why
            if not why or (holder := _held_by(spec, daemon_has)) is None
            else f"port {spec.local_port} is held by the daemon's forward "
            f"{holder.spec.name or holder.id} ({holder.spec.target} {holder.spec.remote_port}); "
            "the real `up` could not listen there (stop that one, or pick another port)"
            for spec, why in zip(specs, ports, strict=True)
        ]
    previews = [
        p if p.error or not why else replace(p, error=why)
        for p, why in zip(previews, ports, strict=True)
    ]
    code = ExitCode.OK
    for p in previews:
        click.echo(dry_run_line(p), err=bool(p.error))
        if p.error:
            code = ExitCode.FAILED
    return code
