"""The click commands of `portfwd ns` and `portfwd proxy` (registered by the CLI in one line
each); the work is in `namespaces.py` and the proxy modules."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import click

from portfwd.cli import completion
from portfwd.cli.options import with_globals
from portfwd.errors import InputError
from portfwd.kube.targets import is_valid_name

HOSTS_FILE = Path("/etc/hosts")


def _write(line: Callable[[str], None], lines: list[str]) -> None:
    for text in lines:
        line(text)


def _kube_scope(
    ctx: click.Context, contexts: tuple[str, ...], kubeconfig: str | None
) -> tuple[list[str | None], str | None]:
    """The contexts and kubeconfig after the global-option merge: `portfwd --context a ns demo`
    serves context a, and one written before the command joins those written after it."""
    try:
        merged = with_globals(ctx, kubeconfig=kubeconfig, context=None)
    except click.UsageError as exc:
        exc.show()
        sys.exit(2)
    chosen: list[str | None] = list(contexts)
    before = merged.get("context")
    if before is not None and before not in chosen:
        chosen.insert(0, before)
    return chosen or [None], merged.get("kubeconfig")


def _fail(message: str) -> None:
    from portfwd.safetext import escape_controls

    click.echo(f"error: {escape_controls(message)}", err=True)
    sys.exit(1)


@click.command("ns")
@click.argument(
    "namespaces", nargs=-1, required=True, shell_complete=completion.complete_namespaces
)
@click.option(
    "--context",
    "contexts",
    multiple=True,
    shell_complete=completion.complete_contexts,
    help="Kubeconfig context; repeat it for several clusters (default: the current one).",
)
@click.option(
    "--kubeconfig",
    default=None,
    metavar="FILE",
    shell_complete=completion.complete_files,
    help="Kubeconfig file.",
)
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
@click.pass_context
def ns_command(
    ctx: click.Context,
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
    scope, kubeconfig = _kube_scope(ctx, contexts, kubeconfig)
    sys.exit(
        _serve(
            kubeconfig,
            lambda session: _ns_main(
                session, list(namespaces), scope, kubeconfig, selector, list(exclude), path
            ),
        )
    )


class _Session:
    """What `ns` and `proxy` both run on: one engine, stdout/stderr line writers, and the
    event that SIGINT/SIGTERM set."""

    def __init__(self, kubeconfig: str | None) -> None:
        from portfwd.cli.console import LineWriter
        from portfwd.engine.manager import Manager

        self.stop = asyncio.Event()
        self.out = LineWriter(sys.stdout, "stdout")
        self.err = LineWriter(sys.stderr, "stderr")
        self.manager = Manager(kubeconfig=kubeconfig)


def _serve(kubeconfig: str | None, main: Callable[[_Session], Coroutine[Any, Any, None]]) -> int:
    """Run `main` until a signal, then stop the engine (bounded); errors are one line."""
    from portfwd.errors import PortfwdError
    from portfwd.eventloop import run

    async def serve() -> int:
        from portfwd.eventloop import release_signals, stop_on_signals

        session = _Session(kubeconfig)
        handled = stop_on_signals(session.stop)
        try:
            await main(session)
        finally:
            release_signals(handled)
            try:
                await asyncio.wait_for(session.manager.shutdown(), 30)
            finally:
                session.out.close()
                session.err.close()
        return 0

    try:
        return run(serve())
    except PortfwdError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        return 130
    return 1


async def _ns_main(
    session: _Session,
    namespaces: list[str],
    contexts: list[str | None],
    kubeconfig: str | None,
    selector: str | None,
    exclude: list[str],
    hosts: Path | None,
) -> None:
    from portfwd.reach.hostsfile import HostsBlock
    from portfwd.reach.loopback import (
        AddressTable,
        many_loopback_addresses,
        unprivileged_port_start,
    )
    from portfwd.reach.namespaces import NamespaceForwarder, Scope

    forwarder = NamespaceForwarder(
        session.manager,
        [Scope(ctx, ns) for ctx in contexts for ns in namespaces],
        kubeconfig=kubeconfig,
        selector=selector,
        exclude=exclude,
        table=AddressTable(),
        port_start=unprivileged_port_start(),
        many_addresses=many_loopback_addresses(),
        hosts=HostsBlock(hosts) if hosts is not None else None,
        on_lines=lambda lines: _write(session.out.line, lines),
        on_warning=session.err.line,
    )
    try:
        await forwarder.start()
        await session.stop.wait()
    finally:
        await asyncio.wait_for(forwarder.close(), 30)


DEFAULT_LISTEN = "127.0.0.1:1080"


def listen_address(text: str) -> tuple[str, int]:
    """`ADDR:PORT` (`[::1]:1080` for IPv6; port 0: a free one)."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise InputError(f"--listen {text!r}: use ADDRESS:PORT, e.g. 127.0.0.1:1080")
    return host, int(port)


