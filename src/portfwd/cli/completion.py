"""Shell completion: the scripts `portfwd completion SHELL` prints, and the completers the
command line's options and arguments name.

Click's own protocol carries everything (`_PORTFWD_COMPLETE=bash_complete portfwd ...`, see
`click.shell_completion`): subcommands and flags come from the command tree; the values below
come from the kubeconfig (contexts), the cluster of the chosen context (namespaces, resources,
their ports: the catalog the dashboard's picker lists from, `engine/catalog.py`, with the
kinds of `kube/kinds.py`) and the session file (saved forwards).

A completer never prints: the shell shows whatever reaches the terminal inside the user's
prompt. A cluster that is down, slow or refuses (401/403) gives fewer completions, within
:data:`LIVE_TIMEOUT` seconds, and nothing on stderr.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.shell_completion import CompletionItem, get_completion_class

if TYPE_CHECKING:
    from portfwd.engine.catalog import Catalog, PortChoice, ResourceChoice
    from portfwd.kube import kinds
    from portfwd.kube.client import KubeClient

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_PORTFWD_COMPLETE"
# The whole live look-up (credentials, connect, requests) is bounded by this; a completion
# that takes longer than a couple of seconds is worse than none.
LIVE_TIMEOUT = 2.5
CONNECT_TIMEOUT = 1.0


def completion_script(command: click.Command, shell: str, prog_name: str = "portfwd") -> str:
    """The script that makes `shell` complete `prog_name` (eval it, or save it where the
    shell loads completions from)."""
    cls = get_completion_class(shell)
    if cls is None:
        raise click.BadParameter(f"no completion for {shell!r}; use one of {', '.join(SHELLS)}")
    return cls(command, {}, prog_name, COMPLETE_VAR).source()


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Nothing reaches the terminal while it lasts: Python's stderr, the log, warnings and
    any write to file descriptor 2 (a library's, a child's) go nowhere."""
    saved = None
    with contextlib.suppress(OSError):
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with (
            warnings.catch_warnings(),
            open(os.devnull, "w") as nowhere,
            contextlib.redirect_stderr(nowhere),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)


def _shell_safe(value: str) -> bool:
    """A value the completion protocols carry intact: no whitespace, no control characters
    (a name from the cluster with a newline would become two completions, or a command)."""
    return bool(value) and value.isprintable() and not any(c.isspace() for c in value)


def _help(text: str) -> str:
    from portfwd.safetext import escape_controls

    return escape_controls(text)


def kube_args(ctx: click.Context) -> dict[str, Any]:
    """--kubeconfig, --context, -n and --state as given on the command line so far, after
    the command (they win) or before it."""
    found: dict[str, Any] = {}
    current: click.Context | None = ctx
    while current is not None:
        for key in ("kubeconfig", "context", "namespace", "state_file"):
            if found.get(key) is None and current.params.get(key) is not None:
                found[key] = current.params[key]
        current = current.parent
    return found


def _matching(items: list[CompletionItem], incomplete: str) -> list[CompletionItem]:
    seen: set[str] = set()
    kept = []
    for item in items:
        if item.value.startswith(incomplete) and item.value not in seen:
            seen.add(item.value)
            kept.append(item)
    return kept


class _OneClient:
    """The catalog's source of clients, for one short-lived client: completion's own, with
    short timeouts and no pings, whatever context the catalog asks for (the one chosen)."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    async def get(self, context: str | None = None, kubeconfig: str | None = None) -> KubeClient:
        return self.client


def _live(
    ctx: click.Context,
    fetch: Callable[[Catalog, str], Awaitable[list[CompletionItem]]],
) -> list[CompletionItem]:
    """`fetch(catalog, namespace)` against the chosen context's cluster, quietly, within
    LIVE_TIMEOUT; any failure (no kubeconfig, cluster down, 403, timeout) gives []."""
    import asyncio

    from portfwd.engine.catalog import KubeCatalog
    from portfwd.kube.client import KubeClient
    from portfwd.kube.config import ClusterConnection, load_connection

    args = kube_args(ctx)

    async def run(conn: ClusterConnection) -> list[CompletionItem]:
        async with KubeClient(
            conn, request_timeout=LIVE_TIMEOUT, connect_timeout=CONNECT_TIMEOUT, heartbeat=None
        ) as client:
            async with asyncio.timeout(LIVE_TIMEOUT):
                return await fetch(KubeCatalog(_OneClient(client)), conn.namespace)

    with quiet():
        try:
            conn = load_connection(
                args.get("kubeconfig"), args.get("context"), args.get("namespace")
            )
            return asyncio.run(run(conn))
        except Exception:  # completion must never fail out loud
            return []


# --------------------------------------------------------------------------- completers


def complete_files(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    return [CompletionItem(incomplete, type="file")]


def complete_contexts(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The contexts of the merged kubeconfig, the current one first."""
    from portfwd.kube.config import list_contexts

    with quiet():
        try:
            infos, current = list_contexts(kube_args(ctx).get("kubeconfig"))
        except Exception:
            return []
    infos.sort(key=lambda i: i.name != current)
    items = [
        CompletionItem(
            i.name,
            help=_help(
                ("current; " if i.name == current else "")
                + f"cluster {i.cluster}, user {i.user}"
                + (f", namespace {i.namespace}" if i.namespace else "")
            ),
        )
        for i in infos
        if _shell_safe(i.name)
    ]
    return _matching(items, incomplete)


