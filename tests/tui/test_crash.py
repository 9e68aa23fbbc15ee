"""An unexpected exception: the app exits, and the traceback lands in a 0600 file whose path is
printed (the terminal itself is restored by Textual on exit; the tmux test covers a real one)."""

from __future__ import annotations

import re
import stat
from datetime import UTC
from pathlib import Path

import pytest

from portfwd.tui.app import PortfwdApp
from portfwd.tui.run import guarded, report_crash
from tests.tui.fakes import NOW, FakeCatalog, FakeManager, mixed_snapshots
from tests.tui.helpers import settle

pytestmark = pytest.mark.timeout(60)


def printed_report(err: str) -> Path:
    found = re.search(r"the full report is in (\S+) ", err)
    assert found, err
    return Path(found.group(1))


async def test_a_crash_in_a_key_handler_is_kept_and_written_to_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = PortfwdApp(
        FakeManager(mixed_snapshots()), catalog=FakeCatalog(), clock=lambda: NOW, tz=UTC
    )

    def boom() -> None:
        raise RuntimeError("boom in a handler")

    with pytest.raises(RuntimeError, match="boom in a handler"):
        async with app.run_test(size=(120, 30)) as pilot:
            await settle(pilot)
            app.dashboard.action_edit = boom  # type: ignore[method-assign]
            await pilot.press("e")
            await pilot.pause()
    assert app.return_code == 1
    assert app.crash is not None and "RuntimeError: boom in a handler" in app.crash
    capsys.readouterr()
    assert report_crash(tmp_path, app.crash) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "portfwd stopped after an unexpected error: RuntimeError: boom in a handler\n"
    )
    report = printed_report(err)
    assert report.parent == tmp_path and report.read_text() == app.crash
    assert stat.S_IMODE(report.stat().st_mode) == 0o600


def test_a_crash_outside_the_app_is_reported_the_same_way(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def main() -> int:
        raise KeyError("no such thing")

    assert guarded(tmp_path, main) == 1
    err = capsys.readouterr().err
    assert "portfwd stopped after an unexpected error: KeyError: 'no such thing'" in err
    assert "KeyError: 'no such thing'" in printed_report(err).read_text()
