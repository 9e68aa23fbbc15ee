"""`portfwd ls|add|start|stop|restart|rm|logs`: the daemon's forwards, from a script.

Exit codes (the same for every command):

- 0: done;
- 1: it was tried and failed (a forward could not start: the reason is the `error:` line);
- 2: bad input (usage, a bad target or port, a name already used): nothing was changed;
- 3: no daemon is running (`portfwd daemon --detach` starts one);
- 4: no forward has that name or id.

A forward is named by its `--name` or its id (`portfwd ls -o wide` shows both).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from portfwd import completion
from portfwd.errors import PortfwdError
from portfwd.safetext import escape_controls

if TYPE_CHECKING:
    from portfwd.daemon.sync_client import SyncClient
    from portfwd.engine.model import ForwardSnapshot, ForwardSpec

T = TypeVar("T")

FAILED, USAGE, NO_DAEMON, NOT_FOUND = 1, 2, 3, 4


class Exit(Exception):
    """End the command with this code (after its message was printed)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _err(message: str) -> None:
    click.echo(f"error: {escape_controls(message)}", err=True)


def run_client(main: Callable[[], int]) -> None:
    """Run a client command; the daemon's errors become one line and the documented code."""
    from portfwd.daemon.replies import NotRunning, RemoteError
    from portfwd.errors import InputError

    try:
        code = main()
    except Exit as exc:
        code = exc.code
    except NotRunning as exc:
        _err(str(exc))
        code = NO_DAEMON
    except KeyError as exc:
        _err(str(exc.args[0]) if exc.args else "no such forward")
        code = NOT_FOUND
    except InputError as exc:
        _err(str(exc))
        code = USAGE
    except RemoteError as exc:
        _err(str(exc))
        code = FAILED
    except PortfwdError as exc:
        _err(str(exc))
        code = FAILED
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # `portfwd logs -f | head`: the reader is done, so are we
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)


def _connected(body: Callable[[SyncClient], T], *, client: str) -> T:
    from portfwd.daemon.sync_client import SyncClient

    conn = SyncClient.connect(client=client)
    try:
        return body(conn)
    finally:
        conn.close()


def _snapshots(conn: SyncClient) -> list[ForwardSnapshot]:
    from portfwd.engine.serial import snapshot_from_dict

    return [snapshot_from_dict(raw) for raw in conn.request("snapshot")]


def _label(snap: Any) -> str:
    return escape_controls(snap.spec.name or snap.id)


def _where(snap: Any) -> str:
    from portfwd.control.listing import local_side, remote_side

    return escape_controls(f"{snap.spec.target} {local_side(snap)}->{remote_side(snap)}")


# -- ls -------------------------------------------------------------------------------------


@click.command(name="ls")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "wide", "json", "yaml"]),
    default="table",
    show_default=True,
    help="wide adds id, pod, bytes, reconnects and uptime; json/yaml are the full records.",
)
@click.pass_context
def ls_command(ctx: click.Context, output: str) -> None:
    """List the daemon's forwards."""
    from portfwd.cli import _with_globals
    from portfwd.control.listing import render

    _with_globals(ctx)

    def main() -> int:
        snaps = _connected(_snapshots, client="ls")
        click.echo(render(snaps, output))
        return 0

    run_client(main)


# -- add ------------------------------------------------------------------------------------


def _pinned_context(kubeconfig: str | None, given: str | None) -> str | None:
    """The context as of now: a later `kubectl config use-context` must not move a running
    forward to another cluster."""
    if given:
        return given
    from portfwd.kube.config import list_contexts

    _, current = list_contexts(kubeconfig)
    return current


