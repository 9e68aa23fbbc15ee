"""`portfwd run [TARGET PORTS... | --profile P [GROUP...]] [OPTIONS] -- COMMAND [ARGS...]`:
forwards for one command's lifetime.

The forwards start (in the daemon when one runs, else in this process), and only once each is
ready (cli/ready.py) does COMMAND start, with the variables and `{name.port}` substitutions of
cli/run_env.py. COMMAND is exec'd with its own argv, never through a shell (cli/child.py).
When it exits, the forwards this command started are stopped and removed, and portfwd exits
with its status.

portfwd's own outcomes have codes of their own (cli/run.py's ExitCode, README): 2 bad input,
nothing started; 124 a forward was not ready within --timeout or failed first (one line naming
it and why; COMMAND not started); 125 a forward failed for good while COMMAND ran (one line
when it happens; COMMAND keeps running, its status is in the closing line); 126/127 COMMAND
cannot be run / does not exist; 130 interrupted before COMMAND started.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from portfwd.cli import child, completion, options
from portfwd.cli.add import add_specs
from portfwd.cli.bound import client_host, write_ports_file
from portfwd.cli.engines import Engine, engine
from portfwd.cli.idle_options import idle_fields, idle_options, with_idle
from portfwd.cli.ready import NotReady, wait_ready
from portfwd.cli.run import ExitCode, error_line, run
from portfwd.cli.run_env import (
    Where,
    check_names,
    check_placeholders,
    default_name,
    environment,
    substitute,
)
from portfwd.daemon.replies import NotRunning
from portfwd.engine.launch import reason_of, watch
from portfwd.engine.model import ForwardSnapshot, ForwardSpec
from portfwd.errors import InputError
from portfwd.eventloop import release_signals, stop_on_signals
from portfwd.eventloop import run as run_loop
from portfwd.store.profiles_select import UpUsageError, select
from portfwd.tunnel.addresses import format_host_port

ARGV_KEY = "portfwd.run.argv"
DEFAULT_TIMEOUT = "60s"


class _SplitAtDashes(click.Command):
    """Everything after the first `--` is COMMAND and its ARGS, untouched by option parsing."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            ctx.meta[ARGV_KEY] = args[at + 1 :]
            args = args[:at]
        return super().parse_args(ctx, args)


