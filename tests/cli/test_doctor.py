"""`portfwd doctor` as a user runs it, against the sandbox's identities and broken setups.

Each sandbox context is one identity with its own rights (README, the sandbox's table): the
checks that pass and fail must be exactly that identity's. Bad setups (a broken kubeconfig,
an unreachable cluster, a missing exec plugin, an untrusted or unverified server, rejected or
expired credentials) each give the failing check's line with its fix, exit 1, and nothing on
stderr (no traceback).
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from portfwd.sandbox.cluster import SandboxCluster
from tests.support.cli import portfwd_async

CLUSTER_CHECKS = [
    "kubeconfig",
    "context",
    "credentials",
    "api",
    "tls",
    "rbac.pods",
    "rbac.services",
    "rbac.endpointslices",
    "rbac.deployments",
    "rbac.statefulsets",
    "rbac.replicasets",
    "rbac.namespaces",
    "portforward",
]
LOCAL_CHECKS = ["ipv6_loopback", "privileged_ports", "config_dir", "session_file", "daemon"]
WORKLOADS = ("rbac.deployments", "rbac.statefulsets", "rbac.replicasets")


async def doctor(
    *args: str, config: Path, output: str = "json", env: dict[str, str] | None = None
) -> tuple[int, Any, str]:
    environ = {**(env or os.environ), "PORTFWD_CONFIG_DIR": str(config)}
    code, out, err = await portfwd_async("doctor", "-o", output, *args, env=environ, limit=60)
    assert err == "", err  # never a traceback, never noise
    return code, (json.loads(out) if output == "json" else out), err


def statuses(doc: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in doc["checks"]}


def _all_ok() -> dict[str, str]:
    return dict.fromkeys(CLUSTER_CHECKS, "ok")


EXPECTED: dict[str, tuple[int, dict[str, str]]] = {
    "sandbox": (0, _all_ok()),
    "sandbox-cert": (0, _all_ok()),
    "sandbox-viewer": (1, {**_all_ok(), "portforward": "fail"}),
    "sandbox-pf-create": (0, _all_ok()),
    "sandbox-pf-get": (1, {**_all_ok(), "portforward": "fail"}),
    "sandbox-limited": (0, {**_all_ok(), "rbac.namespaces": "warn"}),
    "sandbox-nobody": (
        1,
        {
            **_all_ok(),
            "rbac.pods": "fail",
            "rbac.services": "fail",
            "rbac.endpointslices": "fail",
            **dict.fromkeys(WORKLOADS, "warn"),
            "rbac.namespaces": "warn",
            "portforward": "fail",
        },
    ),
}


@pytest.mark.parametrize("context", list(EXPECTED))
async def test_each_sandbox_identity(context: str, sandbox: SandboxCluster, tmp_path: Path) -> None:
    code, doc, _ = await doctor(
        "--kubeconfig", str(sandbox.kubeconfig_path), "--context", context, config=tmp_path
    )
    expected_code, expected = EXPECTED[context]
    found = statuses(doc)
    assert [n for n in found if n in CLUSTER_CHECKS] == CLUSTER_CHECKS
    assert [n for n in found if n not in CLUSTER_CHECKS] == LOCAL_CHECKS
    assert {n: found[n] for n in CLUSTER_CHECKS} == expected
    assert code == expected_code and doc["ok"] is (code == 0)
    assert doc["context"] == context
    by_name = {c["name"]: c for c in doc["checks"]}
    assert by_name["api"]["details"]["version"].startswith("v1.36.")
    assert all(c["fix"] for c in doc["checks"] if c["status"] == "fail")
    pf = by_name["portforward"]["details"]
    if context == "sandbox-pf-create":  # the usual Role: plain SPDY only
        assert (pf["spdy"], pf["websocket"]) == (True, False)
        assert "plain SPDY works" in by_name["portforward"]["summary"]
    if context == "sandbox-cert":
        assert by_name["credentials"]["details"]["certificate_subject"].startswith("CN=admin")


async def test_text_output_one_line_per_check(sandbox: SandboxCluster, tmp_path: Path) -> None:
    code, out, _ = await doctor(
        *("--kubeconfig", str(sandbox.kubeconfig_path), "--context", "sandbox-viewer"),
        config=tmp_path,
        output="text",
    )
    lines = out.splitlines()
    assert code == 1
    assert len(lines) == len(CLUSTER_CHECKS) + len(LOCAL_CHECKS) + 1
    assert all(line[0] in "✓✗!-" for line in lines[:-1])
    (failed,) = [line for line in lines if line.startswith("✗")]
    assert failed.startswith("✗ port-forward")
    assert 'neither get nor create on pods/portforward in namespace "demo"' in failed
    assert '— fix: ask your cluster admin for a Role in namespace "demo"' in failed
    assert lines[-1] == "1 check failed"


async def test_options_before_the_command(sandbox: SandboxCluster, tmp_path: Path) -> None:
    environ = {**os.environ, "PORTFWD_CONFIG_DIR": str(tmp_path)}
    code, out, err = await portfwd_async(
        *("--kubeconfig", str(sandbox.kubeconfig_path)),
        *("--context", "sandbox-limited", "doctor", "-o", "json"),
        env=environ,
    )
    assert (code, err) == (0, "")
    assert json.loads(out)["context"] == "sandbox-limited"


async def test_a_1_34_server_lets_get_open_websockets(
    sandbox: SandboxCluster, tmp_path: Path
) -> None:
    """Before 1.35 a WebSocket upgrade needs only `get`: pf-get can forward there."""
    sandbox.websocket_needs_create = False
    code, doc, _ = await doctor(
        "--kubeconfig", str(sandbox.kubeconfig_path), "--context", "sandbox-pf-get", config=tmp_path
    )
    check = next(c for c in doc["checks"] if c["name"] == "portforward")
    assert (code, check["status"], check["details"]["websocket"]) == (0, "ok", True)
    assert "SPDY over WebSocket and v4 work" in check["summary"]


# --------------------------------------------------------------------------- bad setups


def _kubeconfig(tmp_path: Path, name: str, data: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o600)
    return str(path)


def _variant(sandbox: SandboxCluster, tmp_path: Path, name: str, **changes: Any) -> str:
    data = yaml.safe_load(sandbox.kubeconfig_path.read_text())
    data["clusters"][0]["cluster"].update(changes.pop("cluster", {}))
    for user in data["users"]:
        if user["name"] == "admin":
            user["user"] = changes.pop("user", user["user"])
    return _kubeconfig(tmp_path, name, data)


def _line(out: str, title: str) -> str:
    """The line of the check `title`, its column padding squeezed to one space."""
    line = next(line for line in out.splitlines() if line[2:].startswith(title))
    return line[: 2 + len(title)] + " " + line[2 + len(title) :].lstrip(" ")


async def test_broken_kubeconfig(tmp_path: Path) -> None:
    broken = tmp_path / "broken.kubeconfig"
    broken.write_text("apiVersion: v1\nclusters: [\n")
    code, out, _ = await doctor("--kubeconfig", str(broken), config=tmp_path, output="text")
    assert code == 1
    assert _line(out, "kubeconfig").startswith(
        f"✗ kubeconfig kubeconfig {broken} is not valid YAML at line 3"
    )
    for title in ("context", "credentials", "API server", "TLS", "RBAC"):
        assert "not checked: no kubeconfig" in _line(out, title)


async def test_unreachable_cluster(sandbox: SandboxCluster, tmp_path: Path) -> None:
    kc = _variant(sandbox, tmp_path, "down", cluster={"server": "https://127.0.0.1:9"})
    code, out, _ = await doctor("--kubeconfig", kc, config=tmp_path, output="text")
    assert code == 1
    assert "connection refused — is the cluster running?" in _line(out, "API server")
    assert _line(out, "RBAC").startswith("- RBAC")


async def test_missing_exec_plugin(sandbox: SandboxCluster, tmp_path: Path) -> None:
    exec_user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "portfwd-test-no-such-plugin",
            "interactiveMode": "Never",
            "installHint": "install it from the test's imagination",
        }
    }
    kc = _variant(sandbox, tmp_path, "exec", user=exec_user)
    code, out, _ = await doctor("--kubeconfig", kc, config=tmp_path, output="text")
    line = _line(out, "credentials")
    assert code == 1
    assert line.startswith('✗ credentials exec plugin "portfwd-test-no-such-plugin"')
    assert "is not on PATH — fix: install it from the test's imagination" in line


async def test_untrusted_and_unverified_servers(sandbox: SandboxCluster, tmp_path: Path) -> None:
    wrong_name = _variant(sandbox, tmp_path, "tls", cluster={"tls-server-name": "wrong.invalid"})
    code, out, _ = await doctor("--kubeconfig", wrong_name, config=tmp_path, output="text")
    assert code == 1
    assert _line(out, "TLS").startswith("✗ TLS")
    assert "cannot verify the TLS certificate" in _line(out, "TLS")
    data = yaml.safe_load(sandbox.kubeconfig_path.read_text())
    cluster = data["clusters"][0]["cluster"]
    del cluster["certificate-authority-data"]
    cluster["insecure-skip-tls-verify"] = True
    insecure = _kubeconfig(tmp_path, "insecure", data)
    code, out, _ = await doctor("--kubeconfig", insecure, config=tmp_path, output="text")
    assert code == 1
    assert "insecure-skip-tls-verify is set" in _line(out, "TLS")
    assert _line(out, "port-forward").startswith("✓")  # the rest still checked


async def test_rejected_and_expired_credentials(sandbox: SandboxCluster, tmp_path: Path) -> None:
    bad = _variant(sandbox, tmp_path, "401", user={"token": "not-the-token"})
    code, out, _ = await doctor("--kubeconfig", bad, config=tmp_path, output="text")
    assert code == 1
    assert 'rejected the credentials of user "admin" (401 Unauthorized)' in _line(out, "API server")
    cert, key = _expired_certificate()
    expired = _variant(
        sandbox,
        tmp_path,
        "expired",
        user={"client-certificate-data": cert, "client-key-data": key},
    )
    code, out, _ = await doctor("--kubeconfig", expired, config=tmp_path, output="text")
    line = _line(out, "credentials")
    assert code == 1
    assert line.startswith('✗ credentials the client certificate of user "admin" (CN=old)')
    assert "expired on 2020-01-02" in line and "— fix: get a new certificate" in line


def _expired_certificate() -> tuple[str, str]:
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
        .not_valid_after(datetime.datetime(2020, 1, 2, tzinfo=datetime.UTC))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return base64.b64encode(pem).decode(), base64.b64encode(key_pem).decode()


async def test_unsafe_config_dir_is_a_failed_check(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    config.chmod(0o777)
    broken = tmp_path / "none.kubeconfig"
    code, out, _ = await doctor("--kubeconfig", str(broken), config=config, output="text")
    assert code == 1
    assert "is writable by group or others" in _line(out, "config dir")
    assert f"chmod go-w {config}" in _line(out, "config dir")


async def test_merged_kubeconfig_files_and_a_token_file(
    sandbox: SandboxCluster, tmp_path: Path
) -> None:
    """KUBECONFIG names two files (contexts in one, clusters and users in the other): both
    are listed and merged; a tokenFile is read, and once unreadable is the failing check."""
    data = yaml.safe_load(sandbox.kubeconfig_path.read_text())
    token = tmp_path / "token"
    for user in data["users"]:
        if user["name"] == "admin":
            token.write_text(user["user"].pop("token"))
            user["user"]["tokenFile"] = str(token)
    token.chmod(0o600)
    contexts = {k: data.pop(k) for k in ("contexts", "current-context")}
    first = _kubeconfig(tmp_path, "contexts.kubeconfig", {**contexts, "apiVersion": "v1"})
    second = _kubeconfig(tmp_path, "clusters.kubeconfig", data)
    env = {**os.environ, "KUBECONFIG": os.pathsep.join([first, second])}
    code, out, _ = await doctor("--context", "sandbox", config=tmp_path, output="text", env=env)
    assert code == 0, out
    line = _line(out, "kubeconfig")
    assert line.startswith(f"✓ kubeconfig {first}, {second} (from KUBECONFIG; 2 files merged)")
    assert f"✓ credentials tokenFile {token} (readable)" in _line(out, "credentials")
    assert _line(out, "API server").startswith("✓ API server")
    token.unlink()
    code, out, _ = await doctor("--context", "sandbox", config=tmp_path, output="text", env=env)
    assert code == 1
    assert _line(out, "credentials").startswith("✗ credentials")
    assert str(token) in _line(out, "credentials")
