"""Credential freshness and secrecy: token files, exec plugins, TLS contexts, repr/log hygiene."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import ssl
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from portfwd.errors import ConfigError
from portfwd.kube.auth import Credentials, ExecConfig, ExecPlugin, UserAuth, WatchedFile
from portfwd.kube.config import ClusterConnection, load_connection
from tests.kube.test_config_kit import (
    CA_PEM,
    CLIENT_KEY_PEM,
    CLIENT_PEM,
    DATA,
    OTHER_CA_PEM,
    b64,
    base_env,
    write,
    write_plugin,
)


def kubeconfig(
    path: Path,
    user: dict[str, Any],
    *,
    server: str = "https://127.0.0.1:6443",
    cluster: dict[str, Any] | None = None,
) -> Path:
    body = {"server": server, "certificate-authority-data": b64(CA_PEM)}
    body.update(cluster or {})
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "ctx",
        "clusters": [{"name": "cl", "cluster": body}],
        "contexts": [{"name": "ctx", "context": {"cluster": "cl", "user": "alice"}}],
        "users": [{"name": "alice", "user": user}],
    }
    write(path, yaml.safe_dump(doc))
    return path


def exec_user(command: str, *args: str, **extra: Any) -> dict[str, Any]:
    block: dict[str, Any] = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": command,
        "args": list(args),
        "interactiveMode": "Never",
    }
    block.update(extra)
    return {"exec": block}


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    return write_plugin(tmp_path / "bin")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = base_env(tmp_path / "home")
    e["PLUGIN_COUNT"] = str(tmp_path / "runs.log")
    e["PLUGIN_SECRET"] = "sekrit"
    return e


def runs(tmp_path: Path) -> list[dict[str, Any]]:
    log = tmp_path / "runs.log"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


# --------------------------------------------------------------------------- token files


async def test_token_file_rotation_is_picked_up(tmp_path: Path, env: dict[str, str]) -> None:
    token = write(tmp_path / "token", "first-token")
    kc = kubeconfig(tmp_path / "kc", {"tokenFile": str(token)})
    conn = load_connection(str(kc), environ=env)
    assert (await conn.auth.get()).token == "first-token"

    token.write_text("second-token-longer\n")  # rewritten in place
    assert (await conn.auth.get()).token == "second-token-longer"

    # kubelet-style rotation: a new file renamed over the old one, same size.
    write(tmp_path / "token.new", "third-token-longer!")
    os.replace(tmp_path / "token.new", token)
    assert (await conn.auth.get()).token == "third-token-longer!"


def test_watched_file_rereads_same_size_old_mtime_rewrite_only_when_stat_changes(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "t", "aaaa")
    old = 1_000_000_000
    os.utime(path, ns=(old, old))
    wf = WatchedFile(path, what="tokenFile", owner='user "u"')
    assert wf.read() == b"aaaa"
    path.write_text("bbbb")
    os.utime(path, ns=(old + 1, old + 1))  # any stat change triggers a re-read
    assert wf.read() == b"bbbb"
    assert wf.read(force=True) == b"bbbb"


async def test_token_file_removed_gives_clear_error(tmp_path: Path, env: dict[str, str]) -> None:
    token = write(tmp_path / "token", "t")
    kc = kubeconfig(tmp_path / "kc", {"tokenFile": "token"})
    conn = load_connection(str(kc), environ=env)
    token.unlink()
    with pytest.raises(ConfigError) as err:
        await conn.auth.get()
    assert str(err.value) == (
        f'tokenFile {token} (of user "alice" in {kc}) does not exist; '
        "fix the path or recreate the file"
    )


async def test_token_file_wins_over_inline_token_like_client_go(
    tmp_path: Path, env: dict[str, str]
) -> None:
    write(tmp_path / "token", "from-file")
    kc = kubeconfig(tmp_path / "kc", {"tokenFile": "token", "token": "inline"})
    creds = await load_connection(str(kc), environ=env).auth.get()
    assert creds.token == "from-file"


# --------------------------------------------------------------------------- exec plugins


async def test_exec_result_cached_until_expiry_and_rerun_after_invalidate(
    tmp_path: Path, env: dict[str, str], plugin: Path
) -> None:
    env["PLUGIN_EXPIRES"] = "2999-01-01T00:00:00Z"
    kc = kubeconfig(tmp_path / "kc", exec_user(str(plugin), "token", "a"))
    conn = load_connection(str(kc), environ=env)
    first = await conn.auth.get()
    again = await conn.auth.get()
    assert first.token == again.token == "exec-a-sekrit-run1"
    assert len(runs(tmp_path)) == 1

    conn.auth.invalidate()  # what the client does after a 401
    assert (await conn.auth.get()).token == "exec-a-sekrit-run2"
    assert len(runs(tmp_path)) == 2


async def test_exec_expired_result_reruns(
    tmp_path: Path, env: dict[str, str], plugin: Path
) -> None:
    env["PLUGIN_EXPIRES"] = "2001-01-01T00:00:00Z"
    kc = kubeconfig(tmp_path / "kc", exec_user(str(plugin), "token", "a"))
    conn = load_connection(str(kc), environ=env)
    tokens = [(await conn.auth.get()).token for _ in range(3)]
    assert tokens == ["exec-a-sekrit-run1", "exec-a-sekrit-run2", "exec-a-sekrit-run3"]


async def test_exec_without_expiry_is_cached(
    tmp_path: Path, env: dict[str, str], plugin: Path
) -> None:
    kc = kubeconfig(tmp_path / "kc", exec_user(str(plugin), "token", "a"))
    conn = load_connection(str(kc), environ=env)
    for _ in range(3):
        await conn.auth.get()
    assert len(runs(tmp_path)) == 1


async def test_concurrent_gets_share_one_exec_run(
    tmp_path: Path, env: dict[str, str], plugin: Path
) -> None:
    kc = kubeconfig(tmp_path / "kc", exec_user(str(plugin), "token", "a"))
    conn = load_connection(str(kc), environ=env)
    results = await asyncio.gather(*(conn.auth.get() for _ in range(8)))
    assert {r.token for r in results} == {"exec-a-sekrit-run1"}
    assert len(runs(tmp_path)) == 1


async def test_exec_info_env_and_provide_cluster_info(
    tmp_path: Path, env: dict[str, str], plugin: Path
) -> None:
    kc = kubeconfig(
        tmp_path / "kc",
        exec_user(str(plugin), "token", "a", provideClusterInfo=True),
        cluster={"tls-server-name": "kubernetes.internal"},
    )
    await load_connection(str(kc), environ=env).auth.get()
    (info,) = runs(tmp_path)
    assert info["apiVersion"] == "client.authentication.k8s.io/v1"
    assert info["kind"] == "ExecCredential"
    assert info["spec"]["interactive"] is False
    assert info["spec"]["cluster"]["server"] == "https://127.0.0.1:6443"
    assert info["spec"]["cluster"]["certificate-authority-data"] == b64(CA_PEM)
    assert info["spec"]["cluster"]["tls-server-name"] == "kubernetes.internal"


async def test_exec_relative_command_resolved_against_kubeconfig_dir(
    tmp_path: Path, env: dict[str, str]
) -> None:
    write_plugin(tmp_path / "conf" / "tools", "auth.py")
    kc = kubeconfig(tmp_path / "conf" / "kc", exec_user("./tools/auth.py", "token", "rel"))
    creds = await load_connection(str(kc), environ=env).auth.get()
    assert creds.token == "exec-rel-sekrit-run1"


async def test_exec_client_certificate(tmp_path: Path, env: dict[str, str], plugin: Path) -> None:
    cert = write(tmp_path / "c.pem", CLIENT_PEM)
    key = write(tmp_path / "k.pem", CLIENT_KEY_PEM)
    kc = kubeconfig(tmp_path / "kc", exec_user(str(plugin), "cert", str(cert), str(key)))
    creds = await load_connection(str(kc), environ=env).auth.get()
    assert (creds.token, creds.client_cert_pem, creds.client_key_pem) == (
        None,
        CLIENT_PEM,
        CLIENT_KEY_PEM,
    )


async def test_exec_missing_command_shows_install_hint(tmp_path: Path, env: dict[str, str]) -> None:
    hint = (
        "It provides kubectl-compatible credentials for GKE.\n"
        "Install it with:\n  gcloud components install gke-gcloud-auth-plugin\n"
    )
    kc = kubeconfig(tmp_path / "kc", exec_user("portfwd-test-no-such-plugin", installHint=hint))
    conn = load_connection(str(kc), environ=env)
    with pytest.raises(ConfigError) as err:
        await conn.auth.get()
    assert str(err.value) == (
        'exec plugin "portfwd-test-no-such-plugin" for user "alice" was not found; '
        "It provides kubectl-compatible credentials for GKE. Install it with: "
        "gcloud components install gke-gcloud-auth-plugin"
    )


async def test_exec_missing_command_without_hint(tmp_path: Path, env: dict[str, str]) -> None:
    kc = kubeconfig(tmp_path / "kc", exec_user("portfwd-test-no-such-plugin"))
    with pytest.raises(ConfigError, match=r"was not found; install it or fix exec\.command"):
        await load_connection(str(kc), environ=env).auth.get()


async def test_exec_interactive_always_refused_without_running(
    tmp_path: Path, env: dict[str, str], plugin: Path
) -> None:
    kc = kubeconfig(tmp_path / "kc", exec_user(str(plugin), "token", "a", interactiveMode="Always"))
    conn = load_connection(str(kc), environ=env)
    with pytest.raises(ConfigError) as err:
        await conn.auth.get()
    assert "needs an interactive terminal (interactiveMode: Always)" in str(err.value)
    assert "set interactiveMode to IfAvailable or Never" in str(err.value)
    assert runs(tmp_path) == []


@pytest.mark.parametrize("mode", ["Never", "IfAvailable"])
async def test_exec_non_interactive_modes_run(
    tmp_path: Path, env: dict[str, str], plugin: Path, mode: str
) -> None:
    kc = kubeconfig(tmp_path / "kc", exec_user(str(plugin), "token", "m", interactiveMode=mode))
    assert (await load_connection(str(kc), environ=env).auth.get()).token == "exec-m-sekrit-run1"


async def test_exec_failure_reports_exit_code_and_first_stderr_line(
    tmp_path: Path, env: dict[str, str], plugin: Path
) -> None:
    kc = kubeconfig(tmp_path / "kc", exec_user(str(plugin), "fail"))
    with pytest.raises(ConfigError) as err:
        await load_connection(str(kc), environ=env).auth.get()
    assert str(err.value) == (
        f'exec plugin "{plugin}" for user "alice" failed with exit code 3: '
        "error: could not log in to the identity provider"
    )


async def test_a_plugin_that_may_prompt_gets_a_login_hint(
    tmp_path: Path, env: dict[str, str], plugin: Path
) -> None:
    """No plugin gets a terminal from portfwd (a daemon has none): one that may prompt and
    fails says how to log in, for its own context (issue 11)."""
    kc = kubeconfig(tmp_path / "kc", exec_user(str(plugin), "fail", interactiveMode="IfAvailable"))
    with pytest.raises(ConfigError) as err:
        await load_connection(str(kc), environ=env).auth.get()
    assert str(err.value).endswith(
        "if it needs an interactive login, run `kubectl get ns --context ctx` in a terminal,"
        " then retry (r in the dashboard, `portfwd restart` for a daemon's forward)"
    )


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("garbage", "printed an invalid ExecCredential: not JSON (Expecting value at line 1"),
        ("wrong-api", "apiVersion 'client.authentication.k8s.io/v1alpha1' does not match"),
        ("only-cert", "it returned only a certificate or only a key, not both"),
        ("empty", "it returned neither a token nor a certificate/key pair"),
    ],
)
async def test_exec_bad_output(
    tmp_path: Path, env: dict[str, str], plugin: Path, mode: str, expected: str
) -> None:
    kc = kubeconfig(tmp_path / "kc", exec_user(str(plugin), mode))
    with pytest.raises(ConfigError) as err:
        await load_connection(str(kc), environ=env).auth.get()
    assert expected in str(err.value)
    assert "login.example" not in str(err.value)  # plugin output is never echoed
    assert "\n" not in str(err.value)


async def test_exec_timeout_kills_plugin(tmp_path: Path, env: dict[str, str]) -> None:
    sleeper = write(
        tmp_path / "sleeper.py",
        f"#!{sys.executable}\nimport os, time\n"
        f"open({str(tmp_path / 'pid')!r}, 'w').write(str(os.getpid()))\ntime.sleep(120)\n",
    )
    sleeper.chmod(0o755)
    kc = kubeconfig(tmp_path / "kc", exec_user(str(sleeper)))
    conn = load_connection(str(kc), environ=env)
    assert isinstance(conn.auth, UserAuth) and conn.auth.exec_plugin is not None
    conn.auth.exec_plugin.timeout = 0.5
    with pytest.raises(ConfigError, match=r"did not finish within 0.5 s"):
        await conn.auth.get()
    pid = int((tmp_path / "pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped


def test_exec_v1_requires_interactive_mode(tmp_path: Path, env: dict[str, str]) -> None:
    user = exec_user("x")
    del user["exec"]["interactiveMode"]
    kc = kubeconfig(tmp_path / "kc", user)
    with pytest.raises(ConfigError, match="must set interactiveMode"):
        load_connection(str(kc), environ=env)


def test_exec_v1beta1_defaults_interactive_mode(tmp_path: Path, env: dict[str, str]) -> None:
    user = exec_user("x", apiVersion="client.authentication.k8s.io/v1beta1")
    del user["exec"]["interactiveMode"]
    kc = kubeconfig(tmp_path / "kc", user)
    conn = load_connection(str(kc), environ=env)
    assert conn.user == "alice"


def test_exec_unsupported_api_version(tmp_path: Path, env: dict[str, str]) -> None:
    kc = kubeconfig(
        tmp_path / "kc", exec_user("x", apiVersion="client.authentication.k8s.io/v1alpha1")
    )
    with pytest.raises(
        ConfigError, match=r"has apiVersion 'client\.authentication\.k8s\.io/v1alpha1'"
    ):
        load_connection(str(kc), environ=env)


async def test_static_token_skips_exec_like_client_go(
    tmp_path: Path, env: dict[str, str], plugin: Path
) -> None:
    user = exec_user(str(plugin), "token", "a")
    user["token"] = "static"
    kc = kubeconfig(tmp_path / "kc", user)
    assert (await load_connection(str(kc), environ=env).auth.get()).token == "static"
    assert runs(tmp_path) == []


# --------------------------------------------------------------------------- secrecy


async def test_credentials_repr_hides_secrets(
    tmp_path: Path, env: dict[str, str], plugin: Path, caplog: pytest.LogCaptureFixture
) -> None:
    creds = Credentials(token="tok-SECRET", client_cert_pem=b"CERT", client_key_pem=b"KEY-SECRET")
    for text in (repr(creds), str(creds), f"{creds}", f"{creds!r}"):
        assert "SECRET" not in text
    assert repr(creds) == (
        "Credentials(token=<hidden>, client_cert_pem=<hidden>, client_key_pem=<hidden>)"
    )
    assert (
        repr(Credentials()) == "Credentials(token=None, client_cert_pem=None, client_key_pem=None)"
    )

    caplog.set_level(logging.DEBUG)
    kc = kubeconfig(tmp_path / "kc", exec_user(str(plugin), "token", "a"))
    conn = load_connection(str(kc), environ=env)
    got = await conn.auth.get()
    assert got.token is not None
    for text in (repr(conn), repr(conn.auth), caplog.text):
        assert got.token not in text
        assert "sekrit" not in text


def test_connection_repr_hides_inline_token_and_key(tmp_path: Path, env: dict[str, str]) -> None:
    kc = kubeconfig(
        tmp_path / "kc",
        {
            "token": "inline-SECRET",
            "client-certificate-data": b64(CLIENT_PEM),
            "client-key-data": b64(CLIENT_KEY_PEM),
        },
    )
    conn = load_connection(str(kc), environ=env)
    assert "SECRET" not in repr(conn)
    assert "PRIVATE" not in repr(conn)


# --------------------------------------------------------------------------- TLS


@pytest_asyncio.fixture
async def tls_server() -> AsyncIterator[int]:
    """A loopback TLS server that requires a client certificate from our test CA."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(DATA / "server.pem", DATA / "server-key.pem")
    ctx.load_verify_locations(cadata=CA_PEM.decode())
    ctx.verify_mode = ssl.CERT_REQUIRED

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            peer = writer.get_extra_info("peercert") or {}
            subject = dict(x[0] for x in peer.get("subject", ()))
            writer.write(f"hello {subject.get('commonName', '?')}\n".encode())
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def _hello(conn: ClusterConnection, port: int) -> str:
    creds = await conn.auth.get()
    ctx = conn.ssl_context(creds)
    assert ctx is not None
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname=conn.server_hostname or "127.0.0.1"
        ),
        10,
    )
    try:
        return (await asyncio.wait_for(reader.readline(), 10)).decode().strip()
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):  # the peer may have closed first
            await writer.wait_closed()


