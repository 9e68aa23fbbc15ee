"""Our kubeconfig loader against two oracles: the official ``kubernetes`` client and kubectl.

Each case is a set of kubeconfig files plus how they are selected (``--kubeconfig`` or a
``KUBECONFIG`` list), a context and an ``-n`` value. For every case we resolve server, CA bytes,
client certificate/key bytes, token, namespace, TLS verification, tls-server-name and proxy-url
with our loader and with ``kubernetes.config.load_kube_config`` and assert they agree, or that
both reject the configuration. Where the official Python client is known to deviate from
kubectl, the case says why and we assert kubectl's behaviour instead, using
``kubectl config view --minify --flatten`` (which inlines CA and client cert/key) as the oracle.

Adding a case is one entry in CASES.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

import pytest

from portfwd.errors import ConfigError
from portfwd.kube.config import ClusterConnection, load_connection
from tests.kube.test_config_kit import (
    CA_PEM,
    CLIENT_KEY_PEM,
    CLIENT_PEM,
    OTHER_CA_PEM,
    b64,
    base_env,
    write,
    write_plugin,
)

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client as k8s_client  # noqa: E402
from kubernetes import config as k8s_config  # noqa: E402
from kubernetes.config.incluster_config import InClusterConfigLoader  # noqa: E402

KUBECTL = shutil.which("kubectl")


def _jwt(exp: int) -> str:
    """An unsigned JWT the official client accepts as a (non-expired) oidc id-token."""

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    payload: dict[str, Any] = {"iss": "https://issuer.example", "sub": "alice", "exp": exp}
    # The official client rejects a payload whose unpadded length is 1 mod 4 (invalid base64).
    while len(part(payload)) % 4 == 1:
        payload["pad"] = payload.get("pad", "") + "x"
    return f"{part({'alg': 'RS256'})}.{part(payload)}.c2ln"


OIDC_TOKEN = _jwt(4102444800)  # 2100-01-01

HEAD = "apiVersion: v1\nkind: Config\n"
SRV = "https://203.0.113.10:6443"


@dataclass(frozen=True)
class Case:
    id: str
    files: dict[str, str]  # path relative to the work dir -> YAML (string.Template, $vars)
    use: tuple[str, ...]  # KUBECONFIG order; with explicit=True the one --kubeconfig file
    explicit: bool = False
    env_kubeconfig: tuple[str, ...] = ()  # KUBECONFIG while --kubeconfig is given
    context: str | None = None
    namespace: str | None = None  # our -n
    reject: str | None = None  # substring of our ConfigError; the oracle must reject too
    official_differs: str | None = None  # why; then kubectl is the oracle
    expect: dict[str, Any] = field(default_factory=dict)  # extra facts about our result


CASES: list[Case] = [
    Case(
        "token-inline-ca-data-namespace",
        {
            "a.yaml": HEAD
            + f"""current-context: dev
clusters:
- name: c
  cluster: {{server: "{SRV}", certificate-authority-data: $ca_b64}}
contexts:
- name: dev
  context: {{cluster: c, user: u, namespace: team-a}}
users:
- name: u
  user: {{token: inline-token-123}}
"""
        },
        ("a.yaml",),
        explicit=True,
        expect={"namespace": "team-a", "token": "inline-token-123"},
    ),
    Case(
        "ca-file-absolute",
        {
            "a.yaml": HEAD
            + f"""current-context: dev
clusters:
- name: c
  cluster: {{server: "{SRV}", certificate-authority: $root/pki/ca.pem}}
contexts:
- name: dev
  context: {{cluster: c, user: u}}
users:
- name: u
  user: {{token: t}}
"""
        },
        ("a.yaml",),
        explicit=True,
        expect={"ca": CA_PEM, "namespace": "default"},
    ),
    Case(
        "ca-file-relative",
        {
            "cfg/a.yaml": HEAD
            + f"""current-context: dev
clusters:
- name: c
  cluster: {{server: "{SRV}", certificate-authority: ca.pem}}
contexts:
- name: dev
  context: {{cluster: c, user: u}}
users:
- name: u
  user: {{token: t}}
