"""Every problem in a profiles file is one line at FILE:LINE:COLUMN saying what to fix; all of
them are reported, and a broken profile does not stop the others."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from portfwd.errors import PortfwdError
from portfwd.store.profiles import (
    PROFILES_MAX_BYTES,
    ProfilesFileError,
    load_profiles,
    load_text,
    save_profile,
)
from portfwd.store.profiles_model import Profile, ProfileForward


def problems(text: str, contexts: list[str] | None = None) -> list[str]:
    known = None if contexts is None else (lambda _kubeconfig: contexts)
    return [str(p) for p in load_text(text, "profiles.yaml", known_contexts=known).problems]


def test_unknown_key_says_where_and_what_was_meant() -> None:
    text = """\
profiles:
  dev:
    forwards:
      - name: echo
        target: svc/echo
        ports: ["8080:80"]
        namspace: demo
"""
    assert problems(text) == [
        'profiles.yaml:7:9: unknown key "namspace" (did you mean "namespace"?)'
    ]


def test_unknown_keys_at_every_level() -> None:
    text = """\
versoin: 1
profiles:
  dev:
    descripton: x
    defaults: {contxt: a}
    forwards: []
    colour: blue
"""
    assert problems(text) == [
        'profiles.yaml:1:1: unknown key "versoin" (did you mean "version"?)',
        'profiles.yaml:4:5: unknown key "descripton" (did you mean "description"?)',
        'profiles.yaml:5:16: unknown key "contxt" (did you mean "context"?)',
        'profiles.yaml:7:5: unknown key "colour" (a profile takes description, defaults, '
        "forwards, namespaces, groups)",
    ]


def test_bad_ports_and_targets_quote_kubectls_rules() -> None:
    text = """\
profiles:
  dev:
    forwards:
      - name: a
        target: svc/echo
        ports: ["8080:80", "99999:80", "x:80"]
      - name: b
        target: svcs/echo
        ports: "http"
      - name: c
        target: svc/Echo
        ports: [true]
"""
    assert problems(text) == [
        'profiles.yaml:6:28: invalid local port "99999" in "99999:80": ports are 0..65535; '
        "expected [LOCAL:]REMOTE, e.g. 8080:80, 80, :80 or 8443:https",
        'profiles.yaml:6:40: invalid local port "x" in "x:80": a number 0..65535 or nothing '
        "(a free port); expected [LOCAL:]REMOTE, e.g. 8080:80, 80, :80 or 8443:https",
        'profiles.yaml:8:17: unknown target type "svcs" in "svcs/echo": use one of pod/, po/, '
        "svc/, service/, deploy/, deployment/, sts/, statefulset/, rs/, replicaset/ or a bare "
        "pod name",
        'profiles.yaml:9:16: give a local port for the named remote port "http" '
        '(e.g. "8443:http", or ":http" for a free one)',
        'profiles.yaml:11:17: invalid name "Echo" in target "svc/Echo": names use lowercase '
        "letters, digits, '-' and '.', and start and end with a letter or digit",
        'profiles.yaml:12:17: a port must be text such as "8080:80", not true/false',
    ]


def test_two_forwards_on_one_local_address_and_port() -> None:
    text = """\
profiles:
  dev:
    forwards:
      - {name: a, target: svc/echo, ports: ["8080:80"]}
      - name: b
        target: svc/web
        ports: [":80", "8080:80"]
      - name: c
        target: svc/web
        ports: "8080:81"
        address: 0.0.0.0
      - name: d
        target: svc/api
        ports: ["9000:1", "9000:2"]
  other:
    forwards:
      - {name: a, target: svc/echo, ports: ["8080:80"]}
"""
    assert problems(text) == [
        'profiles.yaml:7:24: forward "b" listens on 127.0.0.1:8080, as forward "a" does; '
        "give one of them another local port",
        'profiles.yaml:10:16: forward "c" listens on 127.0.0.1:8080, as forward "a" does; '
        "give one of them another local port",
        'profiles.yaml:14:27: forward "d" listens on 127.0.0.1:9000, as it already does; '
        "give one of them another local port",
    ]


def test_separate_addresses_may_share_a_port() -> None:
    text = """\