async def test_tls_client_cert_data_and_tls_server_name(
    tmp_path: Path, env: dict[str, str], tls_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    private = tmp_path / "private-tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    kc = kubeconfig(
        tmp_path / "kc",
        {"client-certificate-data": b64(CLIENT_PEM), "client-key-data": b64(CLIENT_KEY_PEM)},
        server=f"https://127.0.0.1:{tls_server}",
        cluster={"tls-server-name": "kubernetes.internal"},
    )
    conn = load_connection(str(kc), environ=env)
    assert conn.server_hostname == "kubernetes.internal"
    assert await _hello(conn, tls_server) == "hello admin"
    assert list(private.iterdir()) == []  # the temporary key file is gone
    creds = await conn.auth.get()
    assert conn.ssl_context(creds) is conn.ssl_context(creds)  # cached per credentials


async def test_tls_wrong_ca_fails_verification(
    tmp_path: Path, env: dict[str, str], tls_server: int
) -> None:
    kc = kubeconfig(
        tmp_path / "kc",
        {"client-certificate-data": b64(CLIENT_PEM), "client-key-data": b64(CLIENT_KEY_PEM)},
        server=f"https://127.0.0.1:{tls_server}",
        cluster={"certificate-authority-data": b64(OTHER_CA_PEM)},
    )
    conn = load_connection(str(kc), environ=env)
    with pytest.raises(ssl.SSLCertVerificationError):
        await _hello(conn, tls_server)