def complete_namespaces(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The chosen context's namespaces from its cluster; without the right to list them,
    the context's own namespace."""

    async def fetch(catalog: Catalog, namespace: str) -> list[CompletionItem]:
        from portfwd.errors import PortfwdError

        try:
            names = await catalog.namespaces("")
        except PortfwdError:
            names = []
        if not names:
            return [CompletionItem(namespace, help="the context's namespace")]
        names.sort(key=lambda n: n != namespace)
        return [CompletionItem(n) for n in names]

    items = [i for i in _live(ctx, fetch) if _shell_safe(i.value)]
    return _matching(items, incomplete)


def complete_targets(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """`svc/NAME`, `pod/NAME`, `deploy/NAME`, `sts/NAME` (the listed kinds) in the chosen
    namespace, or the objects of the kind typed before the slash in any kubectl spelling
    (`rs/`, `service/`, `deploy.apps/`: the user's spelling is kept); saved forwards'
    targets first."""
    from portfwd.kube import kinds

    typed_kind, slash, _ = incomplete.partition("/")
    only = kinds.target_kind(typed_kind) if slash else None
    prefix = f"{typed_kind}/" if slash else ""

    async def fetch(catalog: Catalog, namespace: str) -> list[CompletionItem]:
        return await _resources(catalog, namespace, only, prefix)

    saved = [
        CompletionItem(f.target, help=f.help)
        for f in saved_forwards(ctx)
        if only is None or kinds.target_kind(f.target.partition("/")[0]) is only
    ]
    live = [] if slash and only is None else _live(ctx, fetch)
    items = [i for i in [*saved, *live] if _shell_safe(i.value)]
    return _matching(items, incomplete)


async def _resources(
    catalog: Catalog, namespace: str, only: kinds.Kind | None, prefix: str
) -> list[CompletionItem]:
    import asyncio

    from portfwd.kube import kinds

    async def one(kind: kinds.Kind) -> list[CompletionItem]:
        shown = prefix or f"{kind.short}/"
        found = await catalog.resources("", namespace, kind.name)
        return [CompletionItem(f"{shown}{r.name}", help=_help(", ".join(_facts(r)))) for r in found]

    wanted = kinds.LISTED if only is None else (only,)
    results = await asyncio.gather(*(one(k) for k in wanted), return_exceptions=True)
    return [item for r in results if isinstance(r, list) for item in r]


def _facts(resource: ResourceChoice) -> list[str]:
    """What completion says of a resource: its status, ready count and ports (the picker's)."""
    return [text for text in (resource.status, resource.ready, resource.detail) if text]


def complete_ports(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The remote ports of the chosen target, by number and by name (a service's ports, a
    pod's or a workload's container ports); a saved forward's LOCAL:REMOTE first. After
    `LOCAL:` the remote part is completed."""
    from portfwd.errors import InputError
    from portfwd.kube.targets import parse_target

    raw = ctx.params.get("target")
    if not isinstance(raw, str):
        return []
    try:
        target = parse_target(raw)
    except InputError:
        return []
    local, colon, _ = incomplete.rpartition(":")
    head = f"{local}:" if colon else ""

    async def fetch(catalog: Catalog, namespace: str) -> list[CompletionItem]:
        ports = await catalog.ports("", namespace, target.kind, target.name)
        return [CompletionItem(f"{head}{value}", help=text) for value, text in _port_items(ports)]

    saved = [_saved_item(f) for f in saved_forwards(ctx) if f.target == raw.strip()]
    items = [i for i in [*(saved if not colon else []), *_live(ctx, fetch)] if _shell_safe(i.value)]
    return _matching(items, incomplete)


def _saved_item(saved: SavedTarget) -> CompletionItem:
    """A saved forward's LOCAL:REMOTE, or `:REMOTE` when its local port is in use now (by its
    own running forward or anything else): completion never offers a port that would not
    bind. Binds and closes at once, as the real start would."""
    from portfwd.errors import PortfwdError
    from portfwd.tunnel.addresses import parse_addresses
    from portfwd.tunnel.listener import check_bindable

    if not saved.local_port:
        return CompletionItem(saved.ports, help=saved.help)
    try:
        check_bindable(parse_addresses(saved.addresses), saved.local_port)
    except PortfwdError:
        free = f":{saved.remote}"
        text = (
            f"saved forward {saved.id}: {saved.local_port} is in use now, {free} picks a free one"
        )
        return CompletionItem(free, help=_help(text))
    return CompletionItem(saved.ports, help=saved.help)


def _port_items(ports: list[PortChoice]) -> list[tuple[str, str]]:
    """(completion, help) for each port: its number, then its name."""
    out: list[tuple[str, str]] = []
    for p in ports:
        text = p.protocol + (f" {p.detail}" if p.detail else "")
        out.append((str(p.port), _help(f"{p.name}, {text}" if p.name else text)))
        if p.name:
            out.append((p.name, _help(f"port {p.port}, {text}")))
    return out


# --------------------------------------------------------------------------- saved forwards


class SavedTarget:
    """A saved forward as completion shows it."""

    def __init__(
        self,
        fid: str,
        target: str,
        ports: str,
        help_text: str,
        *,
        local_port: int = 0,
        remote: int | str = "",
        addresses: tuple[str, ...] = (),
    ) -> None:
        self.id = fid
        self.target = target
        self.ports = ports
        self.help = help_text
        self.local_port = local_port  # 0: a free one
        self.remote = remote
        self.addresses = addresses


def saved_forwards(ctx: click.Context) -> list[SavedTarget]:
    """The forwards of the session file (--state, else the default one) that belong to the
    chosen context and namespace (or name none). The file is only read: one portfwd cannot
    use is skipped, never moved aside (that is for portfwd itself, at start)."""
    from portfwd.configdir import default_state_file
    from portfwd.filecheck import check_private, read_capped
    from portfwd.safeyaml import load_yaml
    from portfwd.store.state import STATE_MAX_BYTES, STATE_MAX_NODES, SavedForward

    args = kube_args(ctx)
    path = Path(args["state_file"]) if args.get("state_file") else default_state_file()
    with quiet():
        try:
            check_private(path, what="session file")
            doc = load_yaml(
                read_capped(path, STATE_MAX_BYTES, regular_only=True).decode("utf-8"),
                max_nodes=STATE_MAX_NODES,
            )
        except Exception:
            return []
    entries = doc.get("forwards") if isinstance(doc, dict) else None
    found = []
    for entry in entries if isinstance(entries, list) else []:
        try:
            saved = SavedForward.from_dict(entry)
        except (ValueError, TypeError):
            continue
        spec = saved.spec
        if args.get("context") and spec.context not in (None, args["context"]):
            continue
        if args.get("namespace") and spec.namespace not in (None, args["namespace"]):
            continue
        local = 0 if saved.free_port else spec.local_port  # `:80` stays free
        ports = f"{local}:{spec.remote_port}" if local else f":{spec.remote_port}"
        where = "/".join(x for x in (spec.context, spec.namespace) if x)
        found.append(
            SavedTarget(
                saved.id,
                spec.target,
                ports,
                _help(f"saved forward {saved.id}: {ports}" + (f" in {where}" if where else "")),
                local_port=local,
                remote=spec.remote_port,
                addresses=spec.addresses,
            )
        )
    return found


# --------------------------------------------------------------------------- the daemon's forwards

# Asking the daemon is local (a unix socket) and answers at once; one that hangs gives nothing.
DAEMON_TIMEOUT = 1.0


def complete_daemon_forwards(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The running daemon's forwards, by name (by id when unnamed; ids also when no name
    matches what is typed), those already on the line left out. No daemon: nothing."""
    from portfwd.daemon.sync_client import SyncClient

    with quiet():
        try:
            conn = SyncClient.connect(
                client="completion", within=DAEMON_TIMEOUT, connect_timeout=DAEMON_TIMEOUT
            )
            try:
                snaps = conn.snapshot()
            finally:
                conn.close()
        except Exception:  # no daemon, another version, a hung one: no completions
            return []
    typed = ctx.params.get(param.name or "")
    given = set(typed) if isinstance(typed, tuple | list) else set()
    named, ids = [], []
    for snap in snaps:
        where = f"{snap.spec.target} {snap.spec.remote_port}, {snap.state.value}"
        text = _help(where + (f", id {snap.id}" if snap.spec.name else ""))
        if snap.spec.name:
            named.append(CompletionItem(snap.spec.name, help=text))
        ids.append(CompletionItem(snap.id, help=_help(where)))
    unnamed = {s.id for s in snaps if not s.spec.name}
    first = [*named, *(i for i in ids if i.value in unnamed)]
    items = [i for i in first if _shell_safe(i.value) and i.value not in given]
    found = _matching(items, incomplete)
    if found:
        return found
    return _matching([i for i in ids if i.value not in given], incomplete)
