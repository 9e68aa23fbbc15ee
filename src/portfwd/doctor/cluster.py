"""`portfwd doctor`'s checks of the kubeconfig and the cluster of one context.

In order, each needing the ones before: the kubeconfig files (found, parsed, merged), the
context, its credentials (exec plugin on PATH, token file, client certificate expiry), the
API server (reachable, version, latency), TLS trust, and RBAC through SelfSubjectAccessReviews
(what `kubectl auth can-i` asks) for everything portfwd reads and for pods/portforward.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from portfwd.doctor.model import Check, fail, ok, skip, warn
from portfwd.errors import ConfigError, PortfwdError
from portfwd.kube.auth import UserAuth
from portfwd.kube.client import KubeClient
from portfwd.kube.config import (
    ClusterConnection,
    describe_kubeconfig,
    list_contexts,
    load_connection,
)
from portfwd.kube.errors import ApiError, ClusterUnreachable
from portfwd.kube.kinds import KINDS, Kind
from portfwd.safetext import escape_controls

CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 10.0
CERT_SOON_DAYS = 7
# What portfwd reads, and which targets need it: every kind with a use (`kube/kinds.py`).
READ_VERBS = ("get", "list", "watch")
READS: tuple[Kind, ...] = tuple(k for k in KINDS if k.needed_for)
# From this minor version on, a WebSocket port-forward upgrade (a GET) also needs `create`
# (AuthorizePodWebsocketUpgradeCreatePermission, on by default since 1.35).
WEBSOCKET_CREATE_SINCE = 35


def _e(text: object) -> str:
    return escape_controls(str(text))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def kubeconfig_check(kubeconfig: str | None) -> tuple[Check, bool]:
    """(the check, whether there is a kubeconfig to go on with)."""
    try:
        summary = describe_kubeconfig(kubeconfig)
    except ConfigError as exc:
        if os.environ.get("KUBERNETES_SERVICE_HOST") and not kubeconfig:
            return ok("kubeconfig", "kubeconfig", "none: the in-cluster service account"), True
        return fail("kubeconfig", "kubeconfig", str(exc)), False
    files = ", ".join(summary.shown)
    merged = f"{len(summary.files)} files merged" if len(summary.files) > 1 else "1 file"
    text = (
        f"{_e(files)} (from {summary.source}; {merged}): {_count(summary.contexts, 'context')}, "
        f"{_count(summary.clusters, 'cluster')}, {_count(summary.users, 'user')}"
    )
    return (
        ok(
            "kubeconfig",
            "kubeconfig",
            text,
            files=[str(p) for p in summary.files],
            source=summary.source,
            contexts=summary.contexts,
            clusters=summary.clusters,
            users=summary.users,
        ),
        True,
    )


def context_check(
    kubeconfig: str | None, context: str | None, namespace: str | None
) -> tuple[list[Check], ClusterConnection | None]:
    """The context (named, else current-context) and its cluster and user entries."""
    try:
        infos, current = list_contexts(kubeconfig)
    except ConfigError as exc:
        return [fail("context", "context", str(exc))], None
    known = context or current
    try:
        conn = load_connection(kubeconfig, context, namespace)
    except ConfigError as exc:
        message = str(exc)
        if known is None or known not in {i.name for i in infos}:
            return [fail("context", "context", message)], None
        # The context exists; an entry it names (its user's credentials, its cluster) is wrong.
        name, title = (
            ("credentials", "credentials") if 'user "' in message else ("cluster", "cluster")
        )
        return [ok("context", "context", _e(known)), fail(name, title, message)], None
    how = (
        "--context"
        if context
        else ("in-cluster" if conn.context == "in-cluster" else "current-context")
    )
    text = (
        f"{_e(conn.context)} ({how}): cluster {_e(conn.cluster)}, user {_e(conn.user or '-')}, "
        f"namespace {_e(conn.namespace)}, server {_e(conn.server)}"
    )
    return [
        ok(
            "context",
            "context",
            text,
            context=conn.context,
            cluster=conn.cluster,
            user=conn.user,
            namespace=conn.namespace,
            server=conn.server,
        )
    ], conn


def _exec_problem(conn: ClusterConnection) -> Check | None:
    """An exec plugin that is not there: say so before trying to run it."""
    plugin = conn.auth.exec_plugin if isinstance(conn.auth, UserAuth) else None
    if plugin is None:
        return None
    command = plugin.config.command
    base = plugin.config.base_dir
    if os.sep in command:
        path = Path(command) if os.path.isabs(command) or base is None else base / command
        found = path.is_file() and os.access(path, os.X_OK)
    else:
        found = shutil.which(command) is not None
    if found:
        return None
    hint = " ".join(plugin.config.install_hint.split()) if plugin.config.install_hint else ""
    return fail(
        "credentials",
        "credentials",
        f'exec plugin "{_e(command)}" of user "{_e(conn.user)}" is not '
        + ("there" if os.sep in command else "on PATH"),
        _e(hint) if hint else "install it, or fix users[].user.exec.command in the kubeconfig",
        exec_command=command,
    )


def _certificate(pem: bytes) -> tuple[str, datetime] | None:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None
    return cert.subject.rfc4514_string(), cert.not_valid_after_utc


async def credentials_check(conn: ClusterConnection) -> Check:
    missing = _exec_problem(conn)
    if missing is not None:
        return missing
    auth = conn.auth
    sources = auth.sources() if isinstance(auth, UserAuth) else []
    try:
        creds = await auth.get()  # runs an exec plugin, reads token and certificate files
    except PortfwdError as exc:
        return fail("credentials", "credentials", str(exc), sources=sources)
    parts: list[str] = []
    token_file = auth.token_file if isinstance(auth, UserAuth) else None
    if token_file is not None:
        parts.append(f"tokenFile {_e(token_file)} (readable)")
    elif creds.token:
        parts.append("bearer token" + (" (from the exec plugin)" if "exec" in sources else ""))
    details: dict[str, Any] = {"sources": sources}
    if creds.client_cert_pem:
        cert = _certificate(creds.client_cert_pem)
        if cert is None:
            return fail(
                "credentials",
                "credentials",
                f'the client certificate of user "{_e(conn.user)}" is not a PEM certificate',
                "fix client-certificate(-data) in the kubeconfig",
            )
        subject, until = cert
        days = (until - datetime.now(UTC)).total_seconds() / 86400
        details["certificate_subject"] = subject
        details["certificate_not_after"] = until.isoformat()
        when = until.strftime("%Y-%m-%d %H:%M UTC")
        if days <= 0:
            return fail(
                "credentials",
                "credentials",
                f'the client certificate of user "{_e(conn.user)}" ({_e(subject)}) expired '
                f"on {when}",
                "get a new certificate (or log in again) and update the kubeconfig",
                **details,
            )
        parts.append(f"client certificate {_e(subject)}, valid until {when} ({days:.0f} days)")
        if days < CERT_SOON_DAYS:
            return warn(
                "credentials",
                "credentials",
                "; ".join(parts) + " — expires soon",
                "renew the client certificate before it expires",
                **details,
            )
    if not parts:
        return warn(
            "credentials",
            "credentials",
            f'user "{_e(conn.user or "-")}" has no credentials: requests are anonymous',
            "add a token, client certificate or exec plugin to the user in the kubeconfig",
            **details,
        )
    return ok("credentials", "credentials", "; ".join(parts), **details)


def _minor(version: dict[str, Any]) -> int | None:
    match = re.match(r"\d+", str(version.get("minor", "")))
    return int(match.group()) if match else None


async def api_checks(client: KubeClient) -> tuple[list[Check], dict[str, Any] | None]:
    """API reachable (version, latency) and TLS trust. (checks, version or None)."""
    conn = client.conn
    started = time.perf_counter()
    try:
        version = await client.version()
        first = time.perf_counter() - started
        started = time.perf_counter()
        await client.version()
        again = time.perf_counter() - started
    except ClusterUnreachable as exc:
        if exc.cause == "tls":
            return [
                skip("api", "API server", "the TLS handshake failed"),
                fail("tls", "TLS", str(exc)),
            ], None
        return [fail("api", "API server", str(exc)), skip("tls", "TLS", "no connection")], None
    except ApiError as exc:  # 401: the message says whose credentials and what to do
        return [
            fail("api", "API server", str(exc)),
            ok("tls", "TLS", "the server's certificate was verified"),
        ], None
    git = str(version.get("gitVersion") or "?")
    checks = [
        ok(
            "api",
            "API server",
            f"{_e(conn.server)} answers: Kubernetes {_e(git)} in {first * 1000:.0f} ms "
            f"({again * 1000:.0f} ms on an open connection)",
            version=git,
            latency_ms=round(first * 1000, 1),
            latency_open_ms=round(again * 1000, 1),
        )
    ]
    checks.append(_tls_check(conn))
    return checks, version


def _tls_check(conn: ClusterConnection) -> Check:
    if not conn.server.lower().startswith("https://"):
        return fail(
            "tls",
            "TLS",
            f"{_e(conn.server)} is plain HTTP: tokens and traffic are not encrypted",
            f'use an https:// server for cluster "{_e(conn.cluster)}"',
        )
    if conn.insecure_skip_tls_verify:
        return fail(
            "tls",
            "TLS",
            f'insecure-skip-tls-verify is set for cluster "{_e(conn.cluster)}": the server is '
            "not verified, anyone in between could read your credentials",
            "set certificate-authority(-data) for the cluster and remove insecure-skip-tls-verify",
        )
    trust = (
        f'the certificate authority of cluster "{_e(conn.cluster)}"'
        if conn.ca_pem is not None
        else "the system's trusted roots"
    )
    name = f" (as {_e(conn.tls_server_name)})" if conn.tls_server_name else ""
    return ok("tls", "TLS", f"the server's certificate is verified against {trust}{name}")


async def rbac_checks(client: KubeClient, version: dict[str, Any]) -> list[Check]:
    """What this user may do, as the API server says (SelfSubjectAccessReview)."""
    ns = client.conn.namespace
    asks: list[tuple[str, str, str, str, str | None]] = [
        (verb, kind.plural, kind.group, "", ns) for kind in READS for verb in READ_VERBS
    ]
    asks += [("get", "pods", "", "portforward", ns), ("create", "pods", "", "portforward", ns)]
    asks.append(("list", "namespaces", "", "", None))
    try:
        answers = await asyncio.gather(
            *(client.access_review(v, r, group=g, subresource=s, ns=n) for v, r, g, s, n in asks)
        )
    except PortfwdError as exc:
        return [
            fail(
                "rbac",
                "RBAC",
                f"cannot ask the API server what this user may do: {exc}",
                "ask your cluster admin: every user may normally create "
                "selfsubjectaccessreviews (the system:basic-user role)",
            )
        ]
    allowed = {(v, r, s): a for (v, r, _, s, _), (a, _) in zip(asks, answers, strict=True)}
    where = f'in namespace "{_e(ns)}"'
    checks: list[Check] = []
    for kind in READS:
        resource, group = kind.plural, kind.group
        missing = [v for v in READ_VERBS if not allowed[(v, resource, "")]]
        title = f"RBAC {resource}"
        if not missing:
            checks.append(ok(f"rbac.{resource}", title, f"get, list, watch {where}"))
            continue
        grant = f"a Role {where} with get, list, watch on {resource}"
        if group:
            grant += f' (API group "{group}")'
        text = f"cannot {', '.join(missing)} {resource} {where}: needed for {kind.needed_for}"
        make = fail if kind.required else warn
        checks.append(make(f"rbac.{resource}", title, text, f"ask your cluster admin for {grant}"))
    if allowed[("list", "namespaces", "")]:
        checks.append(ok("rbac.namespaces", "RBAC namespaces", "list (the picker lists them)"))
    else:
        checks.append(
            warn(
                "rbac.namespaces",
                "RBAC namespaces",
                "cannot list namespaces: the picker asks you to type one",
                "nothing to do, or ask for list on namespaces (a ClusterRole)",
            )
        )
    checks.append(
        _portforward_check(
            allowed[("get", "pods", "portforward")],
            allowed[("create", "pods", "portforward")],
            _minor(version),
            where,
        )
    )
    return checks


def _portforward_check(can_get: bool, can_create: bool, minor: int | None, where: str) -> Check:
    """Which wire protocols this user's pods/portforward rights open (README, The wire):
    a WebSocket upgrade (SPDY over WebSocket, v4) is a GET and needs `get`, and on 1.35+
    also `create`; plain SPDY is a POST and needs `create`."""
    ws_needs_create = minor is None or minor >= WEBSOCKET_CREATE_SINCE
    server = f"1.{minor}" if minor is not None else "this server"
    websocket = can_get and (can_create or not ws_needs_create)
    rights = [v for v, has in (("get", can_get), ("create", can_create)) if has]
    have = f"{' and '.join(rights) or 'neither get nor create'} on pods/portforward {where}"
    details = {"get": can_get, "create": can_create, "websocket": websocket, "spdy": can_create}
    ws_rule = 'WebSocket upgrades need "get"' + (
        f' and, on {server}, "create"' if ws_needs_create else ""
    )
    if websocket and can_create:
        return ok("portforward", "port-forward", f"{have}: every protocol works", **details)
    if websocket:
        return ok(
            "portforward",
            "port-forward",
            f"{have}: SPDY over WebSocket and v4 work; plain SPDY (needs create) does not",
            **details,
        )
    if can_create:
        return ok(
            "portforward",
            "port-forward",
            f"{have}: plain SPDY works (auto falls back to it); {ws_rule}",
            **details,
        )
    return fail(
        "portforward",
        "port-forward",
        f'{have}: no protocol works ({ws_rule}; plain SPDY needs "create")',
        f'ask your cluster admin for a Role {where} with "get" and "create" on pods/portforward',
        **details,
    )


async def cluster_checks(
    kubeconfig: str | None, context: str | None, namespace: str | None
) -> list[Check]:
    later = (("api", "API server"), ("tls", "TLS"), ("rbac", "RBAC"))
    check, found = kubeconfig_check(kubeconfig)
    checks = [check]
    if not found:
        return checks + [
            skip(n, t, "no kubeconfig")
            for n, t in (("context", "context"), ("credentials", "credentials"), *later)
        ]
    context_checks, conn = await asyncio.to_thread(context_check, kubeconfig, context, namespace)
    checks += context_checks
    if conn is None:
        if not any(c.name == "credentials" for c in checks):
            checks.append(skip("credentials", "credentials", "the context could not be loaded"))
        return checks + [skip(n, t, "the context could not be loaded") for n, t in later]
    credentials = await credentials_check(conn)
    checks.append(credentials)
    if credentials.status == "fail":
        return checks + [skip(n, t, "no credentials") for n, t in later]
    async with KubeClient(
        conn, request_timeout=REQUEST_TIMEOUT, connect_timeout=CONNECT_TIMEOUT, heartbeat=None
    ) as client:
        api, version = await api_checks(client)
        checks += api
        if version is None:
            return [*checks, skip("rbac", "RBAC", "the API server did not answer")]
        checks += await rbac_checks(client, version)
    return checks
