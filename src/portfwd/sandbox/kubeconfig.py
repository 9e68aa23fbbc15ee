"""The kubeconfig the sandbox writes, so kubectl, the official client and portfwd can use it.

Contexts of a cluster named `sandbox` (all with namespace `demo`): `sandbox` (admin token,
current), `sandbox-cert` (admin client certificate), `sandbox-viewer`, `sandbox-pf-create` and
`sandbox-pf-get` (the viewer plus one port-forward verb each), `sandbox-limited`,
`sandbox-nobody`; its cluster entry is `portfwd-sandbox`, its users `admin`, `admin-cert`, ...
Another cluster of a fleet, say `sandbox-2`, has the same set under its own name:
`sandbox-2`, `sandbox-2-cert`, ..., cluster `portfwd-sandbox-2`, users `admin@sandbox-2`, ...
so one file can hold them all (`merge_kubeconfigs`).
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

DEFAULT_NAME = "sandbox"  # the cluster, and its admin context
CLUSTER = f"portfwd-{DEFAULT_NAME}"  # its cluster entry
NAMESPACE = "demo"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig_dict(
    server: str, pki: SandboxPKI, tokens: Tokens, name: str = DEFAULT_NAME
) -> dict[str, Any]:
    """One cluster's kubeconfig: its cluster entry, users and contexts (see the module doc)."""

    def user(base: str) -> str:
        return base if name == DEFAULT_NAME else f"{base}@{name}"

    users: list[tuple[str, str, dict[str, Any]]] = [
        (name, user("admin"), {"token": tokens.admin}),
        (
            f"{name}-cert",
            user("admin-cert"),
            {
                "client-certificate-data": _b64(pki.client.cert_pem),
                "client-key-data": _b64(pki.client.key_pem),
            },
        ),
        (f"{name}-viewer", user("viewer"), {"token": tokens.viewer}),
        (f"{name}-pf-create", user("pf-create"), {"token": tokens.pf_create}),
        (f"{name}-pf-get", user("pf-get"), {"token": tokens.pf_get}),
        (f"{name}-limited", user("limited"), {"token": tokens.limited}),
        (f"{name}-nobody", user("nobody"), {"token": tokens.nobody}),
    ]
    cluster = f"portfwd-{name}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": cluster,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": _b64(pki.ca.cert_pem),
                },
            }
        ],
        "users": [{"name": u, "user": creds} for _, u, creds in users],
        "contexts": [
            {
                "name": ctx,
                "context": {"cluster": cluster, "user": u, "namespace": NAMESPACE},
            }
            for ctx, u, _ in users
        ],
        "current-context": name,
    }


def merge_kubeconfigs(configs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several clusters' kubeconfigs as one file; the first one's context is current."""
    if not configs:
        raise ValueError("no kubeconfig to merge")
    merged: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [],
        "users": [],
        "contexts": [],
        "current-context": configs[0]["current-context"],
    }
    for cfg in configs:
        for key in ("clusters", "users", "contexts"):
            merged[key] += cfg[key]
    for key in ("clusters", "users", "contexts"):
        names = [entry["name"] for entry in merged[key]]
        if len(set(names)) != len(names):
            raise ValueError(f"two clusters share a name in the merged kubeconfig's {key}")
    return merged


class KubeconfigWriteError(Exception):
    """The kubeconfig could not be written where the user asked (one line for the CLI)."""


def write_kubeconfig(
    path: Path, server: str, pki: SandboxPKI, tokens: Tokens, name: str = DEFAULT_NAME
) -> None:
    """Write atomically with mode 0600 (a reader never sees a partial file)."""
    write_config(path, kubeconfig_dict(server, pki, tokens, name))


def write_config(path: Path, config: dict[str, Any]) -> None:
    """Write a kubeconfig dict atomically with mode 0600; KubeconfigWriteError if it fails."""
    try:
        _write(path, yaml.safe_dump(config, sort_keys=False))
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
