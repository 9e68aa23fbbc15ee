"""Shared pieces for the kubeconfig/auth tests (no tests here): PKI, an exec plugin, writers."""

from __future__ import annotations

import base64
import os
import stat
import sys
import textwrap
from pathlib import Path

DATA = Path(__file__).parent / "data"
CA_PEM = (DATA / "ca.pem").read_bytes()
OTHER_CA_PEM = (DATA / "other-ca.pem").read_bytes()
CLIENT_PEM = (DATA / "client.pem").read_bytes()
CLIENT_KEY_PEM = (DATA / "client-key.pem").read_bytes()
SERVER_PEM = (DATA / "server.pem").read_bytes()
SERVER_KEY_PEM = (DATA / "server-key.pem").read_bytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# A fake exec credential plugin. Behaviour is chosen by its first argument; it records each run
# in $PLUGIN_COUNT (if set) so tests can tell a cached answer from a fresh run.
PLUGIN_SOURCE = textwrap.dedent(
    """\
    import json, os, sys
    mode = sys.argv[1]
    info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
    api = info["apiVersion"]
    if os.environ.get("PLUGIN_COUNT"):
        with open(os.environ["PLUGIN_COUNT"], "a") as fh:
            fh.write(json.dumps(info) + "\\n")
    status = {}
    if mode == "token":
        status["token"] = "exec-" + sys.argv[2] + "-" + os.environ.get("PLUGIN_SECRET", "")
        if os.environ.get("PLUGIN_COUNT"):
            with open(os.environ["PLUGIN_COUNT"]) as fh:
                status["token"] += "-run" + str(len(fh.readlines()))
    elif mode == "from-file":
        status["token"] = open(sys.argv[2]).read().strip()
    elif mode == "cert":
        status["clientCertificateData"] = open(sys.argv[2]).read()
        status["clientKeyData"] = open(sys.argv[3]).read()
    elif mode == "fail":
        sys.stderr.write("error: could not log in to the identity provider\\nmore detail\\n")
        sys.exit(3)
    elif mode == "garbage":
        print("Please open https://login.example/ to sign in")
        sys.exit(0)
    elif mode == "wrong-api":
        api = "client.authentication.k8s.io/v1alpha1"
        status["token"] = "x"
    elif mode == "only-cert":
        status["clientCertificateData"] = "x"
    elif mode == "empty":
        pass
    if os.environ.get("PLUGIN_EXPIRES"):
        status["expirationTimestamp"] = os.environ["PLUGIN_EXPIRES"]
    print(json.dumps({"apiVersion": api, "kind": "ExecCredential", "status": status}))
    """
)


def write_plugin(directory: Path, name: str = "plugin.py") -> Path:
    """Write the fake plugin as an executable script (its shebang is this interpreter)."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\n" + PLUGIN_SOURCE)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def base_env(home: Path) -> dict[str, str]:
    """A clean environment: no user kubeconfig, no in-cluster variables leaking in."""
    return {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
