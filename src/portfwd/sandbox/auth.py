"""Who is calling, and may they: the sandbox's authenticator and a tiny fixed RBAC.

Users (one per kubeconfig context, see `kubeconfig.py`):
- `admin` (token) and `admin` via client certificate (CN=admin, O=system:masters): everything.
- `viewer`: get/list/watch everything except `pods/portforward`.
- `pf-create`: what `viewer` may, plus `create` on `pods/portforward` (the usual port-forward
  Role: enough for SPDY, not for a WebSocket upgrade, which is a GET). Neither pf- user may
  read `pods/log`: that Role does not grant it.
- `pf-get`: what `viewer` may, plus `get` on `pods/portforward` (a WebSocket upgrade passes
  RBAC, then a 1.35+ API server also wants `create`: see `websocket_needs_create`).
- `limited`: everything inside namespace `demo`, nothing at cluster scope or elsewhere.
- `nobody`: authenticated, allowed nothing.
- `system:anonymous` (no credentials): only /version, like a real cluster.
"""

from __future__ import annotations

import secrets
import ssl
from dataclasses import dataclass, field
from typing import Any

ANONYMOUS = "system:anonymous"
READ_VERBS = frozenset({"get", "list", "watch"})
PORTFORWARD_VERBS = {"pf-create": "create", "pf-get": "get"}  # the one verb each may use


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()


@dataclass
class Tokens:
    """Random bearer tokens, one per role; never printed or logged."""

    admin: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    viewer: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    pf_create: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    pf_get: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    limited: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    nobody: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)

    def lookup(self, token: str) -> User | None:
        for attr in ("admin", "viewer", "pf_create", "pf_get", "limited", "nobody"):
            if secrets.compare_digest(token, getattr(self, attr)):
                groups = ("system:masters",) if attr == "admin" else ("system:authenticated",)
                return User(attr.replace("_", "-"), groups)
        return None


class Unauthenticated(Exception):
    """A credential was presented and is wrong (401), unlike no credential (anonymous)."""


def authenticate(headers: Any, ssl_object: ssl.SSLObject | None, tokens: Tokens) -> User:
    auth = headers.get("Authorization", "")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated
        user = tokens.lookup(token.strip())
        if user is None:
            raise Unauthenticated
        return user
    if ssl_object is not None:
        peer = ssl_object.getpeercert()
        if peer:
            cn = ""
            orgs: list[str] = []
            subject: Any = peer.get("subject", ())
            for rdn in subject:
                for key, value in rdn:
                    if key == "commonName":
                        cn = value
                    elif key == "organizationName":
                        orgs.append(value)
            if cn:
                return User(cn, tuple(orgs))
    return User(ANONYMOUS)


def authorize(user: User, verb: str, resource: str, subresource: str, ns: str | None) -> bool:
    """The fixed RBAC: see the module docstring."""
    if "system:masters" in user.groups:
        return True
    portforward = resource == "pods" and subresource == "portforward"
    if user.name == "viewer":
        return verb in READ_VERBS and not portforward
    if user.name in PORTFORWARD_VERBS:
        if portforward:
            return verb == PORTFORWARD_VERBS[user.name]
        return verb in READ_VERBS and not (resource == "pods" and subresource == "log")
    if user.name == "limited":
        return ns == "demo"
    return False


def forbidden_message(
    user: User,
    verb: str,
    qualified: str,
    resource: str,
    group: str,
    subresource: str,
    ns: str | None,
    name: str | None,
) -> str:
    """The kube-apiserver's RBAC denial text, word for word (docs/protocols.md, section 4)."""
    full = f"{resource}/{subresource}" if subresource else resource
    who = f'{qualified} "{name}"' if name else qualified
    where = f'in the namespace "{ns}"' if ns else "at the cluster scope"
    return (
        f'{who} is forbidden: User "{user.name}" cannot {verb} resource "{full}" '
        f'in API group "{group}" {where}'
    )