@click.command(name="run", cls=_SplitAtDashes)
@options.kube_options
@click.option(
    "--profile",
    default=None,
    help="Run a profile's forwards (its GROUPs only, when named) instead of TARGET PORTS.",
)
@options.profiles_option
@click.option(
    "--address",
    "addresses",
    default="localhost",
    show_default=True,
    help="Listen addresses.",
)
@click.option("--name", default=None, help="The forward's name (variables, {NAME.port}).")
@click.option("--spread", is_flag=True, help="Spread connections over every Ready pod.")
@click.option("--no-reconnect", is_flag=True, help="Do not follow the target after it started.")
@click.option(
    "--timeout",
    default=DEFAULT_TIMEOUT,
    show_default=True,
    metavar="DURATION",
    callback=options.timeout,
    help="How long the forwards may take to get ready before COMMAND is given up (exit 124); "
    "0 waits as long as it takes.",
)
@click.option(
    "--here", is_flag=True, help="Run the forwards in this process even when a daemon runs."
)
@click.option(
    "--ports-file",
    default=None,
    metavar="FILE",
    help="Also write what was bound as JSON to FILE (atomically) before COMMAND starts.",
)
@options.probe_options
@idle_options
@options.ping_option("WebSocket ping interval on every tunnel; 0 disables.")
@options.protocol_option("Port-forward wire protocol (see `portfwd --help`).")
@click.argument(
    "args",
    nargs=-1,
    metavar="[TARGET PORTS... | GROUP...] -- COMMAND [ARGS...]",
    shell_complete=completion.complete_targets,
)
@click.pass_context
def run_command(
    ctx: click.Context,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    profile: str | None,
    profiles_file: str | None,
    addresses: str,
    name: str | None,
    spread: bool,
    no_reconnect: bool,
    timeout: float | None,
    here: bool,
    ports_file: str | None,
    probe: str,
    probe_interval: float,
    lazy: bool,
    idle_after: float | None,
    idle_stop: float | None,
    ping_interval: float,
    protocol: str,
    args: tuple[str, ...],
) -> None:
    """Start forwards, run COMMAND once they are ready, stop them when it exits.

    \b
      portfwd run svc/db :5432 --name db -- psql -h {db.host} -p {db.port}
      portfwd run --profile dev -- make test

    COMMAND gets PORTFWD_<NAME>_HOST, _PORT and _ADDR for each forward (NAME upper-cased,
    other characters than letters and digits made _), and {NAME.host}, {NAME.port},
    {NAME.addr} in ARGS are replaced. NAME is --name, else the target's name (svc/db: db);
    with several ports, NAME-REMOTE. Exits with COMMAND's status; 124 when a forward is not
    ready within --timeout, 125 when one fails for good while COMMAND runs, 127 when COMMAND
    does not exist.
    """
    argv = ctx.meta.get(ARGV_KEY)
    if argv is None:
        raise click.UsageError("give the command after '--': portfwd run ... -- COMMAND", ctx)
    if not argv:
        raise click.UsageError("no COMMAND after '--'", ctx)
    opts = options.with_globals(
        ctx,
        kubeconfig=kubeconfig,
        context=context,
        namespace=namespace,
        ping_interval=ping_interval,
        protocol=protocol,
    )
    if profile is not None and (name or spread or no_reconnect or probe):
        raise click.UsageError(
            "--name, --spread, --no-reconnect and --probe are the profile's own", ctx
        )
    if profile is None and len(args) < 2:
        raise click.UsageError("give TARGET and PORTS (or --profile P) before '--'", ctx)

    def body() -> int:
        ping = opts.pop("ping_interval")
        if profile is not None:
            specs, labels = _profile_specs(profile, args, profiles_file, **opts)
        else:
            specs = add_specs(
                target=args[0],
                ports=args[1:],
                addresses=addresses,
                name=name,
                reconnect=not no_reconnect,
                spread=spread,
                probe=probe,
                probe_interval=probe_interval,
                **opts,
            )
            labels = _labels(specs, args[0], len(args) - 1)
        specs = with_idle(specs, idle_fields(lazy, idle_after, idle_stop))
        check_names(labels)
        check_placeholders(argv, labels)
        return run_loop(
            _run(
                specs,
                labels,
                list(argv),
                within=timeout,
                here=here,
                ports_file=Path(ports_file).expanduser() if ports_file else None,
                kubeconfig=opts["kubeconfig"],
                ping_interval=ping,
            )
        )

    run(body, {InputError: ExitCode.USAGE, NotReady: ExitCode.NOT_READY})


def _labels(specs: list[ForwardSpec], target: str, ports: int) -> list[str]:
    base = default_name(target)
    return [spec.name or (base if ports == 1 else f"{base}-{spec.remote_port}") for spec in specs]


def _profile_specs(
    profile: str, groups: tuple[str, ...], profiles_file: str | None, **opts: Any
) -> tuple[list[ForwardSpec], list[str]]:
    try:
        chosen = select(
            Path(profiles_file).expanduser() if profiles_file else None, profile, groups, **opts
        )
    except UpUsageError as exc:
        raise InputError("; ".join(exc.lines)) from None
    if chosen.namespaces:
        raise InputError(
            f"profile {profile!r} has whole namespaces: `portfwd run` runs forwards only "
            "(name its groups)"
        )
    if not chosen.specs:
        raise InputError(f"profile {profile!r} has no forwards to run")
    return chosen.specs, [s.name or default_name(s.target) for s in chosen.specs]


