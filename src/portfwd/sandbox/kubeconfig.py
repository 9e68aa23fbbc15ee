"""The kubeconfig the sandbox writes, so kubectl, the official client and portfwd can use it.

Contexts (all with namespace `demo`): `sandbox` (admin token, current), `sandbox-cert`
(admin client certificate), `sandbox-viewer`, `sandbox-pf-create` and `sandbox-pf-get` (the
viewer plus one port-forward verb each), `sandbox-limited`, `sandbox-nobody`.
Written with mode 0600: it holds tokens and a private key.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import yaml

from portfwd.sandbox.auth import Tokens
from portfwd.sandbox.pki import SandboxPKI

CLUSTER = "portfwd-sandbox"
NAMESPACE = "demo"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig_dict(server: str, pki: SandboxPKI, tokens: Tokens) -> dict[str, Any]:
    users: list[tuple[str, str, dict[str, Any]]] = [
        ("sandbox", "admin", {"token": tokens.admin}),
        (
            "sandbox-cert",
            "admin-cert",
            {
                "client-certificate-data": _b64(pki.client.cert_pem),
                "client-key-data": _b64(pki.client.key_pem),
            },
        ),
        ("sandbox-viewer", "viewer", {"token": tokens.viewer}),
        ("sandbox-pf-create", "pf-create", {"token": tokens.pf_create}),
        ("sandbox-pf-get", "pf-get", {"token": tokens.pf_get}),
        ("sandbox-limited", "limited", {"token": tokens.limited}),
        ("sandbox-nobody", "nobody", {"token": tokens.nobody}),
    ]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": CLUSTER,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": _b64(pki.ca.cert_pem),
                },
            }
        ],
        "users": [{"name": user, "user": creds} for _, user, creds in users],
        "contexts": [
            {
                "name": ctx,
                "context": {"cluster": CLUSTER, "user": user, "namespace": NAMESPACE},
            }
            for ctx, user, _ in users
        ],
        "current-context": "sandbox",
    }


class KubeconfigWriteError(Exception):
    """The kubeconfig could not be written where the user asked (one line for the CLI)."""


def write_kubeconfig(path: Path, server: str, pki: SandboxPKI, tokens: Tokens) -> None:
    """Write atomically with mode 0600 (a reader never sees a partial file)."""
    try:
        _write(path, yaml.safe_dump(kubeconfig_dict(server, pki, tokens), sort_keys=False))
    except OSError as exc:
        raise KubeconfigWriteError(
            f"cannot write the kubeconfig to {path}: {exc.strerror or exc}"
            + (f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else "")
            + "; choose another path with --kubeconfig-out"
        ) from exc


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