"""
        },
        ("cfg/a.yaml",),
        explicit=True,
        expect={"ca": CA_PEM},  # cfg/ca.pem, not the work dir's ca.pem (another CA)
    ),
    Case(
        "client-cert-data",
        {
            "a.yaml": HEAD
            + f"""current-context: dev
clusters:
- name: c
  cluster: {{server: "{SRV}", certificate-authority-data: $ca_b64}}
contexts:
- name: dev
  context: {{cluster: c, user: u}}
users:
- name: u
  user: {{client-certificate-data: $cert_b64, client-key-data: $key_b64}}
"""
        },
        ("a.yaml",),
        explicit=True,
        expect={"cert": CLIENT_PEM, "key": CLIENT_KEY_PEM, "token": None},
    ),
    Case(
        "client-cert-files-relative",
        {
            "cfg/a.yaml": HEAD
            + f"""current-context: dev
clusters:
- name: c
  cluster: {{server: "{SRV}", certificate-authority: ../pki/ca.pem}}
contexts:
- name: dev
  context: {{cluster: c, user: u}}
users:
- name: u
  user: {{client-certificate: ../pki/client.pem, client-key: ../pki/client-key.pem}}
"""
        },
        ("cfg/a.yaml",),
        explicit=True,
        expect={"cert": CLIENT_PEM, "key": CLIENT_KEY_PEM, "ca": CA_PEM},
    ),
    Case(
        "token-file",
        {
            "a.yaml": HEAD
            + f"""current-context: dev
clusters:
- name: c
  cluster: {{server: "{SRV}", insecure-skip-tls-verify: true}}
contexts:
- name: dev
  context: {{cluster: c, user: u}}
users:
- name: u
  user: {{tokenFile: pki/token}}
"""
        },
        ("a.yaml",),
        explicit=True,
        expect={"token": "file-token-abc"},
    ),
    Case(
        "token-file-trailing-newline",
        {
            "a.yaml": HEAD
            + f"""current-context: dev
clusters:
- name: c
  cluster: {{server: "{SRV}", insecure-skip-tls-verify: true}}
contexts:
- name: dev
  context: {{cluster: c, user: u}}
users:
- name: u
  user: {{tokenFile: pki/token-nl}}
"""
        },
        ("a.yaml",),
        explicit=True,
        official_differs="the Python client sends the token file's trailing newline; client-go "
        "trims it (kubectl config view does not read token files: token checked by expect)",
        expect={"token": "newline-token"},
    ),
    Case(
        "merged-conflicting-names-first-file-wins",
        {
            "a.yaml": HEAD
            + """current-context: shared
clusters:
- name: shared
  cluster: {server: "https://first.example:6443", insecure-skip-tls-verify: true}
contexts:
- name: shared
  context: {cluster: shared, user: shared, namespace: from-a}
users:
- name: shared
  user: {token: token-from-a}
""",
            "b.yaml": HEAD
            + """clusters:
- name: shared
  cluster: {server: "https://second.example:6443", insecure-skip-tls-verify: true}
- name: only-b
  cluster: {server: "https://only-b.example:6443", insecure-skip-tls-verify: true}
contexts:
- name: shared
  context: {cluster: only-b, user: shared, namespace: from-b}
- name: b-ctx
  context: {cluster: shared, user: shared}
users:
- name: shared
  user: {token: token-from-b}
""",
        },
        ("a.yaml", "b.yaml"),
        context="shared",
        expect={
            "server": "https://first.example:6443",
            "token": "token-from-a",
            "namespace": "from-a",
        },
    ),
    Case(
        "merged-context-from-second-file-uses-first-files-cluster",
        {
            "a.yaml": HEAD
            + """clusters:
- name: shared
  cluster: {server: "https://first.example:6443", insecure-skip-tls-verify: true}
users:
- name: shared
  user: {token: token-from-a}
""",
            "b.yaml": HEAD
            + """current-context: b-ctx
clusters:
- name: shared
  cluster: {server: "https://second.example:6443", insecure-skip-tls-verify: true}
contexts:
- name: b-ctx
  context: {cluster: shared, user: shared, namespace: nb}
users:
- name: shared
  user: {token: token-from-b}
