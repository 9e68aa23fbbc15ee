"""Which namespace and context an imported entry may name.

An import writes what it read into profiles.yaml, and from there the names reach kubectl
lines (`portfwd export`), shell completion and API paths: a namespace like `de'mo` is no
namespace at all, only text that breaks the next tool. So an entry whose namespace is not a
Kubernetes namespace name, or whose context has characters no kubeconfig tool writes, is
skipped with the rule.
"""

from __future__ import annotations

import re

from portfwd.errors import InputError
from portfwd.safetext import escape_controls

NAMESPACE_RULE = (
    "a namespace is up to 63 lowercase letters, digits and '-', starting and ending with a"
    " letter or digit"
)
CONTEXT_RULE = "a context name is up to 253 letters, digits and . _ - : / @ + (no spaces or quotes)"
_NAMESPACE_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
# What kubeconfig writers use: kind-kind, gke_project_zone_name, arn:aws:eks:...:cluster/x,
# user@cluster, minikube, docker-desktop.
_CONTEXT_RE = re.compile(r"[A-Za-z0-9._:/@+-]{1,253}")


def _shown(value: str) -> str:
    return '"' + escape_controls(value[:80]) + ('..."' if len(value) > 80 else '"')


def check_scope(namespace: str | None, context: str | None) -> None:
    """InputError (one line, with the rule) for a namespace or context an import refuses."""
    if namespace is not None and not _NAMESPACE_RE.fullmatch(namespace):
        raise InputError(f"namespace {_shown(namespace)} is not valid: {NAMESPACE_RULE}")
    if context is not None and not _CONTEXT_RE.fullmatch(context):
        raise InputError(f"context {_shown(context)} is not valid: {CONTEXT_RULE}")
