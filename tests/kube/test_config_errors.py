"""Every way a kubeconfig can be wrong ends in one actionable line (and never a traceback)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portfwd.errors import ConfigError
from portfwd.kube.auth import UserAuth
from portfwd.kube.config import ClusterConnection, ContextInfo, list_contexts, load_connection
from tests.kube.test_config_kit import CA_PEM, b64, base_env, write

KUBECTL = shutil.which("kubectl")


def doc(
    *,
    clusters: list[Any] | None = None,
    contexts: list[Any] | None = None,
    users: list[Any] | None = None,
    current: str | None = "ctx",
) -> str:
    d: dict[str, Any] = {"apiVersion": "v1", "kind": "Config"}
    if current is not None:
        d["current-context"] = current
    d["clusters"] = (
        clusters
        if clusters is not None
        else [{"name": "cl", "cluster": {"server": "https://k.example:6443"}}]
    )
    d["contexts"] = (
        contexts
        if contexts is not None
        else [{"name": "ctx", "context": {"cluster": "cl", "user": "u"}}]
    )
    d["users"] = users if users is not None else [{"name": "u", "user": {"token": "t"}}]
    return yaml.safe_dump(d)


def err_of(kc: Path | None, env: dict[str, str], **kw: Any) -> str:
    with pytest.raises(ConfigError) as err:
        load_connection(str(kc) if kc else None, environ=env, **kw)
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return base_env(tmp_path / "home")


# --------------------------------------------------------------------------- finding files


def test_default_kubeconfig_missing(env: dict[str, str]) -> None:
    assert err_of(None, env) == (
        "no kubeconfig found at ~/.kube/config; set KUBECONFIG or pass --kubeconfig"
    )


def test_default_kubeconfig_is_used(tmp_path: Path, env: dict[str, str]) -> None:
    write(tmp_path / "home" / ".kube" / "config", doc())
    assert load_connection(environ=env).server == "https://k.example:6443"


def test_kubeconfig_env_with_no_existing_file(tmp_path: Path, env: dict[str, str]) -> None:
    env["KUBECONFIG"] = f"{tmp_path}/a{os.pathsep}{tmp_path}/b"
    assert err_of(None, env) == (
        f"none of the files in KUBECONFIG={tmp_path}/a{os.pathsep}{tmp_path}/b exist; "
        "fix KUBECONFIG or pass --kubeconfig"
    )


def test_explicit_kubeconfig_missing(tmp_path: Path, env: dict[str, str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert err_of(missing, env) == (
        f"kubeconfig {missing} (from --kubeconfig) does not exist; check the path"
    )


def test_unreadable_kubeconfig(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import portfwd.kube.config as config_module

    kc = write(tmp_path / "kc", doc())
    real = config_module.read_capped

    def deny(path: Path, *a: Any, **kw: Any) -> bytes:
        if path == kc:
            raise PermissionError(13, "Permission denied")
        return real(path, *a, **kw)

    # root reads anything: simulate the mode (test_acceptance_bad_input.py drops the capability)
    monkeypatch.setattr(config_module, "read_capped", deny)
    assert err_of(kc, env) == f"cannot read kubeconfig {kc}: permission denied; fix its permissions"


def test_home_path_is_shown_with_tilde(tmp_path: Path, env: dict[str, str]) -> None:
    write(tmp_path / "home" / ".kube" / "config", doc(current=None))
    assert err_of(None, env) == (
        "no current-context in ~/.kube/config; pass --context (available: ctx)"
    )


# --------------------------------------------------------------------------- file contents


def test_invalid_yaml_names_file_and_line(tmp_path: Path, env: dict[str, str]) -> None:
    kc = write(tmp_path / "kc", "apiVersion: v1\nclusters:\n- name: a\n  cluster: {server: [}\n")
    text = err_of(kc, env)
    assert text.startswith(f"kubeconfig {kc} is not valid YAML at line 4, column ")


def test_yaml_not_a_mapping(tmp_path: Path, env: dict[str, str]) -> None:
    kc = write(tmp_path / "kc", "- a\n- b\n")
    assert err_of(kc, env) == f"kubeconfig {kc} is not a kubeconfig (expected a YAML mapping)"


def test_clusters_not_a_list(tmp_path: Path, env: dict[str, str]) -> None:
    kc = write(tmp_path / "kc", "clusters: {a: b}\n")
    assert err_of(kc, env) == f'kubeconfig {kc}: "clusters" must be a list'


def test_unnamed_entry(tmp_path: Path, env: dict[str, str]) -> None:
    kc = write(tmp_path / "kc", doc(users=[{"user": {"token": "t"}}]))
    assert err_of(kc, env) == f'kubeconfig {kc}: every entry of "users" needs a name'


def test_current_context_not_defined(tmp_path: Path, env: dict[str, str]) -> None:
    kc = write(tmp_path / "kc", doc(current="gone"))
    assert err_of(kc, env) == (
        f'current-context "gone" (set in {kc}) not found in {kc}; pass --context (available: ctx)'
    )


def test_names_with_control_characters_stay_on_one_line(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """Found by the fuzz test: a newline in a name read from the file split the message."""
    kc = write(tmp_path / "kc", doc(current="\n"))
    assert err_of(kc, env) == (
        f'current-context "\\n" (set in {kc}) not found in {kc}; pass --context (available: ctx)'
    )
    contexts = [{"name": "ctx", "context": {"cluster": "x\ty", "user": "u"}}]
    kc = write(tmp_path / "kc", doc(contexts=contexts))
    assert err_of(kc, env).startswith('context "ctx" refers to cluster "x\\ty", which')


def test_unknown_context_lists_merged_files(tmp_path: Path, env: dict[str, str]) -> None:
    a = write(tmp_path / "a", doc())
    b = write(
        tmp_path / "b",
        doc(contexts=[{"name": "zeta", "context": {"cluster": "cl"}}], current=None),
    )
    env["KUBECONFIG"] = f"{a}{os.pathsep}{b}"
    assert err_of(None, env, context="nope") == (
        f'context "nope" not found in {a}, {b}; available: ctx, zeta'
    )


def test_no_contexts_at_all(tmp_path: Path, env: dict[str, str]) -> None:
    kc = write(tmp_path / "kc", doc(contexts=[], current=None))
    assert (
        err_of(kc, env) == f"no current-context in {kc}; pass --context (available: none defined)"
    )


def test_context_without_cluster(tmp_path: Path, env: dict[str, str]) -> None:
    kc = write(tmp_path / "kc", doc(contexts=[{"name": "ctx", "context": {"user": "u"}}]))
    assert err_of(kc, env) == (
        f'context "ctx" in {kc} names no cluster; set contexts[].context.cluster'
    )


def test_context_pointing_at_missing_user(tmp_path: Path, env: dict[str, str]) -> None:
    kc = write(
        tmp_path / "kc", doc(contexts=[{"name": "ctx", "context": {"cluster": "cl", "user": "x"}}])
    )
    assert err_of(kc, env) == (
        f'context "ctx" refers to user "x", which is not defined in {kc}; available users: u'
    )


def test_context_without_user_is_anonymous(tmp_path: Path, env: dict[str, str]) -> None:
    kc = write(tmp_path / "kc", doc(contexts=[{"name": "ctx", "context": {"cluster": "cl"}}]))
    conn = load_connection(str(kc), environ=env)
    creds = asyncio.run(conn.auth.get())
    assert (creds.token, creds.client_cert_pem, conn.user) == (None, None, "")


def test_cluster_without_server(tmp_path: Path, env: dict[str, str]) -> None:
    kc = write(tmp_path / "kc", doc(clusters=[{"name": "cl", "cluster": {}}]))
    assert err_of(kc, env) == f'cluster "cl" in {kc} has no server; set clusters[].cluster.server'


def test_server_without_scheme_gets_one_like_client_go(tmp_path: Path, env: dict[str, str]) -> None:
    plain = write(tmp_path / "p", doc(clusters=[{"name": "cl", "cluster": {"server": "k:8080"}}]))
    assert load_connection(str(plain), environ=env).server == "http://k:8080"
    tls = write(
        tmp_path / "t",
        doc(
            clusters=[
                {"name": "cl", "cluster": {"server": "k:6443", "insecure-skip-tls-verify": True}}
            ]
        ),
    )
    assert load_connection(str(tls), environ=env).server == "https://k:6443"


@pytest.mark.parametrize(
    ("cluster", "user", "expected"),
    [
        (
            {"certificate-authority": "ca.pem", "certificate-authority-data": b64(CA_PEM)},
            {"token": "t"},
            'cluster "cl" in {kc} sets both certificate-authority and '
            "certificate-authority-data; keep one (kubectl refuses this too)",
        ),
        (
            {"certificate-authority-data": b64(CA_PEM), "insecure-skip-tls-verify": True},
            {"token": "t"},
            'cluster "cl" in {kc} sets insecure-skip-tls-verify together with a certificate '
            "authority; remove one (kubectl refuses this too)",
        ),
        (
            {"certificate-authority-data": "abc"},
            {"token": "t"},
            'certificate-authority-data of cluster "cl" in {kc} is not valid base64',
        ),
        (
            {},
            {"client-certificate": "missing.pem", "client-key": "key.pem"},
            'client-certificate {dir}/missing.pem (of user "u" in {kc}) does not exist; '
            "fix the path or recreate the file",
        ),
        (
            {},
            {"client-certificate-data": b64(b"x")},
            'user "u" in {kc} has no client-key; a client certificate needs both',
        ),
        (
            {},
            {"client-key": "k.pem"},
            'user "u" in {kc} has no client-certificate; a client certificate needs both',
        ),
        (
            {},
            {"tokenFile": "tok"},
            'tokenFile {dir}/tok (of user "u" in {kc}) does not exist; '
            "fix the path or recreate the file",
        ),
        (
            {},
            {"auth-provider": {"name": "oidc", "config": {"client-id": "x"}}},
            'auth-provider oidc of user "u" in {kc} has no id-token; portfwd does not run the '
            "OIDC refresh flow: log in with your OIDC tool (e.g. kubectl oidc-login) first",
        ),
        (
            {},
            {"auth-provider": {"name": "gcp", "config": {}}},
            'auth-provider "gcp" of user "u" in {kc} is not supported (kubectl dropped it too); '
            "switch the user to its exec plugin (e.g. gke-gcloud-auth-plugin, kubelogin)",
        ),
        (
            {},
            {
                "auth-provider": {"name": "oidc", "config": {"id-token": "x"}},
                "exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "x"},
            },
            'user "u" in {kc} sets both exec and auth-provider; keep one',
        ),
        (
            {},
            {"username": "admin", "password": "pw"},
            'user "u" in {kc} uses username/password (basic auth), which portfwd does not '
            "support; use a token, client certificate or exec plugin",
        ),
        (
            {},
            {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": ""}},
            'exec of user "u" in {kc} has no command',
        ),
    ],
)
def test_entry_errors(
    tmp_path: Path,
    env: dict[str, str],
    cluster: dict[str, Any],
    user: dict[str, Any],
    expected: str,
) -> None:
    body = {"server": "https://k.example:6443", **cluster}
    kc = write(
        tmp_path / "kc",
        doc(clusters=[{"name": "cl", "cluster": body}], users=[{"name": "u", "user": user}]),
    )
    write(tmp_path / "ca.pem", CA_PEM)
    write(tmp_path / "k.pem", b"key")
    assert err_of(kc, env) == expected.format(kc=kc, dir=tmp_path)


def test_in_cluster_missing_token(tmp_path: Path, env: dict[str, str]) -> None:
    sa = tmp_path / "sa"
    write(sa / "ca.crt", CA_PEM)
    env.update(KUBERNETES_SERVICE_HOST="10.0.0.1", KUBERNETES_SERVICE_PORT="443")
    assert err_of(None, env, serviceaccount_dir=sa) == (
        f"token {sa}/token (of the in-cluster service account ({sa})) does not exist; "
        "fix the path or recreate the file"
    )


def test_in_cluster_not_used_with_explicit_context(tmp_path: Path, env: dict[str, str]) -> None:
    env.update(KUBERNETES_SERVICE_HOST="10.0.0.1", KUBERNETES_SERVICE_PORT="443")
    assert err_of(None, env, context="prod").startswith("no kubeconfig found at ~/.kube/config")


# --------------------------------------------------------------------------- list_contexts


def test_list_contexts_merged(tmp_path: Path, env: dict[str, str]) -> None:
    a = write(
        tmp_path / "a",
        doc(
            contexts=[
                {"name": "ctx", "context": {"cluster": "cl", "user": "u", "namespace": "n1"}}
            ],
            current="ctx",
        ),
    )
    b = write(
        tmp_path / "b",
        doc(
            contexts=[
                {"name": "ctx", "context": {"cluster": "other", "namespace": "n2"}},
                {"name": "two", "context": {"cluster": "cl"}},
            ],
            current="two",
        ),
    )
    env["KUBECONFIG"] = f"{a}{os.pathsep}{b}"
    infos, current = list_contexts(environ=env)
    assert current == "ctx"
    assert infos == [ContextInfo("ctx", "cl", "u", "n1"), ContextInfo("two", "cl", "", None)]
    if KUBECTL is not None:
        proc = subprocess.run(
            [KUBECTL, "config", "view", "-o", "json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        view = json.loads(proc.stdout)
        assert view["current-context"] == current
        assert sorted(c["name"] for c in view["contexts"]) == sorted(i.name for i in infos)
        ctx = next(c for c in view["contexts"] if c["name"] == "ctx")
        assert ctx["context"]["namespace"] == "n1"


def test_list_contexts_in_cluster(tmp_path: Path, env: dict[str, str]) -> None:
    env.update(KUBERNETES_SERVICE_HOST="10.0.0.1", KUBERNETES_SERVICE_PORT="443")
    infos, current = list_contexts(environ=env)
    assert current == "in-cluster"
    assert [i.name for i in infos] == ["in-cluster"]


def test_list_contexts_nothing(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="no kubeconfig found"):
        list_contexts(environ=env)


# --------------------------------------------------------------------------- fuzzing

_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=12), st.sampled_from(["", "x"])
)
_value = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_user_key = st.sampled_from(
    [
        "token",
        "tokenFile",
        "client-certificate",
        "client-certificate-data",
        "client-key",
        "client-key-data",
        "username",
        "auth-provider",
        "exec",
    ]
)
_cluster_key = st.sampled_from(
    [
        "server",
        "certificate-authority",
        "certificate-authority-data",
        "insecure-skip-tls-verify",
        "tls-server-name",
        "proxy-url",
        "extensions",
    ]
)
_exec = st.fixed_dictionaries(
    {},
    optional={
        "apiVersion": st.sampled_from(
            ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1", "x"]
        ),
        "command": _value,
        "args": _value,
        "env": _value,
        "interactiveMode": st.one_of(st.sampled_from(["Never", "Always"]), _value),
        "installHint": _value,
    },
)
_user = st.dictionaries(_user_key, st.one_of(_value, _exec), max_size=4)
_cluster = st.dictionaries(_cluster_key, st.one_of(st.just("https://h:1"), _value), max_size=4)
_names = st.sampled_from(["a", "b", ""])
_kubeconfig = st.fixed_dictionaries(
    {},
    optional={
        "current-context": st.one_of(_names, _value),
        "clusters": st.one_of(
            st.lists(st.fixed_dictionaries({"name": _names, "cluster": _cluster}), max_size=2),
            _value,
        ),
        "contexts": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "name": _names,
                        "context": st.dictionaries(
                            st.sampled_from(["cluster", "user", "namespace"]),
                            st.one_of(_names, _value),
                        ),
                    }
                ),
                max_size=2,
            ),
            _value,
        ),
        "users": st.one_of(
            st.lists(st.fixed_dictionaries({"name": _names, "user": _user}), max_size=2), _value
        ),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_kubeconfig, st.one_of(st.none(), _names))
def test_fuzz_structure_only_config_errors(data: dict[str, Any], context: str | None) -> None:
    with tempfile.TemporaryDirectory() as d:
        kc = Path(d) / "kc"
        kc.write_text(yaml.safe_dump(data))
        env = base_env(Path(d) / "home")
        try:
            conn = load_connection(str(kc), context or None, environ=env)
        except ConfigError as exc:
            assert "\n" not in str(exc)
        else:
            assert isinstance(conn, ClusterConnection)
            assert conn.server.startswith(("http://", "https://"))
            assert isinstance(conn.auth, UserAuth)
            if conn.auth.exec_plugin is None:  # never run fuzzed commands
                with contextlib.suppress(ConfigError):
                    asyncio.run(conn.auth.get())
        with contextlib.suppress(ConfigError):
            list_contexts(str(kc), environ=env)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_text_only_config_errors(text: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        kc = Path(d) / "kc"
        kc.write_text(text)
        try:
            load_connection(str(kc), environ=base_env(Path(d) / "home"))
        except ConfigError as exc:
            assert "\n" not in str(exc)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")
@pytest.mark.parametrize(
    "cluster",
    [
        {"certificate-authority": "ca.pem", "insecure-skip-tls-verify": True},
        {"certificate-authority": "ca.pem", "certificate-authority-data": b64(CA_PEM)},
    ],
    ids=["insecure-with-ca", "ca-file-and-data"],
)
def test_kubectl_refuses_what_we_refuse(
    tmp_path: Path, env: dict[str, str], cluster: dict[str, Any]
) -> None:
    """kubectl is the oracle: it refuses these before any network I/O (server: port 1)."""
    assert KUBECTL is not None
    write(tmp_path / "ca.pem", CA_PEM)
    body = {"server": "https://127.0.0.1:1", **cluster}
    kc = write(tmp_path / "kc", doc(clusters=[{"name": "cl", "cluster": body}]))
    err_of(kc, env)
    proc = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kc), "get", "--raw", "/", "--request-timeout", "5s"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode != 0
    assert "connection refused" not in proc.stderr  # refused the config, not the connection