""",
        },
        ("a.yaml", "b.yaml"),
        expect={"server": "https://first.example:6443", "token": "token-from-a"},
    ),
    Case(
        "merged-current-context-first-file-wins",
        {
            "a.yaml": HEAD
            + """current-context: ctx-a
clusters:
- name: ca
  cluster: {server: "https://a.example:6443", insecure-skip-tls-verify: true}
contexts:
- name: ctx-a
  context: {cluster: ca}
""",
            "b.yaml": HEAD
            + """current-context: ctx-b
clusters:
- name: cb
  cluster: {server: "https://b.example:6443", insecure-skip-tls-verify: true}
contexts:
- name: ctx-b
  context: {cluster: cb}
""",
        },
        ("a.yaml", "b.yaml"),
        official_differs="the Python client's KubeConfigMerger lets the LAST file's "
        "current-context win; kubectl (client-go) keeps the first",
        expect={"server": "https://a.example:6443", "context": "ctx-a"},
    ),
    Case(
        "merged-relative-paths-in-second-file",
        {
            "a.yaml": HEAD
            + """current-context: two
contexts:
- name: one
  context: {cluster: nowhere}
""",
            "sub/b.yaml": HEAD
            + f"""clusters:
- name: c
  cluster: {{server: "{SRV}", certificate-authority: ca.pem}}
contexts:
- name: two
  context: {{cluster: c, user: u, namespace: nb}}
users:
- name: u
  user: {{client-certificate: client.pem, client-key: client-key.pem, tokenFile: token}}
""",
        },
        ("a.yaml", "sub/b.yaml"),
        expect={"ca": CA_PEM, "cert": CLIENT_PEM, "token": "sub-token", "namespace": "nb"},
    ),
    Case(
        "merged-user-and-cluster-in-different-dirs",
        {
            "x/a.yaml": HEAD
            + f"""current-context: mix
clusters:
- name: c
  cluster: {{server: "{SRV}", certificate-authority: ca.pem}}
contexts:
- name: mix
  context: {{cluster: c, user: u}}
""",
            "sub/b.yaml": HEAD
            + """users:
- name: u
  user: {client-certificate: client.pem, client-key: client-key.pem}
""",
        },
        ("x/a.yaml", "sub/b.yaml"),
        official_differs="the Python client resolves a user's relative paths against the "
        "CLUSTER's file; kubectl resolves each against the file that names it",
        expect={"ca": CA_PEM, "cert": CLIENT_PEM, "key": CLIENT_KEY_PEM},
    ),
    Case(
        "missing-and-duplicate-kubeconfig-entries-skipped",
        {
            "a.yaml": HEAD
            + f"""current-context: dev
clusters:
- name: c
  cluster: {{server: "{SRV}/", insecure-skip-tls-verify: true}}
contexts:
- name: dev
  context: {{cluster: c}}
""",
        },
        ("does-not-exist.yaml", "a.yaml", "a.yaml"),
        expect={"server": SRV, "token": None},
    ),
    Case(
        "explicit-kubeconfig-beats-KUBECONFIG",
        {
            "a.yaml": HEAD
            + """current-context: dev
clusters:
- name: c
  cluster: {server: "https://explicit.example:6443", insecure-skip-tls-verify: true}
contexts:
- name: dev
  context: {cluster: c}
""",
            "env.yaml": HEAD
            + """current-context: dev
clusters:
- name: c
  cluster: {server: "https://from-env.example:6443", insecure-skip-tls-verify: true}
contexts:
- name: dev
  context: {cluster: c}
""",
        },
        ("a.yaml",),
        explicit=True,
        env_kubeconfig=("env.yaml",),
        expect={"server": "https://explicit.example:6443"},
    ),
    Case(
        "exec-v1-token-args-env",
        {
            "a.yaml": HEAD
            + f"""current-context: dev
clusters:
- name: c
  cluster: {{server: "{SRV}", certificate-authority-data: $ca_b64}}
contexts:
- name: dev
  context: {{cluster: c, user: u}}
users:
- name: u
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: $plugin
      args: [token, v1arg]
      env: [{{name: PLUGIN_SECRET, value: s3cr3t}}]
      interactiveMode: Never