@click.command(name="add", context_settings={"allow_interspersed_args": True})
@click.option(
    "-n",
    "--namespace",
    default=None,
    shell_complete=completion.complete_namespaces,
    help="Namespace (default: the context's).",
)
@click.option(
    "--context",
    default=None,
    shell_complete=completion.complete_contexts,
    help="Context (default: the current one, pinned now).",
)
@click.option(
    "--kubeconfig",
    default=None,
    metavar="FILE",
    shell_complete=completion.complete_files,
    help="Kubeconfig file.",
)
@click.option(
    "--address", "addresses", default="localhost", show_default=True, help="Listen addresses."
)
@click.option("--name", default=None, help="A name to use in place of the id (one per forward).")
@click.option("--no-reconnect", is_flag=True, help="Fail instead of following the target.")
@click.option("--no-start", is_flag=True, help="Add it stopped.")
@click.option(
    "--spread", is_flag=True, help="Spread new connections over every Ready pod (a Service)."
)
@click.option(
    "--protocol",
    type=click.Choice(["auto", "websocket", "spdy", "v4"]),
    default="auto",
    show_default=True,
    help="Port-forward wire protocol (see `portfwd --help`).",
)
@click.argument("target", shell_complete=completion.complete_targets)
@click.argument("ports", nargs=-1, required=True, shell_complete=completion.complete_ports)
@click.pass_context
def add_command(
    ctx: click.Context,
    namespace: str | None,
    context: str | None,
    kubeconfig: str | None,
    addresses: str,
    name: str | None,
    no_reconnect: bool,
    no_start: bool,
    spread: bool,
    protocol: str,
    target: str,
    ports: tuple[str, ...],
) -> None:
    """Add a forward to the daemon (kubectl port-forward's TARGET and PORTS) and start it.

    One forward per port; with --name and several ports each is named NAME-REMOTE. Prints
    each forward and its state. As with kubectl, the target must resolve now: if it cannot
    start, nothing is added and the exit code is 1. After that the daemon follows it.
    """
    from portfwd.cli import _with_globals

    opts = _with_globals(
        ctx, kubeconfig=kubeconfig, context=context, namespace=namespace, protocol=protocol
    )
    run_client(
        lambda: _add(
            target=target,
            ports=ports,
            addresses=addresses,
            name=name,
            reconnect=not no_reconnect,
            start=not no_start,
            spread=spread,
            **opts,
        )
    )


def _add(
    *,
    target: str,
    ports: tuple[str, ...],
    addresses: str,
    name: str | None,
    reconnect: bool,
    start: bool,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    protocol: str,
    spread: bool = False,
) -> int:
    from portfwd.engine.model import ForwardSpec
    from portfwd.errors import InputError
    from portfwd.kube.targets import parse_port_mapping, parse_target

    parse_target(target)
    mappings = [parse_port_mapping(p) for p in ports]
    for m in mappings:
        if m.local_from_remote:
            raise InputError(
                f"give a local port for the named remote port {m.remote!r}"
                f" (e.g. 8443:{m.remote}, or :{m.remote} for a free one)"
            )
    specs = [
        ForwardSpec(
            target=target.strip(),
            remote_port=m.remote,
            local_port=m.local_port,
            namespace=namespace,
            context=context,
            kubeconfig=kubeconfig,
            addresses=tuple(a.strip() for a in addresses.split(",") if a.strip()),
            reconnect=reconnect,
            protocol=protocol,
            name=(f"{name}-{m.remote}" if len(mappings) > 1 else name) if name else None,
            spread=spread,
        )
        for m in mappings
    ]
    return add_to_daemon(specs, start=start)


