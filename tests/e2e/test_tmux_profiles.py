"""The demo's profile in a real terminal (issue 10): `p`, start the second cluster's group,
see its forwards active on the dashboard and moving bytes, quit, and find them restored."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import yaml

from .test_tmux import EXIT_MARK, Tmux, cell_under, echo_roundtrip, row_with, tmux  # noqa: F401


def test_start_a_group_of_the_demo_profile_quit_and_restore(
    tmux: Tmux,  # noqa: F811
    tmp_path: Path,
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    # An existing (empty) session: no demo seeds; the demo writes its profiles file.
    (config / "state.yaml").write_text("version: 1\nforwards: []\n")
    command = " ".join(
        [
            "env -u COLUMNS -u LINES",
            f"PORTFWD_CONFIG_DIR={shlex.quote(str(config))}",
            shlex.quote(sys.executable),
            "-m portfwd demo",
        ]
    )
    tmux.start("one", command)
    tmux.wait_for("one", lambda s: "No forwards yet" in s, "the empty dashboard")
    tmux.keys("one", "p")
    tmux.wait_for(
        "one",
        lambda s: row_with(s, "second-cluster", "0/2") is not None,
        "the demo profile and its groups",
    )
    tmux.keys("one", "Down", "Down")  # demo, first-cluster, second-cluster
    tmux.keys("one", "Enter")
    tmux.wait_for(
        "one", lambda s: row_with(s, "second-cluster", "2/2") is not None, "the group active"
    )
    tmux.keys("one", "Escape")
    screen = tmux.wait_for(
        "one",
        lambda s: (
            cell_under(s, "Local", "● active", "sandbox-2", "svc/echo") is not None
            and row_with(s, "● active", "sandbox-2", "deploy/web") is not None
        ),
        "both forwards of the second cluster active on the dashboard",
    )
    local = cell_under(screen, "Local", "● active", "sandbox-2", "svc/echo")
    assert local is not None
    port = int(local.rsplit(":", 1)[-1])
    payload = os.urandom(3000)
    assert echo_roundtrip(port, payload) == payload

    tmux.keys("one", "q")
    tmux.wait_for("one", lambda s: f"{EXIT_MARK}0" in s, "a clean exit")
    saved = yaml.safe_load((config / "state.yaml").read_text())["forwards"]
    assert sorted((f["name"], f["context"], f["running"]) for f in saved) == [
        ("echo-2", "sandbox-2", True),
        ("web-2", "sandbox-2", True),
    ]

    tmux.start("two", command)
    tmux.wait_for(
        "two",
        lambda s: cell_under(s, "Local", "● active", "sandbox-2", "svc/echo") == local,
        "the group's forwards restored and active",
    )
    assert echo_roundtrip(port, b"restored") == b"restored"
    tmux.keys("two", "q")
    tmux.wait_for("two", lambda s: f"{EXIT_MARK}0" in s, "a clean exit")
