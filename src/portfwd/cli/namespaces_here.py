"""A profile's `namespaces:` entries run beside its forwards (`portfwd up PROFILE`), each as
`portfwd ns` runs it, on the same in-process Manager: one NamespaceForwarder per entry,
sharing one address table so their addresses never collide."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from portfwd.engine.manager import Manager
from portfwd.reach.loopback import AddressTable, many_loopback_addresses, unprivileged_port_start
from portfwd.reach.namespaces import NamespaceForwarder, Scope
from portfwd.store.profiles_model import ProfileNamespace

CLOSE_LIMIT = 30.0  # seconds a forwarder gets to remove its forwards


def prefix(entry: ProfileNamespace) -> str:
    """What `up` puts in front of an entry's lines (forward names have no '/')."""
    return f"ns/{entry.namespace}"


def _prefixed(name: str, out: Callable[[str], None]) -> Callable[[list[str]], None]:
    def write(lines: list[str]) -> None:
        for line in lines:
            out(f"{name}: {line}" if line else "")

    return write


def _prefixed_one(name: str, err: Callable[[str], None]) -> Callable[[str], None]:
    return lambda line: err(f"{name}: {line}")


@asynccontextmanager
async def namespaces_running(
    manager: Manager,
    entries: Sequence[ProfileNamespace],
    out: Callable[[str], None],
    err: Callable[[str], None],
) -> AsyncIterator[list[NamespaceForwarder]]:
    """Every entry forwarded while the block runs; an unknown context is PortfwdError (the
    entries started before it are closed again)."""
    table = AddressTable()
    port_start = unprivileged_port_start()
    many = many_loopback_addresses()
    started: list[NamespaceForwarder] = []
    try:
        for entry in entries:
            name = prefix(entry)
            forwarder = NamespaceForwarder(
                manager,
                [Scope(entry.context, entry.namespace)],
                kubeconfig=entry.kubeconfig,
                selector=entry.selector,
                exclude=entry.exclude,
                table=table,
                port_start=port_start,
                many_addresses=many,
                on_lines=_prefixed(name, out),
                on_warning=_prefixed_one(name, err),
            )
            started.append(forwarder)
            await forwarder.start()
        yield started
    finally:
        for forwarder in reversed(started):
            await asyncio.wait_for(forwarder.close(), CLOSE_LIMIT)