async def test_tls_insecure_skip_verify(
    tmp_path: Path, env: dict[str, str], tls_server: int
) -> None:
    kc = kubeconfig(
        tmp_path / "kc",
        {"client-certificate-data": b64(CLIENT_PEM), "client-key-data": b64(CLIENT_KEY_PEM)},
        server=f"https://127.0.0.1:{tls_server}",
        cluster={"certificate-authority-data": None, "insecure-skip-tls-verify": True},
    )
    conn = load_connection(str(kc), environ=env)
    assert await _hello(conn, tls_server) == "hello admin"


async def test_tls_with_exec_certificate(
    tmp_path: Path, env: dict[str, str], plugin: Path, tls_server: int
) -> None:
    cert = write(tmp_path / "c.pem", CLIENT_PEM)
    key = write(tmp_path / "k.pem", CLIENT_KEY_PEM)
    kc = kubeconfig(
        tmp_path / "kc",
        exec_user(str(plugin), "cert", str(cert), str(key)),
        server=f"https://localhost:{tls_server}",
    )
    conn = load_connection(str(kc), environ=env)
    assert conn.server_hostname is None
    assert await _hello(conn, tls_server) == "hello admin"


def test_http_server_has_no_ssl_context(tmp_path: Path, env: dict[str, str]) -> None:
    kc = kubeconfig(
        tmp_path / "kc",
        {"token": "t"},
        server="http://127.0.0.1:8080",
        cluster={"certificate-authority-data": None},
    )
    conn = load_connection(str(kc), environ=env)
    assert conn.ssl_context(Credentials(token="t")) is None