profiles:
  dev:
    forwards:
      - {name: a, target: svc/echo, ports: ["8080:80"], address: 127.0.0.1}
      - {name: b, target: svc/web, ports: ["8080:80"], address: 127.0.0.2}
      - {name: c, target: svc/web, ports: [":80"]}
      - {name: d, target: svc/web, ports: [":80"]}
"""
    assert problems(text) == []


def test_unknown_group_member_and_duplicate_names() -> None:
    text = """\
profiles:
  dev:
    forwards:
      - {name: echo, target: svc/echo, ports: [":80"]}
      - {name: web, target: svc/web, ports: [":80"]}
      - {name: web, target: svc/web, ports: [":81"]}
    groups:
      front: [web, ehco]
      back: [db]
      one: echo
"""
    assert problems(text) == [
        'profiles.yaml:6:16: forward name "web" is used twice in this profile (also line 5); '
        "give each forward its own name",
        'profiles.yaml:8:20: group "front" names "ehco", which is not a forward of this profile'
        ' (did you mean "echo"?)',
        'profiles.yaml:9:14: group "back" names "db", which is not a forward of this profile; '
        "its forwards are echo, web",
    ]


def test_unknown_context_lists_the_known_ones() -> None:
    text = """\
profiles:
  dev:
    defaults:
      context: prodd
    forwards:
      - {name: a, target: svc/echo, ports: [":80"]}
      - {name: b, target: svc/echo, ports: [":80"], context: staging}
      - {name: c, target: svc/echo, ports: [":80"], context: prod}
"""
    assert problems(text, ["prod", "staging-eu"]) == [
        'profiles.yaml:4:16: unknown context "prodd" (did you mean "prod"?): the kubeconfig has'
        " prod, staging-eu",
        'profiles.yaml:7:62: unknown context "staging" (did you mean "staging-eu"?): the '
        "kubeconfig has prod, staging-eu",
    ]
    assert problems(text, None) == []  # no readable kubeconfig: contexts are not checked


def test_wrong_types_and_missing_fields() -> None:
    text = """\
version: 2
"""
    assert problems(text) == [
        "profiles.yaml:1:10: written for a newer portfwd (version 2); this one reads version 1:"
        " upgrade portfwd"
    ]
    text = """\
profiles:
  dev:
    description: [x]
    defaults: 3
    forwards:
      - target: svc/echo
      - 7
      - name: ok
        target: svc/echo
        ports: ":80"
        reconnect: "no"
        address: 3
        namespace: Demo
  bad name!: {}
  list: []
"""
    assert problems(text) == [
        "profiles.yaml:3:18: description must be text",
        "profiles.yaml:4:15: defaults must be a mapping",
        "profiles.yaml:6:9: this forward has no name",
        "profiles.yaml:6:9: this forward has no ports",
        "profiles.yaml:7:9: a forward must be a mapping (name, target, ports, ...), not a number",
        'profiles.yaml:11:20: reconnect must be true or false, not "no"',
        "profiles.yaml:12:18: address must be text or a list of text, not a number",
        "profiles.yaml:13:20: invalid namespace \"Demo\": lowercase letters, digits and '-'",
        "profiles.yaml:14:3: profile name \"bad name!\": up to 63 letters, digits, '.', '_' and "
        "'-', starting with a letter or digit",
        'profiles.yaml:15:9: profile "list" must be a mapping (description, defaults, forwards,'
        " namespaces, groups), not a list",
    ]


def test_the_shape_of_the_file() -> None:
    assert problems("- a\n- b\n") == [
        "profiles.yaml:1:1: the file must be a mapping with `profiles:`, not a list"
    ]
    assert problems("version: 1\nprofiles: [a]\n") == [
        "profiles.yaml:2:11: profiles must be a mapping of profile names, not a list"
    ]
    text = """\
