"""`portfwd profile example|schema|ls|show|validate|edit|save` as a user runs them."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from portfwd.store.profiles import load_profiles
from portfwd.store.profiles_schema import example_text
from tests.support.cli import portfwd, private_env, write_private

BROKEN = """\
profiles:
  dev:
    forwards:
      - name: echo
        target: svc/echo
        ports: ["8080:80"]
        namspace: demo
  fine:
    forwards: [{name: a, target: svc/echo, ports: ":80"}]
"""


def test_example_is_a_file_that_validates(tmp_path: Path) -> None:
    env = private_env(tmp_path)
    result = portfwd("profile", "example", env=env)
    assert result.returncode == 0
    assert result.stdout == example_text()
    write_private(tmp_path / "config" / "profiles.yaml", result.stdout)
    checked = portfwd("profile", "validate", env=env)
    assert checked.returncode == 0, checked.stderr
    summary = "2 profile(s), 5 forward(s), 2 namespace(s): no problems"
    assert checked.stdout.strip().endswith(summary)
    listed = portfwd("profile", "ls", env=env)
    assert listed.returncode == 0
    assert listed.stdout.splitlines()[1].split()[:3] == ["demo", "4", "frontend,echoes"]
    shown = portfwd("profile", "show", "demo", env=env)
    assert shown.returncode == 0
    rows = [line.split() for line in shown.stdout.splitlines()[2:7]]
    assert rows[0] == ["echo", "svc/echo", "18080:80", "sandbox", "demo", "localhost", "yes"]
    assert [r[0] for r in rows] == ["echo", "web", "api-https", "api-metrics", "echo-2"]
    assert rows[4][3] == "sandbox-2"
    assert "group frontend: web, api" in shown.stdout


def test_schema_is_json(tmp_path: Path) -> None:
    result = portfwd("profile", "schema", env=private_env(tmp_path))
    assert result.returncode == 0
    assert json.loads(result.stdout)["title"] == "portfwd profiles"


def test_validate_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    env = private_env(tmp_path)
    path = write_private(tmp_path / "team.yaml", BROKEN)
    result = portfwd("profile", "validate", str(path), env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f'{path}:7:9: unknown key "namspace" (did you mean "namespace"?)',
        f"{path}: 1 profile(s), 1 forward(s) usable; 1 problem(s)",
    ]
    # ls still lists both; the broken one says so
    listed = portfwd("profile", "--profiles", str(path), "ls", env=env)
    assert listed.returncode == 0
    assert listed.stdout.splitlines()[1:] == [
        "dev      -         -       not usable: 1 problem(s), see `validate`",
        "fine     1         -",
    ]
    shown = portfwd("profile", "show", "dev", "--profiles", str(path), env=env)
    assert shown.returncode == 1
    assert shown.stderr.startswith(f"{path}:7:9: unknown key")


def test_ls_of_a_file_that_does_not_parse(tmp_path: Path) -> None:
    env = private_env(tmp_path)
    path = write_private(tmp_path / "config" / "profiles.yaml", "profiles:\n  dev: [\n")
    listed = portfwd("profile", "ls", env=env)
    assert listed.returncode == 1
    assert listed.stderr.startswith(f"{path}:3:1: YAML: ")
    up = portfwd("up", "dev", env=env)
    assert up.returncode == 2
    assert up.stderr.splitlines()[1].startswith(f"error: {path}:3:1: YAML: ")


def test_validate_checks_contexts_against_the_kubeconfig(tmp_path: Path) -> None:
    kubeconfig = write_private(
        tmp_path / "kc",
        textwrap.dedent(
            """\
            apiVersion: v1
            kind: Config
            clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
            users: [{name: u, user: {token: t}}]
            contexts:
              - {name: prod, context: {cluster: c, user: u}}
              - {name: staging, context: {cluster: c, user: u}}
            current-context: prod
            """
        ),
    )
    path = write_private(
        tmp_path / "p.yaml",
        "profiles:\n  dev:\n    defaults: {context: stagin}\n    forwards: []\n",
    )
    env = private_env(tmp_path)
    result = portfwd("profile", "validate", "--kubeconfig", str(kubeconfig), str(path), env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        f'{path}:3:25: unknown context "stagin" (did you mean "staging"?): the kubeconfig has '
        "prod, staging"
    )


def test_unknown_profile_names_the_known_ones(tmp_path: Path) -> None:
    env = private_env(tmp_path)
    write_private(tmp_path / "config" / "profiles.yaml", BROKEN)
    result = portfwd("profile", "show", "nope", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().endswith('profiles: "dev", "fine"')
    assert portfwd("--context", "x", "profile", "ls", env=env).returncode == 2
    wrong = portfwd("--state", "s.yaml", "profile", "validate", env=env)
    assert wrong.returncode == 2
    assert wrong.stderr.startswith("error: --state does not apply to 'portfwd profile validate'")


# -- edit -------------------------------------------------------------------------------------

EDITOR = """\
import pathlib, sys
path = pathlib.Path(sys.argv[1])
count = pathlib.Path(sys.argv[0]).with_suffix(".count")
n = int(count.read_text()) if count.exists() else 0
count.write_text(str(n + 1))
text = path.read_text()
if n == 0:
    text = text.replace("namespace: demo", "namspace: demo", 1)      # a typo