def add_to_daemon(
    specs: Sequence[ForwardSpec],
    *,
    start: bool = True,
    client: str = "add",
    keep_existing: bool = False,
    all_or_nothing: bool = False,
    conn: SyncClient | None = None,
) -> int:
    """Hand forwards to the running daemon (`portfwd add`, and `portfwd up` when a daemon
    runs); prints each with its state. The kubeconfig and the context are pinned now, in
    this shell. Started ones must be ACTIVE at once, as kubectl would insist: one that is not
    is removed again and reported (exit code 1); the daemon follows the others.

    `keep_existing` (for `up`, which may be run twice): a forward whose name the daemon
    already has is left as it is and said so. `all_or_nothing`: one failure removes every
    forward this call added."""
    from dataclasses import replace

    from portfwd.daemon.sync_client import pinned_kubeconfig
    from portfwd.engine.model import ForwardState
    from portfwd.engine.serial import snapshot_from_dict, spec_to_dict

    pinned = []
    contexts: dict[str | None, str | None] = {}
    for spec in specs:
        kubeconfig = pinned_kubeconfig(spec.kubeconfig)
        if spec.context is None and kubeconfig not in contexts:
            contexts[kubeconfig] = _pinned_context(kubeconfig, None)
        context = spec.context or contexts[kubeconfig]
        pinned.append(replace(spec, kubeconfig=kubeconfig, context=context))

    def body(conn: SyncClient) -> int:
        code = 0
        added: list[str] = []
        have = {s.spec.name: s for s in _snapshots(conn) if s.spec.name} if keep_existing else {}
        for spec in pinned:
            there = have.get(spec.name) if spec.name else None
            if there is not None:
                state = there.state.value + (f": {there.reason}" if there.reason else "")
                click.echo(
                    f"{_label(there)}\t{_where(there)}\t{escape_controls(state)}"
                    " (already in the daemon)"
                )
                continue
            # The first start fails fast; the spec's own reconnect is set once it is up.
            sent = replace(spec, reconnect=spec.reconnect and not start)
            snap = snapshot_from_dict(conn.request("add", spec=spec_to_dict(sent), start=start))
            if start and snap.state is not ForwardState.ACTIVE:
                conn.request("remove", id=snap.id)
                who = f"{snap.spec.name}: " if snap.spec.name else ""
                _err(f"{who}{snap.spec.target} {snap.spec.remote_port}: {snap.reason}; not added")
                code = FAILED
                if all_or_nothing:
                    break
                continue
            added.append(snap.id)
            if start and spec.reconnect:
                snap = snapshot_from_dict(conn.request("set_reconnect", id=snap.id, enabled=True))
            state = snap.state.value + (f": {snap.reason}" if snap.reason else "")
            click.echo(f"{_label(snap)}\t{_where(snap)}\t{escape_controls(state)}")
        if code and all_or_nothing and added:
            for fid in added:
                conn.request("remove", id=fid)
            _err(f"removed the {len(added)} forwards added before it (--all-or-nothing)")
        return code

    if conn is not None:
        return body(conn)
    return _connected(body, client=client)


# -- start / stop / restart / rm ------------------------------------------------------------


def _act(op: str, verb: str) -> click.Command:
    @click.command(name=op if op != "remove" else "rm")
    @click.option("--all", "every", is_flag=True, help=f"{verb.capitalize()} every forward.")
    @click.argument("forwards", nargs=-1, shell_complete=completion.complete_daemon_forwards)
    @click.pass_context
    def command(ctx: click.Context, every: bool, forwards: tuple[str, ...]) -> None:
        from portfwd.cli import _with_globals

        _with_globals(ctx)
        if every == bool(forwards):
            raise click.UsageError("name the forwards (NAME or ID), or give --all; not both")

        def main() -> int:
            def body(conn: SyncClient) -> int:
                from portfwd.engine.serial import snapshot_from_dict

                keys = list(forwards) or [s.id for s in _snapshots(conn)]
                code = 0
                for key in keys:
                    try:
                        raw = conn.request(op, id=key)
                    except KeyError as exc:
                        _err(str(exc.args[0]) if exc.args else key)
                        code = code or NOT_FOUND
                        continue
                    if op == "remove":
                        click.echo(f"removed {escape_controls(key)}")
                        continue
                    snap = snapshot_from_dict(raw)
                    state = snap.state.value + (f": {snap.reason}" if snap.reason else "")
                    click.echo(f"{_label(snap)}\t{_where(snap)}\t{escape_controls(state)}")
                    if op != "stop" and snap.state.value == "error":
                        code = FAILED
                return code

            return _connected(body, client=op)

        run_client(main)

    command.help = f"{verb.capitalize()} forwards of the daemon, by NAME or ID (or --all)."
    return command


start_command = _act("start", "start")
stop_command = _act("stop", "stop")
restart_command = _act("restart", "restart")
rm_command = _act("remove", "remove")


# -- logs -----------------------------------------------------------------------------------


@click.command(name="logs")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl-C ends).")
@click.option(
    "--tail",
    default=100,
    show_default=True,
    type=click.IntRange(0, 1000),
    help="How many recent lines to print first.",
)
@click.argument("forward", required=False, shell_complete=completion.complete_daemon_forwards)
@click.pass_context
def logs_command(ctx: click.Context, follow: bool, tail: int, forward: str | None) -> None:
    """Print a forward's log (no FORWARD: every forward's, and the daemon's own lines)."""
    from portfwd.cli import _with_globals

    _with_globals(ctx)
    run_client(lambda: _logs(forward, follow, tail))


