"""The failures the API client reports, each one line a user can act on.

An API error keeps the server's own Status message (`api_message`) beside the line shown to
the user, which names the verb, the resource, the context and what to do.
"""

from __future__ import annotations

import json
import re
from typing import Any

from portfwd.errors import PortfwdError
from portfwd.kube import kinds

_FORBIDDEN_RE = re.compile(
    r'User "(?P<user>[^"]*)" cannot (?P<verb>[\w-]+) resource "(?P<resource>[^"]+)"'
    r'(?: in API group "(?P<group>[^"]*)")?'
)


class ApiError(PortfwdError):
    """The API server answered with an error status (message: one actionable line)."""

    def __init__(
        self, message: str, *, status: int, reason: str = "", api_message: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.api_message = api_message  # the Status message, verbatim


class NotFound(ApiError):
    pass


class Forbidden(ApiError):
    pass


class Unauthorized(ApiError):
    pass


class Expired(ApiError):
    """410 Gone: a resourceVersion or continue token too old. Watches handle it themselves."""


class ClusterUnreachable(PortfwdError):
    """No usable connection to the API server; `cause` says which: refused, dns, timeout,
    tls, proxy, lost, or closed (the KubeClient itself was closed)."""

    def __init__(self, message: str, *, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


def fold_lines(text: str) -> str:
    """A server's message inside our one-line errors (webhook denials may span lines)."""
    return " ".join(text.split())


def status_fields(body: bytes) -> tuple[str, str, dict[str, Any]]:
    """(message, reason, details) of a JSON Status body; plain-text bodies become the message."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        text = body.decode("utf-8", errors="replace").strip()
        return fold_lines(text)[:300], "", {}
    if not isinstance(data, dict):
        return "", "", {}
    details = data.get("details")
    return (
        str(data.get("message") or ""),
        str(data.get("reason") or ""),
        details if isinstance(details, dict) else {},
    )


def grant_hint(verb: str, resource: str, group: str) -> str:
    if resource == "pods/portforward":
        return (
            'ask your cluster admin for a Role granting both "get" and "create" on pods/portforward'
        )
    qualified = f"{resource}.{group}" if group else resource
    return f'ask your cluster admin to grant "{verb}" on {qualified}'


def status_error(
    status: int,
    body: bytes,
    *,
    what: str,
    context: str,
    ns: str | None = None,
    user: str = "",
) -> ApiError:
    """The error for an HTTP status and its body (a JSON Status, or plain text)."""
    message, reason, details = status_fields(body)
    shown = fold_lines(message)
    ctx = f'context "{context}"'
    if status == 401:
        return Unauthorized(
            f'the API server rejected the credentials of user "{user}" (401 Unauthorized); '
            "log in again or refresh the token",
            status=status,
            reason=reason or "Unauthorized",
            api_message=message,
        )
    if status == 403:
        match = _FORBIDDEN_RE.search(message)
        if match:
            verb, resource, group = match["verb"], match["resource"], match["group"] or ""
            scope = f' in namespace "{ns}"' if ns else ""
            if not ns and "at the cluster scope" in message and _namespaced(resource):
                scope = " in all namespaces"  # a list across namespaces (-A): say so
            text = (
                f'user "{match["user"]}" may not {verb} {resource}{scope} (403 Forbidden, '
                f"{ctx}); {grant_hint(verb, resource, group)}"
            )
        else:
            text = f"the API server refused {what} (403 Forbidden, {ctx})" + (
                f": {shown}" if shown else ""
            )
        return Forbidden(text, status=status, reason=reason or "Forbidden", api_message=message)
    if status == 404:
        if message and reason == "NotFound":
            text = shown + (f' in namespace "{ns}"' if ns and details.get("name") else "")
        else:
            # Not a Status: the API itself is missing (e.g. an old or partial server).
            text = f"the API server does not serve {what} (404 Not Found, {ctx})"
        return NotFound(text, status=status, reason=reason or "NotFound", api_message=message)
    if status == 410:
        return Expired(
            f"{what}: {shown or '410 Gone'}",
            status=status,
            reason=reason or "Expired",
            api_message=message,
        )
    detail = f": {shown}" if shown else ""
    answer = f"{status} {reason}" if reason else str(status)
    return ApiError(
        f"the API server answered {answer} to {what}{detail} ({ctx})",
        status=status,
        reason=reason,
        api_message=message,
    )


def _namespaced(resource: str) -> bool:
    """Whether `resource` (a plural) lives in namespaces; unknown ones are taken as such."""
    try:
        return kinds.by_resource(resource).namespaced
    except ValueError:
        return resource not in ("namespaces", "nodes")
