"""What was bound, for scripts: `add -o json`, `up -o json`, `wait -o json`, `--ports-file FILE`
and the variables `portfwd run` gives its command.

One small JSON document, the same everywhere, so `PORT=$(portfwd add svc/web :80 -o json | jq
.forwards[0].port)` works and a file written by `--ports-file` reads the same:

    {"forwards": [{"name": "web", "id": "f3", "target": "svc/web", "remote_port": 80,
      "pod_port": 8080, "host": "127.0.0.1", "port": 52011, "address": "127.0.0.1:52011",
      "addresses": [{"host": "127.0.0.1", "port": 52011}, {"host": "::1", "port": 52011}],
      "state": "active"}]}

`host` is where a client on this machine connects: the first bound address, IPv4 first, and
a wildcard bind (0.0.0.0, ::) given as its loopback address.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from portfwd.engine.model import ForwardSnapshot
from portfwd.errors import PortfwdError
from portfwd.kube.targets import printable
from portfwd.store.state import write_atomic
from portfwd.tunnel.addresses import format_host_port

OUTPUTS = ("table", "json")
F = TypeVar("F", bound=Callable[..., Any])
_WILDCARD = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def client_host(snap: ForwardSnapshot) -> str:
    """Where a local client connects ("" before the forward binds)."""
    hosts = [a for a, _ in snap.bound]
    if not hosts:
        return ""
    ipv4 = [h for h in hosts if ":" not in h]
    host = (ipv4 or hosts)[0]
    return _WILDCARD.get(host, host)


def entry(snap: ForwardSnapshot) -> dict[str, Any]:
    host = client_host(snap)
    port = snap.local_port if snap.bound else 0
    return {
        "name": snap.spec.name or snap.id,
        "id": snap.id,
        "target": snap.spec.target,
        "remote_port": snap.spec.remote_port,  # as given: a number or a port name
        "pod_port": snap.remote_port,  # the container port it resolved to (0: not yet)
        "host": host,
        "port": port,
        "address": format_host_port(host, port) if host else "",
        "addresses": [{"host": h, "port": p} for h, p in snap.bound],
        "state": snap.state.value,
    }


def document(snaps: Sequence[ForwardSnapshot]) -> dict[str, Any]:
    return {"forwards": [entry(s) for s in snaps]}


def dumps(snaps: Sequence[ForwardSnapshot]) -> str:
    return json.dumps(document(snaps), indent=2)


def write_ports_file(path: Path, snaps: Sequence[ForwardSnapshot]) -> None:
    """The document, replacing `path` at once (a reader sees the old file or the new one,
    never half), mode 0600. Blocking: call it from a thread when a loop runs. PortfwdError
    (one line) when it cannot be written."""
    try:
        write_atomic(path, dumps(snaps) + "\n")
    except OSError as exc:
        raise PortfwdError(
            f"cannot write the ports file {printable(str(path))}: {exc.strerror or exc}"
        ) from None


def output_options(fn: F) -> F:
    """`-o table|json` and `--ports-file FILE`, as `add` and `up` take them."""
    fn = click.option(
        "--ports-file",
        default=None,
        metavar="FILE",
        help="Write what was bound as JSON to FILE (replaced atomically, mode 0600).",
    )(fn)
    fn = click.option(
        "-o",
        "--output",
        type=click.Choice(OUTPUTS),
        default="table",
        show_default=True,
        help="json: what was bound (name, id, host, port, address), one JSON document.",
    )(fn)
    return fn


def report(snaps: Sequence[ForwardSnapshot], output: str, ports_file: str | None) -> None:
    """What `-o json` prints and `--ports-file` writes (the file first: a script reading
    stdout may read the file next)."""
    if ports_file:
        write_ports_file(Path(ports_file).expanduser(), snaps)
    if output == "json":
        click.echo(dumps(snaps))
