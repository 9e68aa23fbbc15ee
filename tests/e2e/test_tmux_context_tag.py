"""At 80x24, two `svc/echo` forwards of two clusters read apart in a real terminal (issue 18
section 4): the context column shows each one's context whole, and the target is not cut."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import yaml

from .test_tmux import EXIT_MARK, Tmux, cell_under, row_with, tmux  # noqa: F401


def test_the_context_tag_tells_two_echo_rows_apart_at_80x24(
    tmux: Tmux,  # noqa: F811
    tmp_path: Path,
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    forwards = [
        {
            "id": f"tag{n}",
            "target": "svc/echo",
            "remote_port": 80,
            "local_port": 0,  # the kernel picks: no port chosen then taken by another test
            "addresses": ["127.0.0.1"],
            "running": True,
            "namespace": "demo",
            "context": context,
        }
        for n, context in enumerate(("sandbox", "sandbox-2"))
    ]
    (config / "state.yaml").write_text(yaml.safe_dump({"version": 1, "forwards": forwards}))
    command = " ".join(
        [
            "env -u COLUMNS -u LINES",
            f"PORTFWD_CONFIG_DIR={shlex.quote(str(config))}",
            shlex.quote(sys.executable),
            "-m portfwd demo",
        ]
    )
    tmux.start("tag", command, (80, 24))
    screen = tmux.wait_for(
        "tag",
        lambda s: (
            row_with(s, "● active", " sandbox ", " svc/echo ") is not None
            and row_with(s, "● active", " sandbox-2 ", " svc/echo ") is not None
        ),
        "both svc/echo rows active, each with its context",
    )
    assert cell_under(screen, "Context", "● active", " sandbox-2 ") == "sandbox-2"
    tmux.keys("tag", "q")
    tmux.wait_for("tag", lambda s: f"{EXIT_MARK}0" in s, "a clean exit")
