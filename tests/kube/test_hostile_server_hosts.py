"""A server URL with user info, or with a host label over 63 characters, is a bad kubeconfig
said in one line (they were a ValueError from aiohttp and a UnicodeError from the resolver,
with tracebacks, in `forward`, `doctor` and `import --from-cluster`). The password is never
printed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from portfwd.errors import ConfigError
from portfwd.kube.config import load_connection
from tests.kube.test_config_kit import base_env, write
from tests.support.cli import portfwd_async

from .test_hostile_server_urls import kubeconfig

LONG = "a" * 64

CASES = {
    "https://user:s3cret@127.0.0.1:1": (
        '"https://***@127.0.0.1:1": it holds a user name or password (user@host); '
        "put credentials in users[]"
    ),
    "https://user@127.0.0.1:1/x": (
        '"https://***@127.0.0.1:1/x": it holds a user name or password (user@host); '
        "put credentials in users[]"
    ),
    f"https://{LONG}.example:6443": (
        f'"https://{LONG}.example:6443": "{LONG}.example" is not a valid host name'
        " (each dot-separated label has 1 to 63 characters)"
    ),
    "https://a..b:6443": (
        '"https://a..b:6443": "a..b" is not a valid host name'
        " (each dot-separated label has 1 to 63 characters)"
    ),
}


@pytest.mark.parametrize(("server", "said"), list(CASES.items()))
def test_refused_in_one_line_without_the_password(tmp_path: Path, server: str, said: str) -> None:
    kc = write(tmp_path / "kc", kubeconfig(server))
    with pytest.raises(ConfigError) as err:
        load_connection(str(kc), environ=base_env(tmp_path / "home"))
    assert str(err.value) == (
        f'cluster "prod" in {kc} has an invalid server {said}; '
        "fix clusters[].cluster.server (e.g. https://host:6443)"
    )
    assert "s3cret" not in str(err.value)


def test_a_63_character_label_is_fine(tmp_path: Path) -> None:
    kc = write(tmp_path / "kc", kubeconfig(f"https://{'a' * 63}.example:6443"))
    load_connection(str(kc), environ=base_env(tmp_path / "home"))


@pytest.mark.parametrize(
    "argv",
    [
        ("forward", "--kubeconfig", "{kc}", "svc/web", "8080:80"),
        ("doctor", "--kubeconfig", "{kc}"),
        ("import", "--from-cluster", "--kubeconfig", "{kc}", "-n", "demo"),
    ],
    ids=["forward", "doctor", "import"],
)
@pytest.mark.parametrize("server", list(CASES)[::2], ids=["userinfo", "long-label"])
async def test_commands_print_no_traceback(
    tmp_path: Path, argv: tuple[str, ...], server: str
) -> None:
    kc = write(tmp_path / "kc", kubeconfig(server))
    words = [word.replace("{kc}", str(kc)) for word in argv]
    env = {**os.environ, "PORTFWD_CONFIG_DIR": str(tmp_path / "config")}
    code, _out, err = await portfwd_async(*words, env=env, limit=60)
    assert code in (1, 2), err  # (import: 2, its "nothing imported")
    assert "Traceback" not in err and "internal error" not in err, err
    assert "s3cret" not in err + _out
    assert "has an invalid server" in err + _out
