"""Hardening (issue 8, item 6): a malformed server URL is a bad kubeconfig, said in one line.

`https://[::1:bad`, `https://127.0.0.1:99999`, `https://:0` and `https://127.0.0.1:abc`
printed a full traceback and `error: internal error: ValueError`. The loader now refuses them
when it reads the kubeconfig, naming the cluster entry; whatever it accepts, aiohttp's URL type
(yarl) accepts too, so nothing fails later with a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from portfwd.errors import ConfigError
from portfwd.kube.config import load_connection
from tests.kube.test_config_kit import base_env, write
from tests.support.cli import run_cli

HOSTILE = {
    "https://[::1:bad": "Invalid IPv6 URL",
    "https://127.0.0.1:99999": 'port "99999" is not a number from 1 to 65535',
    "https://:0": "it names no host",
    "https://127.0.0.1:abc": 'port "abc" is not a number from 1 to 65535',
    "https://127.0.0.1:0": 'port "0" is not a number from 1 to 65535',
    "https://[fe80::zz]:6443": "Invalid IPv6 URL",
    "ftp://k.example": 'the scheme "ftp" is not https or http',
    "https://k.example:6443:1": 'port "6443:1" is not a number from 1 to 65535',
    "https://a b": '"a b" is not a host name',
}


def kubeconfig(server: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "ctx",
            "clusters": [{"name": "prod", "cluster": {"server": server}}],
            "contexts": [{"name": "ctx", "context": {"cluster": "prod", "user": "u"}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
        }
    )


@pytest.mark.parametrize(("server", "problem"), list(HOSTILE.items()))
def test_malformed_server_is_one_line_naming_the_cluster(
    tmp_path: Path, server: str, problem: str
) -> None:
    kc = write(tmp_path / "kc", kubeconfig(server))
    with pytest.raises(ConfigError) as err:
        load_connection(str(kc), environ=base_env(tmp_path / "home"))
    assert str(err.value) == (
        f'cluster "prod" in {kc} has an invalid server "{server}": {problem}; '
        "fix clusters[].cluster.server (e.g. https://host:6443)"
    )


@pytest.mark.parametrize("server", list(HOSTILE)[:4])
async def test_the_cli_prints_one_error_line_and_no_traceback(tmp_path: Path, server: str) -> None:
    kc = write(tmp_path / "kc", kubeconfig(server))
    code, out, err = await run_cli("--kubeconfig", str(kc), "svc/web", "8080:80")
    assert (code, out) == (1, "")
    assert err.startswith(f'error: cluster "prod" in {kc} has an invalid server "{server}": ')
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "server",
    [
        "https://k.example:6443",
        "https://[::1]:6443",
        "http://127.0.0.1:8080/prefix",
        "k.example:6443",  # no scheme: client-go adds one
        "https://K.Example",
    ],
)
def test_good_servers_still_load(tmp_path: Path, server: str) -> None:
    kc = write(tmp_path / "kc", kubeconfig(server))
    conn = load_connection(str(kc), environ=base_env(tmp_path / "home"))
    assert conn.server.endswith(server.split("://")[-1].rstrip("/"))


_url_text = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda scheme, host, port, rest: f"{scheme}{host}{port}{rest}",
        st.sampled_from(["https://", "http://", "", "ftp://", "https:/"]),
        st.one_of(
            st.sampled_from(["", "k.example", "[::1]", "[::1", "127.0.0.1", "[fe80::1%eth0]"]),
            st.text(max_size=12),
        ),
        st.one_of(st.just(""), st.integers(-5, 99999).map(lambda p: f":{p}"), st.text(max_size=6)),
        st.one_of(st.just(""), st.text(max_size=8)),
    ),
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=300)
@given(server=_url_text)
def test_any_server_is_refused_in_one_line_or_usable(tmp_path: Path, server: str) -> None:
    kc = write(tmp_path / "kc", kubeconfig(server))
    try:
        conn = load_connection(str(kc), environ=base_env(tmp_path / "home"))
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    url = URL(conn.server)  # what aiohttp does with it: must not raise
    assert url.scheme in ("http", "https")
    assert url.host
    assert url.port is not None and 1 <= url.port <= 65535


def test_a_host_whose_idna_form_does_not_decode_is_one_line(tmp_path: Path) -> None:
    kc = write(tmp_path / "kc", kubeconfig("HTTP://µ\u2024"))  # found by the test above
    with pytest.raises(ConfigError) as caught:
        load_connection(str(kc), environ=base_env(tmp_path / "home"))
    assert "\n" not in str(caught.value)
