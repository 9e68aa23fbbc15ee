"""The click commands of `portfwd ns` and `portfwd proxy` (registered by the CLI in one line
each); the work is in `namespaces.py` and the proxy modules."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import click

from portfwd.errors import InputError
from portfwd.kube.targets import is_valid_name

HOSTS_FILE = Path("/etc/hosts")


def _write(line: Callable[[str], None], lines: list[str]) -> None:
    for text in lines:
        line(text)


def _fail(message: str) -> None:
    from portfwd.safetext import escape_controls

    click.echo(f"error: {escape_controls(message)}", err=True)
    sys.exit(1)


@click.command("ns")
@click.argument("namespaces", nargs=-1, required=True)
@click.option(
    "--context",
    "contexts",
    multiple=True,
    help="Kubeconfig context; repeat it for several clusters (default: the current one).",
)
@click.option("--kubeconfig", default=None, metavar="FILE", help="Kubeconfig file.")
@click.option("-l", "--selector", default=None, help="Only Services with these labels.")
@click.option("--exclude", multiple=True, metavar="NAME", help="Leave out this Service (repeat).")
@click.option(
    "--hosts", "edit_hosts", is_flag=True, help="Write the names into /etc/hosts (needs root)."
)
@click.option(
    "--hosts-file",
    default=None,
    metavar="PATH",
    help="Write the names into this hosts file instead of /etc/hosts (implies --hosts).",
)
def ns_command(
    namespaces: tuple[str, ...],
    contexts: tuple[str, ...],
    kubeconfig: str | None,
    selector: str | None,
    exclude: tuple[str, ...],
    edit_hosts: bool,
    hosts_file: str | None,
) -> None:
    """Forward every Service of NAMESPACE... on its own loopback address and native ports.

    Each Service gets an address of its own (127.x.y.z, stable across restarts) and listens
    on its own port numbers (ports below 1024 move to PORT+8000 when they cannot be bound);
    connections spread over the Service's Ready pods. Headless Services also get an address
    per pod. Services added or deleted while it runs are followed. It prints a table and the
    hosts-file lines; --hosts writes them into /etc/hosts (one marked block, removed on exit).
    """
    for ns in namespaces:
        if not is_valid_name(ns):
            _fail(f"namespace {ns!r} is not a valid name")
    path = Path(hosts_file) if hosts_file else (HOSTS_FILE if edit_hosts else None)
    try:
        code = _run_ns(
            list(namespaces), list(contexts) or [None], kubeconfig, selector, list(exclude), path
        )
    except InputError as exc:
        _fail(str(exc))
        return
    sys.exit(code)


def _run_ns(
    namespaces: list[str],
    contexts: list[str | None],
    kubeconfig: str | None,
    selector: str | None,
    exclude: list[str],
    hosts: Path | None,
) -> int:
    from portfwd.errors import PortfwdError
    from portfwd.eventloop import run

    try:
        return run(_ns_main(namespaces, contexts, kubeconfig, selector, exclude, hosts))
    except PortfwdError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        return 130
    return 1


async def _ns_main(
    namespaces: list[str],
    contexts: list[str | None],
    kubeconfig: str | None,
    selector: str | None,
    exclude: list[str],
    hosts: Path | None,
) -> int:
    from portfwd.console import LineWriter
    from portfwd.engine.manager import Manager
    from portfwd.eventloop import release_signals, stop_on_signals
    from portfwd.reach.hostsfile import HostsBlock
    from portfwd.reach.loopback import (
        AddressTable,
        many_loopback_addresses,
        unprivileged_port_start,
    )
    from portfwd.reach.namespaces import NamespaceForwarder, Scope

    stop = asyncio.Event()
    handled = stop_on_signals(stop)
    out = LineWriter(sys.stdout, "stdout")
    manager = Manager(kubeconfig=kubeconfig)
    forwarder = NamespaceForwarder(
        manager,
        [Scope(ctx, ns) for ctx in contexts for ns in namespaces],
        kubeconfig=kubeconfig,
        selector=selector,
        exclude=exclude,
        table=AddressTable(),
        port_start=unprivileged_port_start(),
        many_addresses=many_loopback_addresses(),
        hosts=HostsBlock(hosts) if hosts is not None else None,
        on_lines=lambda lines: _write(out.line, lines),
    )
    try:
        await forwarder.start()
        await stop.wait()
    finally:
        release_signals(handled)
        try:
            await asyncio.wait_for(forwarder.close(), 30)
        finally:
            await asyncio.wait_for(manager.shutdown(), 30)
            out.close()
    return 0