def test_bad_client_key_is_a_config_error(tmp_path: Path, env: dict[str, str]) -> None:
    kc = kubeconfig(
        tmp_path / "kc",
        {"client-certificate-data": b64(CLIENT_PEM), "client-key-data": b64(OTHER_CA_PEM)},
    )
    conn = load_connection(str(kc), environ=env)
    creds = asyncio.run(conn.auth.get())
    with pytest.raises(ConfigError, match='client certificate/key of cluster "cl", user "alice"'):
        conn.ssl_context(creds)


def test_bad_ca_is_a_config_error(tmp_path: Path, env: dict[str, str]) -> None:
    kc = kubeconfig(
        tmp_path / "kc", {"token": "t"}, cluster={"certificate-authority-data": b64(b"junk")}
    )
    conn = load_connection(str(kc), environ=env)
    with pytest.raises(ConfigError, match="is not a valid PEM certificate"):
        conn.ssl_context(Credentials(token="t"))


# --------------------------------------------------------------------------- fuzzing

_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
_status = st.dictionaries(
    st.sampled_from(["token", "clientCertificateData", "clientKeyData", "expirationTimestamp"]),
    st.one_of(_json, st.sampled_from(["2030-01-01T00:00:00Z", "x", "PEM"])),
)
_cred = st.fixed_dictionaries(
    {},
    optional={
        "apiVersion": st.sampled_from(["client.authentication.k8s.io/v1", "v1", ""]),
        "kind": st.sampled_from(["ExecCredential", "Other"]),
        "status": st.one_of(_status, _json),
    },
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_cred.map(lambda d: json.dumps(d).encode()), st.binary(max_size=64)))
def test_fuzz_exec_output_parser(out: bytes) -> None:
    cfg = ExecConfig(api_version="client.authentication.k8s.io/v1", command="x")
    plugin = ExecPlugin(cfg, user="u", environ={})
    try:
        result = plugin._parse(out)
    except ConfigError as exc:
        assert "\n" not in str(exc)
    else:
        assert result.token is not None or (result.cert_pem and result.key_pem)