"""
        },
        ("a.yaml",),
        explicit=True,
        expect={"token": "exec-v1arg-s3cr3t"},
    ),
    Case(
        "exec-v1beta1-token",
        {
            "a.yaml": HEAD
            + f"""current-context: dev
clusters:
- name: c
  cluster: {{server: "{SRV}", insecure-skip-tls-verify: true}}
contexts:
- name: dev
  context: {{cluster: c, user: u, namespace: ns-exec}}
users:
- name: u
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: $plugin
      args: [token, beta]
      env: [{{name: PLUGIN_SECRET, value: b}}]
"""
        },
        ("a.yaml",),
        explicit=True,
        expect={"token": "exec-beta-b"},
    ),
    Case(
        "exec-v1-client-certificate",
        {
            "a.yaml": HEAD
            + f"""current-context: dev
clusters:
- name: c
  cluster: {{server: "{SRV}", certificate-authority-data: $ca_b64}}
contexts:
- name: dev
  context: {{cluster: c, user: u}}
users:
- name: u
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: $plugin
      args: [cert, $root/pki/client.pem, $root/pki/client-key.pem]
      interactiveMode: IfAvailable
"""
        },
        ("a.yaml",),
        explicit=True,
        expect={"cert": CLIENT_PEM, "key": CLIENT_KEY_PEM, "token": None},
    ),
    Case(
        "namespace-flag-overrides-context",
        {
            "a.yaml": HEAD
            + f"""current-context: dev
clusters:
- name: c
  cluster: {{server: "{SRV}", insecure-skip-tls-verify: true}}
contexts:
- name: dev
  context: {{cluster: c, namespace: from-context}}
"""
        },
        ("a.yaml",),
        explicit=True,
        namespace="from-flag",
        expect={"namespace": "from-flag"},
    ),
    Case(
        "context-flag-selects-non-current",
        {
            "a.yaml": HEAD
            + f"""current-context: dev
clusters:
- name: c
  cluster: {{server: "{SRV}", insecure-skip-tls-verify: true}}
- name: p
  cluster: {{server: "https://prod.example", insecure-skip-tls-verify: true}}
contexts:
- name: dev
  context: {{cluster: c, namespace: d}}
- name: prod
  context: {{cluster: p, namespace: payments}}
"""
        },
        ("a.yaml",),
        explicit=True,
        context="prod",
        expect={"server": "https://prod.example", "namespace": "payments"},
    ),
    Case(
        "missing-current-context",
        {
            "a.yaml": HEAD
            + f"""clusters:
- name: c
  cluster: {{server: "{SRV}"}}
contexts:
- name: beta
  context: {{cluster: c}}
- name: alpha
  context: {{cluster: c}}
"""
        },
        ("a.yaml",),
        explicit=True,
        reject="no current-context in $root/a.yaml; pass --context (available: alpha, beta)",
    ),
    Case(
        "unknown-context",
        {
            "a.yaml": HEAD
            + f"""current-context: a
clusters:
- name: c
  cluster: {{server: "{SRV}"}}
contexts:
- name: b
  context: {{cluster: c}}
- name: a
  context: {{cluster: c}}
"""
        },
        ("a.yaml",),
        explicit=True,
        context="x",
        reject='context "x" not found in $root/a.yaml; available: a, b',
    ),
    Case(
        "context-names-missing-cluster",
        {
            "a.yaml": HEAD
            + """current-context: a
contexts:
- name: a
  context: {cluster: gone}
"""
        },
        ("a.yaml",),
        explicit=True,
        reject='context "a" refers to cluster "gone", which is not defined in $root/a.yaml',
    ),
    Case(
        "missing-ca-file",
        {
            "a.yaml": HEAD
            + f"""current-context: a
clusters:
- name: c
  cluster: {{server: "{SRV}", certificate-authority: nope/ca.pem}}
contexts:
- name: a
  context: {{cluster: c}}
"""
        },
        ("a.yaml",),
        explicit=True,
        reject='certificate-authority $root/nope/ca.pem (of cluster "c" in $root/a.yaml) '
        "does not exist",
    ),
    Case(
        "insecure-skip-tls-verify",
        {
            "a.yaml": HEAD
            + f"""current-context: a
clusters:
- name: c
  cluster: {{server: "{SRV}", insecure-skip-tls-verify: true}}
