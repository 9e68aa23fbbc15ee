"""`portfwd export PROFILE [GROUP...] --format ...`: a profile's forwards in another tool's
form; the kubectl script parses back to the same forwards."""

from __future__ import annotations

from pathlib import Path

from portfwd.transfer.kubectl_lines import parse_kubectl_lines
from tests.support.cli import portfwd, private_env, write_private

PROFILES = """\
# exported in the tests
profiles:
  pair:
    defaults: {context: prod, namespace: shop, address: 127.0.0.1}
    forwards:
      - {name: web, target: svc/web, ports: ["8080:80"]}
      - {name: db, target: sts/postgres, ports: ["15432:5432"], namespace: data}
    groups:
      data: [db]
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = private_env(tmp_path)
    write_private(tmp_path / "config" / "profiles.yaml", PROFILES)
    return env


def test_a_profile_as_a_kubectl_script_parses_back_to_its_forwards(tmp_path: Path) -> None:
    result = portfwd("export", "pair", "--format", "kubectl", env=_env(tmp_path))
    assert result.returncode == 0, result.stderr
    back = parse_kubectl_lines(result.stdout, "export")
    assert not back.skipped, back.skipped
    got = sorted(
        (s.target, s.namespace, s.context, s.local_port, s.remote_port) for s in back.specs
    )
    assert got == [
        ("sts/postgres", "data", "prod", 15432, 5432),
        ("svc/web", "shop", "prod", 8080, 80),
    ]


def test_a_group_of_a_profile_only(tmp_path: Path) -> None:
    result = portfwd("export", "pair", "data", env=_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "sts/postgres" in result.stdout and "svc/web" not in result.stdout, result.stdout


def test_an_unknown_profile_names_the_known_ones(tmp_path: Path) -> None:
    result = portfwd("export", "nope", env=_env(tmp_path))
    assert result.returncode == 2, result
    (line,) = result.stderr.splitlines()
    assert line.startswith('error: no profile "nope"') and 'profiles: "pair"' in line, line
    assert line.endswith('(and no file named "nope")'), line
    assert result.stdout == ""