def _line(entry: Any, who: str | None) -> str:
    import time

    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(entry.ts))
    prefix = f"{who}: " if who is not None else ""
    return escape_controls(f"{stamp} {entry.level.name:<7} {prefix}{entry.message}")


class _Names:
    """Who a line is about, as `logs` prints it: the forward's name (or id), `portfwd` for
    the daemon's own lines, nothing when one forward was asked for."""

    def __init__(self, snaps: list[ForwardSnapshot], forward: str | None) -> None:
        self.snaps = {s.id: s for s in snaps}
        self.forward = forward
        self.fid: str | None = None
        if forward is not None:
            match = [s for s in snaps if s.id == forward] or [
                s for s in snaps if s.spec.name == forward
            ]
            if not match:
                raise KeyError(
                    f"no forward has the name or id {forward!r}; `portfwd ls` lists them"
                )
            self.fid = match[0].id

    def __call__(self, key: str | None) -> str | None:
        if self.forward is not None:
            return None
        if key is None:
            return "portfwd"
        snap = self.snaps.get(key)
        return (snap.spec.name or snap.id) if snap is not None else key


def _logs(forward: str | None, follow: bool, tail: int) -> int:
    from portfwd.engine.serial import log_from_dict

    if follow:
        from portfwd.eventloop import run

        return run(_follow(forward, tail))

    def body(conn: SyncClient) -> int:
        names = _Names(_snapshots(conn), forward)
        keys = [names.fid] if forward is not None else [None, *names.snaps]
        merged = [
            (key, log_from_dict(raw))
            for key in keys
            for raw in conn.request("logs", id=key, limit=tail)
        ]
        merged.sort(key=lambda item: item[1].ts)  # stable: each forward's order is kept
        for key, entry in merged[len(merged) - tail :] if tail else []:
            click.echo(_line(entry, names(key)))
        return 0

    return _connected(body, client="logs")


async def _follow(forward: str | None, tail: int) -> int:
    """`logs -f`: the history, then live lines from the daemon's event stream (no gap)."""
    import asyncio
    import signal

    from portfwd.daemon.client import DaemonClient
    from portfwd.engine.events import ForwardAdded, ForwardChanged, ForwardRemoved, LogLine
    from portfwd.engine.serial import event_from_dict, log_from_dict, snapshot_from_dict
    from portfwd.errors import InputError

    conn = await DaemonClient.connect(client="logs")
    try:
        first = await conn.request("subscribe", logs=tail)
        names = _Names([snapshot_from_dict(raw) for raw in first["snapshot"]], forward)
        history = first.get("logs", {})
        merged = [
            (key or None, log_from_dict(raw))
            for key, lines in history.items()
            if forward is None or key == names.fid
            for raw in lines
        ]
        merged.sort(key=lambda item: item[1].ts)
        for key, entry in merged[len(merged) - tail :] if tail else []:
            click.echo(_line(entry, names(key)))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, stop.set)
        stopper = asyncio.create_task(stop.wait())
        try:
            while True:
                getter = asyncio.create_task(conn.next_event())
                done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if stopper in done:
                    getter.cancel()
                    await asyncio.gather(getter, return_exceptions=True)
                    return 0
                raw = getter.result()
                if raw is None:
                    _err(f"lost the portfwd daemon: {conn.lost}")
                    return FAILED
                try:
                    event = event_from_dict(raw)
                except InputError:
                    continue  # a newer daemon's event
                if isinstance(event, ForwardAdded | ForwardChanged):
                    names.snaps[event.snapshot.id] = event.snapshot
                elif isinstance(event, ForwardRemoved) and event.forward_id == names.fid:
                    click.echo(f"{escape_controls(forward or '')} was removed")
                    return 0
                elif isinstance(event, LogLine) and (
                    forward is None or event.forward_id == names.fid
                ):
                    click.echo(_line(event.entry, names(event.forward_id)))
        finally:
            stopper.cancel()
            await asyncio.gather(stopper, return_exceptions=True)
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)
    finally:
        await conn.close()


COMMANDS = [
    ls_command,
    add_command,
    start_command,
    stop_command,
    restart_command,
    rm_command,
    logs_command,
]