async def _run(
    specs: list[ForwardSpec],
    labels: list[str],
    argv: list[str],
    *,
    within: float | None,
    here: bool,
    ports_file: Path | None,
    kubeconfig: str | None,
    ping_interval: float,
) -> int:
    stop = asyncio.Event()
    handled = stop_on_signals(stop)
    released = False
    try:
        async with engine(
            client="run", here=here, kubeconfig=kubeconfig, ping_interval=ping_interval
        ) as used:
            starting = asyncio.ensure_future(_start(used, specs, labels, within))
            stopper = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({starting, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopper.cancel()
                if not starting.done():
                    starting.cancel()
                await asyncio.gather(stopper, starting, return_exceptions=True)
            if starting.cancelled():
                return ExitCode.INTERRUPTED
            ready = starting.result()  # NotReady, InputError: raised on, after the cleanup
            if stop.is_set():
                return ExitCode.INTERRUPTED
            # The relay takes SIGINT/SIGTERM over from the stop handlers in one step (and
            # gives them back to the default when it ends).
            with child.SignalRelay() as relay:
                released = True
                return await _command(used, ready, labels, argv, ports_file, relay)
    except NotRunning as exc:  # the daemon went away under us
        error_line(str(exc))
        return ExitCode.FAILED
    finally:
        if not released:
            release_signals(handled)


async def _start(
    used: Engine, specs: list[ForwardSpec], labels: list[str], within: float | None
) -> list[ForwardSnapshot]:
    """Every forward added and started, once ready; NotReady (naming it) otherwise."""
    loop = asyncio.get_running_loop()
    deadline = None if within is None else loop.time() + within
    ids = [await used.add(spec, start=False) for spec in used.prepare(specs)]
    starts = [asyncio.ensure_future(used.api.start(fid)) for fid in ids]
    try:
        _, pending = await asyncio.wait(starts, timeout=within)
    finally:
        for task in starts:
            task.cancel()
        await asyncio.gather(*starts, return_exceptions=True)
    if pending:
        who = labels[starts.index(next(iter(pending)))]
        raise NotReady(f"{who}: not ready after {within:g}s: still starting")
    left = None if deadline is None else max(0.0, deadline - loop.time())
    names = dict(zip(ids, labels, strict=True))
    return await wait_ready(
        used.api, ids, within=left, names=names, strict=True, shown_timeout=within
    )


def _where(snap: ForwardSnapshot) -> Where:
    host = client_host(snap)
    return Where(host=host, port=snap.local_port, addr=format_host_port(host, snap.local_port))


async def _command(
    used: Engine,
    ready: list[ForwardSnapshot],
    labels: list[str],
    argv: list[str],
    ports_file: Path | None,
    relay: child.SignalRelay,
) -> int:
    where = {name: _where(snap) for name, snap in zip(labels, ready, strict=True)}
    if ports_file is not None:
        named = [
            replace(s, spec=replace(s.spec, name=n)) for s, n in zip(ready, labels, strict=True)
        ]
        await asyncio.to_thread(write_ports_file, ports_file, named)
    env = {**os.environ, **environment(where)}
    try:
        proc = await child.start(substitute(argv, where), env)
    except child.CommandError as exc:
        error_line(str(exc))
        return exc.code
    relay.attach(proc)
    lost: list[str] = []

    def on_lost(snap: ForwardSnapshot) -> None:
        who = labels[[s.id for s in ready].index(snap.id)]
        lost.append(who)
        error_line(f"{who}: {reason_of(snap, 'failed')}")

    never = asyncio.Event()
    watcher = asyncio.ensure_future(watch(used.api, [s.id for s in ready], never, on_lost))
    try:
        status = await child.wait(proc)
    finally:
        if proc.returncode is None:  # we were cancelled: the command must not outlive us
            proc.kill()
            await proc.wait()
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    if lost:
        error_line(f"forward {lost[0]} failed while {argv[0]} ran (it exited with status {status})")
        return ExitCode.FORWARD_LOST
    return status