contexts:
- name: a
  context: {{cluster: c, user: u}}
users:
- name: u
  user: {{token: t}}
"""
        },
        ("a.yaml",),
        explicit=True,
        expect={"verify": False, "ca": None},
    ),
    Case(
        "tls-server-name",
        {
            "a.yaml": HEAD
            + """current-context: a
clusters:
- name: c
  cluster:
    server: "https://127.0.0.1:6443"
    certificate-authority-data: $ca_b64
    tls-server-name: kubernetes.internal
contexts:
- name: a
  context: {cluster: c}
"""
        },
        ("a.yaml",),
        explicit=True,
        expect={"tls_server_name": "kubernetes.internal", "verify": True},
    ),
    Case(
        "proxy-url",
        {
            "a.yaml": HEAD
            + f"""current-context: a
clusters:
- name: c
  cluster: {{server: "{SRV}", certificate-authority-data: $ca_b64, proxy-url: "socks5://127.0.0.1:1080"}}
contexts:
- name: a
  context: {{cluster: c, user: u}}
users:
- name: u
  user: {{token: t}}
"""
        },
        ("a.yaml",),
        explicit=True,
        expect={"proxy": "socks5://127.0.0.1:1080"},
    ),
    Case(
        "oidc-id-token",
        {
            "a.yaml": HEAD
            + f"""current-context: a
clusters:
- name: c
  cluster: {{server: "{SRV}", certificate-authority-data: $ca_b64}}
contexts:
- name: a
  context: {{cluster: c, user: o}}
users:
- name: o
  user:
    auth-provider:
      name: oidc
      config:
        client-id: portfwd
        idp-issuer-url: https://issuer.example
        id-token: {OIDC_TOKEN}
"""
        },
        ("a.yaml",),
        explicit=True,
        expect={"token": OIDC_TOKEN},
    ),
    Case(
        "empty-file-in-KUBECONFIG",
        {
            "empty.yaml": "",
            "a.yaml": HEAD
            + f"""current-context: a
clusters:
- name: c
  cluster: {{server: "{SRV}", insecure-skip-tls-verify: true}}
contexts:
- name: a
  context: {{cluster: c}}