@click.group("proxy", invoke_without_command=True)
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, metavar="ADDR:PORT")
@click.option(
    "--context",
    "contexts",
    multiple=True,
    shell_complete=completion.complete_contexts,
    help="Kubeconfig context to serve; repeat it for several clusters (the first is the one "
    "plain names mean; default: the current one).",
)
@click.option("--kubeconfig", default=None, metavar="FILE", help="Kubeconfig file.")
@click.option("--pac", is_flag=True, help="Serve a PAC file at /proxy.pac (cluster names only).")
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a --listen address that is not loopback (needs --username and a password).",
)
@click.option("--username", default=None, help="Username clients must give (SOCKS5, HTTP Basic).")
@click.option(
    "--password-env",
    default="PORTFWD_PROXY_PASSWORD",
    show_default=True,
    metavar="VAR",
    help="Environment variable holding the password (never on the command line).",
)
@click.pass_context
def proxy_command(
    ctx: click.Context,
    listen: str,
    contexts: tuple[str, ...],
    kubeconfig: str | None,
    pac: bool,
    allow_remote: bool,
    username: str | None,
    password_env: str,
) -> None:
    """A SOCKS5 and HTTP proxy for cluster names on one loopback port.

    Names: SVC.NS, SVC.NS.svc, SVC.NS.svc.cluster.local (the first --context's cluster),
    SVC.NS.svc.CONTEXT (any served cluster); POD.SVC.NS... for a headless Service's pod.
    Anything else is refused. `curl --proxy socks5h://127.0.0.1:1080 http://web.demo/`, or
    without proxy settings `curl http://web.demo.localhost:1080/`. `portfwd proxy env` prints
    the environment lines for a shell.
    """
    if ctx.invoked_subcommand is not None:
        return
    import ipaddress
    import os

    try:
        host, port = listen_address(listen)
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            raise InputError(f"--listen {listen!r}: the address must be an IP address") from None
        credentials: tuple[str, str] | None = None
        if username is not None:
            password = os.environ.get(password_env, "")
            if not password:
                raise InputError(f"--username needs a password in ${password_env}")
            credentials = (username, password)
        if not loopback and not (allow_remote and credentials is not None):
            raise InputError(
                f"{host} is not a loopback address: an open proxy into your clusters needs "
                f"--allow-remote, --username and a password in ${password_env}"
            )
    except InputError as exc:
        _fail(str(exc))
        return
    if not loopback:
        click.echo(
            f"warning: listening on {host}: anyone who can reach it and knows the password "
            "reaches your clusters",
            err=True,
        )
    scope, kubeconfig = _kube_scope(ctx, contexts, kubeconfig)
    sys.exit(
        _serve(
            kubeconfig,
            lambda session: _proxy_main(session, host, port, scope, kubeconfig, pac, credentials),
        )
    )


@proxy_command.command("env")
@click.pass_context
def proxy_env(ctx: click.Context) -> None:
    """Print ALL_PROXY / HTTPS_PROXY / HTTP_PROXY / NO_PROXY lines for `eval $(...)`.

    Every name then goes through the proxy, which refuses non-cluster names: use it in the
    shell you talk to the cluster from (or use --pac in a browser).
    """
    listen = ctx.parent.params["listen"] if ctx.parent is not None else DEFAULT_LISTEN
    try:
        host, port = listen_address(listen)
    except InputError as exc:
        _fail(str(exc))
        return
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    for line in (
        f"export ALL_PROXY=socks5h://{where}",
        f"export HTTPS_PROXY=http://{where}",
        f"export HTTP_PROXY=http://{where}",
        "export NO_PROXY=localhost,127.0.0.1,::1",
    ):
        click.echo(line)


async def _proxy_main(
    session: _Session,
    host: str,
    port: int,
    contexts: list[str | None],
    kubeconfig: str | None,
    pac: bool,
    credentials: tuple[str, str] | None,
) -> None:
    from portfwd.engine.dial import Dialer
    from portfwd.reach.names import context_label
    from portfwd.reach.proxy import ProxyServer
    from portfwd.tunnel.addresses import BindAddress, format_host_port

    manager, out, err = session.manager, session.out, session.err
    assert manager.informers is not None
    dialer = Dialer(manager.informers, manager.tunnels)
    server: ProxyServer | None = None
    try:
        clients = {}
        for ctx in contexts:
            client = await manager.clients.get(ctx, kubeconfig)
            clients[context_label(client.context)] = client
        default = next(iter(clients))
        server = ProxyServer(
            dialer, clients, default, credentials=credentials, pac=pac, on_log=err.line
        )
        await server.start(BindAddress(host, True), port)
        where = format_host_port(host, server.port)
        out.line(f"proxy (SOCKS5 and HTTP) on {where}: curl --proxy socks5h://{where} ...")
        out.line(
            f"names: SVC.NS[.svc[.cluster.local]] ({default}); SVC.NS.svc.CONTEXT for any of "
            + ", ".join(clients)
        )
        out.line(f"no proxy settings: http://SVC.NS.localhost:{server.port}/")
        if pac:
            out.line(f"PAC file: http://{where}/proxy.pac")
        await session.stop.wait()
    finally:
        if server is not None:
            await server.close()
        dialer.close()
