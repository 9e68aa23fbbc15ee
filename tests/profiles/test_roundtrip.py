"""profiles.yaml round trips: what is saved loads back equal, and a save keeps the rest of
the file (comments, order, other profiles) as it was."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portfwd.store.profiles import load_profiles, save_profile
from portfwd.store.profiles_model import Defaults, Profile, ProfileForward

NAMES = st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True)
DNS = st.from_regex(r"[a-z]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
TARGETS = st.builds(lambda k, n: f"{k}/{n}", st.sampled_from(["svc", "pod", "deploy", "sts"]), DNS)
ADDRESSES = st.none() | st.lists(
    st.sampled_from(["localhost", "127.0.0.1", "::1", "0.0.0.0", "::"]),
    min_size=1,
    max_size=2,
    unique=True,
).map(tuple)
TEXT = st.text(
    alphabet=st.sampled_from(list("abcXYZ 019:#'\"-_.,()[]{}&*!|>%@`é✓")), max_size=30
).map(str.strip)
KUBECONFIGS = st.none() | st.sampled_from(["~/.kube/config", "/etc/kube/a b.yaml", "k.yaml"])
REMOTES = st.integers(1, 65535) | st.sampled_from(["http", "https", "metrics", "grpc-web"])


@st.composite
def profiles(draw: st.DrawFn) -> dict[str, Profile]:
    used_locals: set[int] = set()

    def local() -> int:
        port = draw(st.integers(0, 65535).filter(lambda p: p not in used_locals))
        if port:
            used_locals.add(port)
        return port

    def port_text(remote: int | str) -> str:
        port = local()
        if isinstance(remote, int) and port == remote and draw(st.booleans()):
            return str(remote)
        return f"{port or ''}:{remote}"

    result: dict[str, Profile] = {}
    for pname in draw(st.lists(NAMES, min_size=1, max_size=3, unique=True)):
        fnames = draw(st.lists(NAMES, max_size=4, unique=True))
        forwards = []
        for fname in fnames:
            remotes = draw(st.lists(REMOTES, min_size=1, max_size=3, unique=True))
            forwards.append(
                ProfileForward(
                    name=fname,
                    target=draw(TARGETS),
                    ports=tuple(port_text(r) for r in remotes),
                    context=draw(st.none() | DNS),
                    namespace=draw(st.none() | DNS),
                    address=draw(ADDRESSES),
                    reconnect=draw(st.booleans()),
                    kubeconfig=draw(KUBECONFIGS),
                    http_log=draw(st.booleans()),
                )
            )
        groups = {
            g: tuple(draw(st.lists(st.sampled_from(fnames), min_size=1, unique=True)))
            for g in (draw(st.lists(NAMES, max_size=3, unique=True)) if fnames else [])
        }
        result[pname] = Profile(
            name=pname,
            description=draw(TEXT),
            defaults=Defaults(
                kubeconfig=draw(KUBECONFIGS),
                context=draw(st.none() | DNS),
                namespace=draw(st.none() | DNS),
                address=draw(ADDRESSES),
            ),
            forwards=tuple(forwards),
            groups=groups,
        )
    return result


HAND_WRITTEN = """\
# My team's forwards.   (a comment at the top)
version: 1

profiles:
    # kept: a profile portfwd never saves in this test
    zkeep:
        description: "quoted, on purpose"   # trailing comment
        forwards:
            -   name: db        # the database
                target: svc/db
                ports: '5432'   # single quotes
        groups: {all: [db]}
# the end
"""


def _file(text: str | None) -> Path:
    directory = Path(tempfile.mkdtemp(prefix="pfprof-"))
    path = directory / "profiles.yaml"
    if text is not None:
        path.write_text(text)
        path.chmod(0o600)
    return path


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profiles())
def test_saved_profiles_load_back_equal(generated: dict[str, Profile]) -> None:
    path = _file(None)
    for prof in generated.values():
        assert save_profile(path, prof) is True
    loaded = load_profiles(path)
    assert loaded.problems == []
    assert loaded.profiles == generated
    assert path.stat().st_mode & 0o777 == 0o600
    # A second save of the same profiles changes nothing, byte for byte.
    text = path.read_text()
    for prof in generated.values():
        assert save_profile(path, prof) is False
    assert path.read_text() == text
    assert load_profiles(path).profiles == generated


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profiles())
def test_a_save_keeps_the_hand_written_rest_of_the_file(generated: dict[str, Profile]) -> None:
    path = _file(HAND_WRITTEN)
    before = load_profiles(path).profiles["zkeep"]
    for prof in generated.values():
        save_profile(path, prof)
    text = path.read_text()
    for kept in (
        "# My team's forwards.   (a comment at the top)",
        "    # kept: a profile portfwd never saves in this test",
        '        description: "quoted, on purpose"   # trailing comment',
        "            -   name: db        # the database",
        "                ports: '5432'   # single quotes",
        "        groups: {all: [db]}",
        "# the end",
    ):
        assert kept in text
    loaded = load_profiles(path)
    assert loaded.problems == []
    assert loaded.profiles["zkeep"] == before
    assert {k: v for k, v in loaded.profiles.items() if k != "zkeep"} == generated
    # The file's own layout is followed: 4-space mappings, dashes 4 in, items 8 in.
    for prof in generated.values():
        if prof.forwards:
            assert f"            -   name: {prof.forwards[0].name}" in text


def test_updating_a_profile_keeps_its_comments_and_key_order(tmp_path: Path) -> None:
    path = tmp_path / "profiles.yaml"
    path.write_text(
        """\
profiles:
  dev:
    forwards:   # comment on forwards
      # before echo
      - name: echo
        ports: ["8080:80"]   # port comment
        target: svc/echo
        reconnect: true   # written although it is the default
      - name: web
        target: svc/web
        ports: ":80"
    description: last, on purpose
"""
    )
    path.chmod(0o600)
    dev = load_profiles(path).profiles["dev"]
    web = dev.forward("web")
    changed = Profile(
        name="dev",
        description=dev.description,
        forwards=(dev.forward("echo"), ProfileForward(web.name, "svc/web", (":81",))),
    )
    assert save_profile(path, changed) is False
    text = path.read_text()
    assert "    forwards:   # comment on forwards\n      # before echo\n" in text
    assert '        ports: ["8080:80"]   # port comment\n        target: svc/echo\n' in text
    assert "        reconnect: true   # written although it is the default\n" in text
    assert text.rstrip().endswith("description: last, on purpose")
    assert '        ports: [":81"]' in text
    assert load_profiles(path).profiles["dev"] == changed


def test_a_file_of_comments_only_keeps_them(tmp_path: Path) -> None:
    path = tmp_path / "profiles.yaml"
    path.write_text("# nothing here yet\n# (but keep this)\n")
    path.chmod(0o600)
    prof = Profile(name="a", forwards=(ProfileForward("x", "svc/x", (":80",)),))
    assert save_profile(path, prof) is True
    text = path.read_text()
    assert text.startswith("# nothing here yet\n# (but keep this)\nversion: 1\nprofiles:\n")
    assert load_profiles(path).profiles == {"a": prof}


def test_a_new_file_is_private_and_says_what_it_is(tmp_path: Path) -> None:
    path = tmp_path / "new-dir" / "profiles.yaml"
    prof = Profile(name="a", forwards=(ProfileForward("x", "svc/x", (":80",)),))
    assert save_profile(path, prof) is True
    assert path.read_text().startswith("# portfwd profiles: saved sets of forwards")
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