else:
    text = text.replace("namspace: demo", "namespace: prod", 1)      # fixed, and changed
path.write_text(text)
"""


def _editor(tmp_path: Path) -> str:
    script = tmp_path / "editor.py"
    script.write_text(EDITOR)
    return f"{sys.executable} {script}"


def test_edit_validates_and_offers_to_edit_again(tmp_path: Path) -> None:
    env = private_env(tmp_path, EDITOR=_editor(tmp_path))
    path = write_private(tmp_path / "config" / "profiles.yaml", example_text())
    result = portfwd("profile", "edit", "demo", env=env, stdin="y\n")
    assert result.returncode == 0, result.stderr
    assert 'unknown key "namspace" (did you mean "namespace"?)' in result.stderr
    assert "Edit again?" in result.stderr
    assert result.stdout.strip() == f"saved {path}"
    assert load_profiles(path).profiles["demo"].defaults.namespace == "prod"
    assert example_text().replace("namespace: demo", "namespace: prod", 1) == path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["profiles.yaml"]


def test_edit_declined_leaves_the_file_alone(tmp_path: Path) -> None:
    env = private_env(tmp_path, EDITOR=_editor(tmp_path))
    path = write_private(tmp_path / "config" / "profiles.yaml", example_text())
    result = portfwd("profile", "edit", "demo", env=env, stdin="n\n")
    assert result.returncode == 1
    assert path.read_text() == example_text()
    assert "was not changed; your edit is kept in" in result.stderr
    kept = [p for p in path.parent.iterdir() if p.name != "profiles.yaml"]
    assert len(kept) == 1 and "namspace: demo" in kept[0].read_text()


def test_edit_of_an_unknown_profile_is_a_usage_error(tmp_path: Path) -> None:
    env = private_env(tmp_path, EDITOR=_editor(tmp_path))
    write_private(tmp_path / "config" / "profiles.yaml", example_text())
    result = portfwd("profile", "edit", "dmeo", env=env)
    assert result.returncode == 2
    assert 'no profile "dmeo"' in result.stderr and 'profiles: "demo"' in result.stderr
    assert not (tmp_path / "editor.count").exists()  # the editor never ran


# -- save -------------------------------------------------------------------------------------

SESSION = """\
version: 1
forwards:
  - {id: a1, name: db, target: svc/postgres, remote_port: 5432, local_port: 15432,
     context: prod, namespace: data, addresses: [localhost], reconnect: true, running: true}
  - {id: b2, target: svc/web, remote_port: http, local_port: 0, addresses: [127.0.0.1],
     reconnect: false, running: false}
"""

MINE = """\
# Team profiles: hand-written, keep these comments.
profiles:
  other:   # someone else's
    forwards:
      - {name: x, target: svc/x, ports: ":80"}
"""


def test_save_from_the_session_keeps_the_files_comments(tmp_path: Path) -> None:
    env = private_env(tmp_path)
    state = write_private(tmp_path / "state.yaml", SESSION)
    path = write_private(tmp_path / "config" / "profiles.yaml", MINE)
    result = portfwd("--state", str(state), "profile", "save", "mine", "--from-session", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"saved new profile mine (2 forwards) in {path}"
    text = path.read_text()
    assert text.startswith(MINE)
    mine = load_profiles(path).profiles["mine"]
    assert [
        (f.name, f.target, f.ports, f.context, f.namespace, f.address, f.reconnect)
        for f in mine.forwards
    ] == [
        ("db", "svc/postgres", ("15432:5432",), "prod", "data", None, True),
        ("web-http", "svc/web", (":http",), None, None, ("127.0.0.1",), False),
    ]
    again = portfwd("profile", "save", "mine", "--state", str(state), env=env)
    assert again.returncode == 0
    assert again.stdout.startswith("updated profile mine")
    assert path.read_text() == text


def test_save_refuses_a_file_that_does_not_parse(tmp_path: Path) -> None:
    env = private_env(tmp_path)
    state = write_private(tmp_path / "state.yaml", SESSION)
    path = write_private(tmp_path / "config" / "profiles.yaml", "profiles: [\n")
    result = portfwd("profile", "save", "mine", "--state", str(state), env=env)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {path}:2:1: YAML: ")
    assert "the file was not changed" in result.stderr
    assert path.read_text() == "profiles: [\n"


def test_completion_of_profiles_and_groups(tmp_path: Path) -> None:
    env = private_env(tmp_path)
    write_private(tmp_path / "config" / "profiles.yaml", example_text())

    def complete(line: str) -> list[str]:
        words = line.split(" ")
        protocol = {
            **env,
            "_PORTFWD_COMPLETE": "bash_complete",
            "COMP_WORDS": line,
            "COMP_CWORD": str(len(words) - 1),
        }
        result = portfwd(env=protocol)
        assert (result.returncode, result.stderr) == (0, "")
        return [entry.split(",", 1)[1] for entry in result.stdout.splitlines() if entry]

    assert complete("portfwd up ") == ["demo", "cluster"]
    assert complete("portfwd up demo ") == ["frontend", "echoes"]
    assert complete("portfwd up demo frontend ") == ["echoes"]
    assert complete("portfwd profile show d") == ["demo"]
    assert complete("portfwd up nope ") == []
