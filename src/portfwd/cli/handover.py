"""Forwards handed to the running daemon (`portfwd add`, and `portfwd up` when a daemon runs):
the start policy of engine/launch.py over the daemon's RemoteEngine, one line per forward.

The kubeconfig and the context are pinned here, in this shell: the daemon reads files with
its own environment, and a later `kubectl config use-context` must not move a running
forward to another cluster. Started forwards must be ACTIVE at once, as kubectl would
insist: one that is not is removed again and reported (exit code 1); the daemon follows the
others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import click

from portfwd.cli.listing import row
from portfwd.cli.run import ExitCode, error_line
from portfwd.daemon.client import RemoteEngine
from portfwd.daemon.sync_client import pinned_kubeconfig
from portfwd.engine.identity import clash_line, split_running
from portfwd.engine.launch import launch
from portfwd.engine.model import ForwardSnapshot, ForwardSpec
from portfwd.errors import InputError
from portfwd.eventloop import release_signals, run, stop_on_signals
from portfwd.kube.config import list_contexts


def pinned_context(kubeconfig: str | None, given: str | None) -> str | None:
    """The context as of now (see the module docstring)."""
    if given:
        return given
    _, current = list_contexts(kubeconfig)
    return current


def pin(specs: Sequence[ForwardSpec], daemon_kubeconfig: str | None = None) -> list[ForwardSpec]:
    """Each spec with its kubeconfig and context fixed now. A spec that names no kubeconfig
    (and a shell without a single-file $KUBECONFIG) uses the daemon's own (`portfwd daemon
    --kubeconfig F`), and its current context is read from that file, not from this
    shell's default."""
    pinned = []
    contexts: dict[str | None, str | None] = {}
    for spec in specs:
        kubeconfig = pinned_kubeconfig(spec.kubeconfig) or daemon_kubeconfig
        if spec.context is None and kubeconfig not in contexts:
            contexts[kubeconfig] = pinned_context(kubeconfig, None)
        context = spec.context or contexts[kubeconfig]
        pinned.append(replace(spec, kubeconfig=kubeconfig, context=context))
    return pinned


def hand_over(
    specs: Sequence[ForwardSpec],
    *,
    start: bool = True,
    client: str = "add",
    keep_existing: bool = False,
    all_or_nothing: bool = False,
    announce: str = "",
    report: list[ForwardSnapshot] | None = None,
    rows: bool = True,
) -> int:
    """Add (and start) `specs` in the daemon; prints each with its state; the exit code.
    `report`: gets the snapshot of each forward added (or kept), for `-o json` and
    `--ports-file`; `rows`: False prints none (`-o json` prints the report instead).
    `keep_existing` (for `up`, which may be run twice): a forward the daemon already runs
    (the same forward by `engine/identity.py`, whatever its name) is left as it is and said
    so; a name another target's forward carries is one error line and that forward is not
    added (exit code 1). `all_or_nothing`: one failure removes every
    forward this call added. `announce`: said on stderr, with the daemon's pid, once it
    answers. NotRunning when no daemon runs."""
    return run(
        _hand_over(
            list(specs),
            start=start,
            client=client,
            keep_existing=keep_existing,
            all_or_nothing=all_or_nothing,
            announce=announce,
            report=report if report is not None else [],
            rows=rows,
        )
    )


def _not_there(
    specs: list[ForwardSpec],
    snapshots: list[ForwardSnapshot],
    keep_existing: bool,
    report: list[ForwardSnapshot],
    rows: bool,
) -> tuple[list[ForwardSpec], list[str]]:
    """The forwards to add, and a line per one whose name another target's forward carries
    (a name is a label, never a match: `engine/identity.py`). With `keep_existing` (`up`)
    the ones the daemon already runs (the same forward, whatever its name) are printed as
    such and left out; `add` may ask for a second forward to one target."""
    there, clashes, rest = split_running(specs, snapshots)
    lines = [clash_line(spec, other) for spec, other in clashes]
    if not keep_existing:  # `add` adds what it was asked to (the engine refuses a name twice)
        return specs, lines
    for _, snap in there:
        report.append(snap)
        if rows:
            click.echo(row(snap, " (already in the daemon)"))
    return rest, lines  # a forward its profile lists twice starts once


async def _hand_over(
    specs: list[ForwardSpec],
    *,
    start: bool,
    client: str,
    keep_existing: bool,
    all_or_nothing: bool,
    announce: str,
    report: list[ForwardSnapshot],
    rows: bool,
) -> int:
    engine = await RemoteEngine.attach(client=client, logs=0)
    try:
        specs = pin(specs, engine.server.get("kubeconfig"))
    except BaseException:
        await engine.shutdown()
        raise
    if announce:
        click.echo(f"{announce} (pid {engine.server.get('pid', '?')})", err=True)
    stop = asyncio.Event()
    handled = stop_on_signals(stop)
    try:
        todo, clashes = _not_there(specs, engine.snapshot(), keep_existing, report, rows)
        if clashes and not keep_existing:  # `add`: a bad --name, nothing added (exit 2)
            raise InputError(clashes[0])
        for line in clashes:
            error_line(line)
        if clashes and (all_or_nothing or not todo):
            return ExitCode.FAILED
        if not start:
            for spec in todo:
                fid = await engine.add(spec, start=False)
                report.append(engine.get(fid))
                if rows:
                    click.echo(row(engine.get(fid)))
            return ExitCode.FAILED if clashes else ExitCode.OK
        launched = await launch(engine, todo, stop=stop, all_or_nothing=all_or_nothing)
        if launched.interrupted:
            return ExitCode.INTERRUPTED
        for snap in launched.results:
            if snap in launched.failed:
                who = f"{snap.spec.name}: " if snap.spec.name else ""
                error_line(
                    f"{who}{snap.spec.target} {snap.spec.remote_port}: {snap.reason}; not added"
                )
            elif not launched.aborted:
                report.append(snap)
                if rows:
                    click.echo(row(snap))
        if launched.aborted:
            removed = len(launched.results) - len(launched.failed)
            error_line(f"removed the {removed} forwards added before it (--all-or-nothing)")
        return ExitCode.FAILED if launched.failed or clashes else ExitCode.OK
    finally:
        release_signals(handled)
        await engine.shutdown()
