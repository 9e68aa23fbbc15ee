"""A `--state` path through another user's symbolic link is refused (issue 16, item 3): in a
sticky 1777 directory another user linked `state.yaml` to a file of the owner's, and the
daemon renamed that file to `.bak-...` and wrote its session there. The link itself, and
every link on the way, must be the user's (or root's), as ssh checks each component."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from portfwd.filecheck import UnsafeFile
from portfwd.store.state import StateStore, check_session_path

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="lchown to another uid needs root")
OTHER = 65534  # nobody


@pytest.fixture
def sticky(tmp_path: Path) -> Path:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o1777)  # like /tmp
    return shared


def owners_file(tmp_path: Path) -> Path:
    mine = tmp_path / "private" / "notes.txt"
    mine.parent.mkdir(mode=0o700)
    mine.write_text("the owner's own file\n")
    mine.chmod(0o600)
    return mine


@needs_root
def test_another_users_link_in_a_sticky_directory_is_refused(tmp_path: Path, sticky: Path) -> None:
    mine = owners_file(tmp_path)
    link = sticky / "state.yaml"
    link.symlink_to(mine)
    os.lchown(link, OTHER, OTHER)
    with pytest.raises(UnsafeFile) as err:
        check_session_path(link)
    message = str(err.value)
    assert f"{link} is a symbolic link that belongs to uid {OTHER}" in message or (
        f"{link} is a symbolic link that belongs to user" in message
    )
    assert "\n" not in message
    with pytest.raises(UnsafeFile):
        StateStore(link).load()
    assert mine.read_text() == "the owner's own file\n"  # untouched, not renamed
    assert sorted(p.name for p in mine.parent.iterdir()) == ["notes.txt"]


@needs_root
def test_another_users_link_to_a_directory_on_the_way_is_refused(
    tmp_path: Path, sticky: Path
) -> None:
    mine = owners_file(tmp_path)
    link = sticky / "cfg"
    link.symlink_to(mine.parent)
    os.lchown(link, OTHER, OTHER)
    with pytest.raises(UnsafeFile, match="is a symbolic link that belongs to"):
        check_session_path(link / "notes.txt")


def test_the_users_own_link_in_a_sticky_directory_is_fine(tmp_path: Path, sticky: Path) -> None:
    mine = owners_file(tmp_path)
    link = sticky / "state.yaml"
    link.symlink_to(mine)
    check_session_path(link)  # ours: nobody else can replace it there
