"""The README's screenshot is the dashboard as the snapshot tests see it today."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = ROOT / "tests/tui/__snapshots__/test_snapshots/test_dashboard_at_every_size[120x40].svg"


def test_readme_screenshot_is_the_current_dashboard_snapshot() -> None:
    shown = ROOT / "docs" / "dashboard.svg"
    assert "docs/dashboard.svg" in (ROOT / "README.md").read_text()
    assert shown.read_bytes() == SNAPSHOT.read_bytes(), (
        "the dashboard changed: copy its 120x40 snapshot to docs/dashboard.svg"
    )