""",
        },
        ("empty.yaml", "a.yaml"),
        official_differs="the Python client refuses an empty kubeconfig file; kubectl treats "
        "it as an empty config",
        expect={"server": SRV},
    ),
]


# --------------------------------------------------------------------------- harness


@dataclass
class Resolved:
    server: str
    ca: bytes | None
    cert: bytes | None
    key: bytes | None
    token: str | None
    namespace: str
    verify: bool
    tls_server_name: str | None
    proxy: str | None


@pytest.fixture
def work(tmp_path: Path) -> Path:
    root = tmp_path / "w"
    write(root / "pki" / "ca.pem", CA_PEM)
    write(root / "pki" / "client.pem", CLIENT_PEM)
    write(root / "pki" / "client-key.pem", CLIENT_KEY_PEM)
    write(root / "pki" / "token", "file-token-abc")
    write(root / "pki" / "token-nl", "newline-token\n")
    write(root / "ca.pem", OTHER_CA_PEM)  # a decoy: wrongly resolved relative paths land here
    write(root / "cfg" / "ca.pem", CA_PEM)
    write(root / "sub" / "ca.pem", CA_PEM)
    write(root / "sub" / "client.pem", CLIENT_PEM)
    write(root / "sub" / "client-key.pem", CLIENT_KEY_PEM)
    write(root / "sub" / "token", "sub-token")
    write(root / "x" / "ca.pem", CA_PEM)
    write_plugin(root / "bin")
    return root


def _materialize(case: Case, root: Path) -> None:
    subst = {
        "ca_b64": b64(CA_PEM),
        "cert_b64": b64(CLIENT_PEM),
        "key_b64": b64(CLIENT_KEY_PEM),
        "plugin": str(root / "bin" / "plugin.py"),
        "root": str(root),
    }
    for rel, text in case.files.items():
        write(root / rel, Template(text).substitute(subst))


def _env_for(case: Case, root: Path) -> dict[str, str]:
    env = base_env(root / "home")
    listed = case.env_kubeconfig if case.explicit else case.use
    if listed:
        env["KUBECONFIG"] = os.pathsep.join(str(root / p) for p in listed)
    return env


def _ours(case: Case, root: Path) -> tuple[ClusterConnection, Resolved]:
    env = _env_for(case, root)
    conn = load_connection(
        str(root / case.use[0]) if case.explicit else None,
        case.context,
        case.namespace,
        environ=env,
    )
    creds = asyncio.run(conn.auth.get())
    return conn, Resolved(
        server=conn.server,
        ca=conn.ca_pem,
        cert=creds.client_cert_pem,
        key=creds.client_key_pem,
        token=creds.token,
        namespace=conn.namespace,
        verify=not conn.insecure_skip_tls_verify,
        tls_server_name=conn.tls_server_name,
        proxy=conn.proxy_url,
    )


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


def _official(case: Case, root: Path, monkeypatch: pytest.MonkeyPatch) -> Resolved:
    # Its exec provider copies os.environ: give it the same base environment as ours.
    env = _env_for(case, root)
    for name in list(os.environ):
        if name.startswith(("KUBERNETES_", "KUBECONFIG")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", env["HOME"])
    # KUBE_CONFIG_DEFAULT_LOCATION is frozen at import; hand it the KUBECONFIG list instead.
    config_file = str(root / case.use[0]) if case.explicit else env["KUBECONFIG"]
    cfg = k8s_client.Configuration()
    k8s_config.load_kube_config(
        config_file=config_file,
        context=case.context,
        client_configuration=cfg,
        persist_config=False,
    )
    contexts, current = k8s_config.list_kube_config_contexts(config_file=config_file)
    chosen = case.context or current["name"]
    ns = next(c for c in contexts if c["name"] == chosen)["context"].get("namespace")
    bearer = cfg.api_key.get("BearerToken")
    return Resolved(
        server=cfg.host,
        ca=_read(cfg.ssl_ca_cert),
        cert=_read(cfg.cert_file),
        key=_read(cfg.key_file),
        token=bearer.removeprefix("Bearer ") if bearer else None,
        namespace=case.namespace or ns or "default",
        verify=bool(cfg.verify_ssl),
        tls_server_name=cfg.tls_server_name,
        proxy=cfg.proxy,
    )


def _kubectl(case: Case, root: Path) -> dict[str, Any] | None:
    """kubectl's view of the selected context, files inlined; None when kubectl refuses."""
    assert KUBECTL is not None
    cmd = [KUBECTL, "config", "view", "--minify", "--flatten", "-o", "json"]
    if case.explicit:
        cmd += ["--kubeconfig", str(root / case.use[0])]
    if case.context:
        cmd += ["--context", case.context]
    proc = subprocess.run(
        cmd, env=_env_for(case, root), capture_output=True, text=True, timeout=30, check=False
    )
    if proc.returncode != 0:
        return None
    view: dict[str, Any] = json.loads(proc.stdout)
    return view


