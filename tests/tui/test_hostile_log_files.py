"""Hardening (issue 8, items 2 and 3): the dashboard's log file and crash report.

`portfwd.log` was created 0644 (other users could read the API messages and paths it quotes);
it is 0600 now, and one an older portfwd left 0644 is tightened. Log lines and crash reports
quote text from outside: control characters are escaped, so neither `cat portfwd.log` nor the
crash line on stderr can drive the terminal, and one record stays one line.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path

import pytest

from portfwd.tui.run import guarded, report_crash

HOSTILE = 'pods "x" is forbidden: \x1b]52;c;aGVsbG8=\x07\x1b[2J\nFAKE 00:00 ERROR injected'


@pytest.fixture
def umask_022() -> object:
    old = os.umask(0o022)
    try:
        yield None
    finally:
        os.umask(old)


def _log_a_warning(log_dir: Path, message: str) -> None:
    async def main() -> int:
        logging.getLogger("portfwd.test").warning("%s", message)
        return 0

    assert guarded(log_dir, main) == 0


def test_the_log_file_is_created_private(tmp_path: Path, umask_022: object) -> None:
    _log_a_warning(tmp_path, "hello")
    log = tmp_path / "portfwd.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert "hello" in log.read_text()


def test_a_log_file_left_world_readable_is_tightened(tmp_path: Path, umask_022: object) -> None:
    log = tmp_path / "portfwd.log"
    log.write_text("old line\n")
    log.chmod(0o644)
    _log_a_warning(tmp_path, "hello")
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert log.read_text().startswith("old line\n")


def test_a_log_record_is_one_line_without_control_characters(tmp_path: Path) -> None:
    _log_a_warning(tmp_path, HOSTILE)
    data = (tmp_path / "portfwd.log").read_bytes()
    assert b"\x1b" not in data and b"\x07" not in data
    (line,) = data.decode().splitlines()  # the forged "FAKE ... ERROR" line stays inside it
    assert line.endswith(
        'pods "x" is forbidden: \\x1b]52;c;aGVsbG8=\\x07\\x1b[2J\\nFAKE 00:00 ERROR injected'
    )


def test_a_crash_report_quoting_hostile_text_is_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    details = f"Traceback (most recent call last):\n  ...\nRuntimeError: {HOSTILE}\n"
    assert report_crash(tmp_path, details) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert err.startswith("portfwd stopped after an unexpected error: FAKE 00:00 ERROR injected")
    found = re.search(r"the full report is in (\S+) ", err)
    assert found
    report = Path(found.group(1)).read_text()
    assert "\x1b" not in report and "\x07" not in report
    assert 'RuntimeError: pods "x" is forbidden: \\x1b]52;c;aGVsbG8=\\x07\\x1b[2J' in report
