"""When a context's credentials run out, and getting fresh ones before they do.

A forward that works until 14:03 and then fails every new connection with 401 is a classic:
the exec plugin's token (EKS, GKE, OIDC logins) or the client certificate expired. What is
known, without asking anyone: an exec plugin's `status.expirationTimestamp`, a client
certificate's notAfter (the kubeconfig's or the plugin's), and a bearer token's `exp` claim
when it is a JWT (service-account tokens are). The earliest of those is the credential's expiry.

Only an exec plugin can be asked for a new credential: it is run again :func:`refresh_margin`
before its expiry (a quarter of the credential's life, at most five minutes), so a running
forward never meets an expired one. A certificate or a static token cannot be renewed from
here: its countdown is all that can be shown. Nothing here logs or returns a secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from portfwd.kube.auth import AuthProvider, UserAuth

MAX_MARGIN = 300.0  # refresh at most this long before expiry
MIN_MARGIN = 1.0
RETRY_AFTER_FAILURE = 30.0  # a failed early refresh is tried again this much later
EXPIRY_WARNING = 600.0  # a credential nothing here can renew is announced this long before


@dataclass(frozen=True)
class CredentialFacts:
    kind: str  # "exec plugin token", "client certificate", "token" ...
    expires_at: float | None  # wall clock; None: no expiry known
    refreshed_at: float | None  # when the plugin last gave a fresh one (None: not a plugin)
    refreshable: bool  # an exec plugin that portfwd may run again
    refresh_error: str | None = None


def refresh_margin(lifetime: float) -> float:
    """How long before expiry a credential of this lifetime is refreshed."""
    return max(MIN_MARGIN, min(MAX_MARGIN, lifetime / 4))


def credential_facts(auth: AuthProvider) -> CredentialFacts | None:
    """What authenticates this user now and when it runs out; None when nothing is known
    (no credentials, or an auth provider of another kind)."""
    if not isinstance(auth, UserAuth):
        return None
    plugin = auth.exec_plugin
    token = auth.static_token
    cert = auth.static_cert
    if plugin is not None and token is None and cert is None:
        expires = _stamp(plugin.expires)
        plugin_cert = plugin.cached_cert
        if plugin_cert is not None:
            not_after = cert_not_after(plugin_cert)
            expires = _earliest(expires, not_after)
        kind = "exec plugin certificate" if plugin_cert is not None else "exec plugin token"
        if plugin.fetched_at is None:
            kind = "exec plugin (not run yet)"
        allowed = plugin.config.interactive_mode != "Always"
        return CredentialFacts(kind, expires, plugin.fetched_at, allowed, plugin.refresh_error)
    if cert is not None:
        expires = cert_not_after(cert)
        if token is not None:
            expires = _earliest(expires, jwt_expiry(token))
        return CredentialFacts("client certificate", expires, None, False)
    if token is not None:
        return CredentialFacts("token", jwt_expiry(token), None, False)
    return None


def refresh_due_at(auth: AuthProvider) -> float | None:
    """Wall clock when the credential should be refreshed (None: never, or not refreshable)."""
    facts = credential_facts(auth)
    if facts is None or not facts.refreshable or facts.expires_at is None:
        return None
    if facts.refreshed_at is None:
        return None
    lifetime = max(0.0, facts.expires_at - facts.refreshed_at)
    due = facts.expires_at - refresh_margin(lifetime)
    if facts.refresh_error is not None:
        due = max(due, time.time() + RETRY_AFTER_FAILURE)
    return due


async def refresh_if_due(auth: AuthProvider) -> bool:
    """Run the exec plugin again when its credential is within its margin of expiry; True
    when a fresh credential came. Callers sharing a user share one run."""
    if not isinstance(auth, UserAuth) or auth.exec_plugin is None:
        return False

    def due() -> bool:
        at = refresh_due_at(auth)
        return at is not None and time.time() >= at

    if not due():
        return False
    return await auth.exec_plugin.refresh(due)


def _stamp(when: datetime | None) -> float | None:
    return when.timestamp() if when is not None else None


def _earliest(a: float | None, b: float | None) -> float | None:
    known = [t for t in (a, b) if t is not None]
    return min(known) if known else None


@lru_cache(maxsize=16)
def cert_not_after(pem: bytes) -> float | None:
    """The first certificate's notAfter in `pem` (None: not a certificate we can read)."""
    from cryptography import x509  # a few ms to import: only when a certificate is shown

    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None
    return cert.not_valid_after_utc.timestamp()


def jwt_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT bearer token (not verified: only shown); None otherwise."""
    parts = token.split(".")
    if len(parts) != 3 or len(parts[1]) > 16 * 1024:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError, RecursionError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return float(exp)