def _kubectl_facts(view: dict[str, Any]) -> dict[str, Any]:
    cluster = (view.get("clusters") or [{}])[0].get("cluster", {})
    user = ((view.get("users") or [{}])[0] or {}).get("user", {}) or {}
    ctx = (view.get("contexts") or [{}])[0]

    def data(obj: dict[str, Any], key: str) -> bytes | None:
        return base64.b64decode(obj[key]) if obj.get(key) else None

    facts: dict[str, Any] = {
        "context": ctx.get("name"),
        "server": cluster.get("server", "").rstrip("/"),
        "ca": data(cluster, "certificate-authority-data"),
        "verify": not cluster.get("insecure-skip-tls-verify", False),
        "tls_server_name": cluster.get("tls-server-name"),
        "proxy": cluster.get("proxy-url"),
        "namespace": ctx.get("context", {}).get("namespace") or "default",
        "cert": data(user, "client-certificate-data"),
        "key": data(user, "client-key-data"),
    }
    if "token" in user:
        facts["token"] = user["token"]
    return facts


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_matches_official_client_and_kubectl(
    case: Case, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = work
    _materialize(case, root)

    if case.reject is not None:
        with pytest.raises(ConfigError) as err:
            _ours(case, root)
        assert Template(case.reject).substitute(root=str(root)) in str(err.value)
        assert "\n" not in str(err.value)
        with pytest.raises(Exception):  # noqa: B017 - any refusal of the official client
            _official(case, root, monkeypatch)
        return

    conn, ours = _ours(case, root)
    for key, value in case.expect.items():
        actual = conn.context if key == "context" else getattr(ours, key)
        assert actual == value, f"{key}: ours={actual!r} expected={value!r}"

    if case.official_differs is None:
        theirs = _official(case, root, monkeypatch)
        assert ours == theirs
    else:
        # Document the deviation: the official client must really disagree (or refuse).
        try:
            theirs = _official(case, root, monkeypatch)
        except Exception:
            pass
        else:
            assert ours != theirs, "the official client now agrees: drop official_differs"

    if KUBECTL is not None and not case.namespace:
        view = _kubectl(case, root)
        assert view is not None, "kubectl refused a config we accepted"
        facts = _kubectl_facts(view)
        if "context" in case.expect:
            assert facts["context"] == case.expect["context"]
        for key in ("server", "ca", "verify", "tls_server_name", "proxy", "namespace"):
            assert getattr(ours, key) == facts[key], f"{key} differs from kubectl"
        if conn.auth is not None and "exec" not in case.id:
            if facts["cert"] is not None or ours.cert is not None:
                assert (ours.cert, ours.key) == (facts["cert"], facts["key"])
            if "token" in facts:
                assert ours.token == facts["token"]


def test_kubectl_rejects_unknown_and_missing_current_context(work: Path) -> None:
    if KUBECTL is None:
        pytest.skip("kubectl not installed")
    for case in CASES:
        if case.id in ("unknown-context", "missing-current-context"):
            _materialize(case, work)
            assert _kubectl(case, work) is None


def test_in_cluster_matches_official(tmp_path: Path) -> None:
    sa = tmp_path / "sa"
    write(sa / "token", "sa-token-1")
    write(sa / "ca.crt", CA_PEM)
    write(sa / "namespace", "kube-apps\n")
    env = base_env(tmp_path / "home")
    env.update(KUBERNETES_SERVICE_HOST="10.96.0.1", KUBERNETES_SERVICE_PORT="443")

    conn = load_connection(environ=env, serviceaccount_dir=sa)
    creds = asyncio.run(conn.auth.get())

    cfg = k8s_client.Configuration()
    InClusterConfigLoader(
        token_filename=str(sa / "token"), cert_filename=str(sa / "ca.crt"), environ=env
    ).load_and_set(cfg)
    assert conn.server == cfg.host == "https://10.96.0.1:443"
    assert conn.ca_pem == Path(cfg.ssl_ca_cert).read_bytes()
    assert creds.token is not None
    assert "bearer " + creds.token == cfg.api_key["BearerToken"]
    assert conn.namespace == "kube-apps"  # the official client leaves namespaces to callers
    assert (conn.context, conn.user) == ("in-cluster", "serviceaccount")


def test_in_cluster_ipv6_host_and_pod_namespace(tmp_path: Path) -> None:
    sa = tmp_path / "sa"
    write(sa / "token", "t")
    write(sa / "ca.crt", CA_PEM)
    env = base_env(tmp_path / "home")
    env.update(KUBERNETES_SERVICE_HOST="fd00::1", KUBERNETES_SERVICE_PORT="443", POD_NAMESPACE="p")
    conn = load_connection(environ=env, serviceaccount_dir=sa)
    assert conn.server == "https://[fd00::1]:443"
    assert conn.namespace == "p"
    assert load_connection(environ=env, serviceaccount_dir=sa, namespace="n").namespace == "n"


def test_kubeconfig_beats_in_cluster(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write(
        home / ".kube" / "config",
        HEAD
        + """current-context: a
clusters: [{name: c, cluster: {server: "https://home.example"}}]
contexts: [{name: a, context: {cluster: c}}]
""",
    )
    env = base_env(home)
    env.update(KUBERNETES_SERVICE_HOST="10.0.0.1", KUBERNETES_SERVICE_PORT="443")
    conn = load_connection(environ=env, serviceaccount_dir=tmp_path / "none")
    assert conn.server == "https://home.example"