profiles:
  dev:
    forwards: {name: a}
    groups: [a]
  two:
    forwards:
      - {name: a, target: svc/echo, ports: ["80", "81"]}
      - {name: a-80, target: svc/echo, ports: ["8080:80"]}
    groups:
      g: {a: 1}
      "-x": [a]
"""
    assert problems(text) == [
        "profiles.yaml:3:15: forwards must be a list",
        "profiles.yaml:4:13: groups must be a mapping of group names to lists of forward names",
        'profiles.yaml:8:16: forward "a-80" is run as "a-80", the name of forward "a" too; '
        "rename one",
        'profiles.yaml:10:10: group "g" must be a list of forward names, not a mapping',
        "profiles.yaml:11:7: group name \"-x\": up to 63 letters, digits, '.', '_' and '-', "
        "starting with a letter or digit",
    ]


def test_yaml_syntax_and_duplicate_keys() -> None:
    assert problems("profiles:\n  dev:\n    forwards: [\n") == [
        "profiles.yaml:4:1: YAML: while parsing a flow node, did not find expected node content"
    ]
    assert problems("profiles:\n  dev: {}\n  dev: {}\n") == [
        'profiles.yaml:3:3: YAML: duplicate key "dev"; each key may appear once'
    ]


def test_a_broken_profile_leaves_the_others_usable() -> None:
    text = """\
profiles:
  good:
    forwards:
      - {name: a, target: svc/echo, ports: ["8080:80"]}
  broken:
    forwards:
      - {name: a, target: svc/echo, ports: ["80800:80"]}
  also-good:
    forwards: []
"""
    loaded = load_text(text, "p.yaml")
    assert list(loaded.profiles) == ["good", "also-good"]
    assert loaded.broken == ["broken"]
    assert loaded.names == ["good", "broken", "also-good"]
    assert [(p.line, p.column, p.profile) for p in loaded.problems] == [(7, 45, "broken")]


# -- the file itself --------------------------------------------------------------------------


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_file_others_may_change_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "profiles.yaml", "profiles: {}\n", 0o620)
    with pytest.raises(PortfwdError, match=r"writable by group or others.*chmod go-w"):
        load_profiles(path)


def test_an_oversized_file_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "profiles.yaml", "#" * (PROFILES_MAX_BYTES + 1) + "\n")
    with pytest.raises(ProfilesFileError, match="over portfwd's limit of 128 KiB"):
        load_profiles(path)


def test_an_alias_bomb_is_a_problem_not_a_hang(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    path = _write(tmp_path / "profiles.yaml", "\n".join(lines) + "\n")
    loaded = load_profiles(path)
    assert loaded.profiles == {}
    assert str(loaded.problems[0]).endswith(
        "not read: it has more YAML nodes than portfwd's limit of 50,000, counting aliases expanded"
    )


def test_a_file_that_does_not_parse_is_never_overwritten(tmp_path: Path) -> None:
    text = "profiles:\n  dev: [\n"
    path = _write(tmp_path / "profiles.yaml", text)
    prof = Profile(name="x", forwards=(ProfileForward("a", "svc/echo", (":80",)),))
    with pytest.raises(ProfilesFileError, match=r"profiles.yaml:3:1: YAML: .*not changed"):
        save_profile(path, prof)
    assert path.read_text() == text
    assert os.listdir(tmp_path) == ["profiles.yaml"]  # no temp file left behind


def test_a_profile_with_problems_is_not_saved(tmp_path: Path) -> None:
    path = _write(tmp_path / "profiles.yaml", "# mine\nprofiles: {}\n")
    prof = Profile(
        name="x",
        forwards=(
            ProfileForward("a", "svc/echo", ("8080:80",)),
            ProfileForward("b", "svc/web", ("8080:80",)),
        ),
    )
    with pytest.raises(
        ProfilesFileError, match=re.escape('listens on 127.0.0.1:8080, as forward "a"')
    ):
        save_profile(path, prof)
    assert path.read_text() == "# mine\nprofiles: {}\n"
