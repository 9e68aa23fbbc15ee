"""bench/soak.py in a tiny mode: every protocol, concurrent echo clients, a pod deletion; the
bench runs to its report, and without a fault nothing is lost."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import soak  # a bench script, not a package

pytestmark = pytest.mark.timeout(180)


def _args(*extra: str) -> object:
    return soak.parser().parse_args(
        [
            *("--minutes", "0.15", "--forwards", "4", "--clients", "2"),
            *("--max-size", "300000", "--mode", "inprocess", "--sample", "2"),
            *("--settle", "0", "--quiet", *extra),
        ]
    )


async def test_a_tiny_soak_loses_nothing_on_any_protocol(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = _args()
    report = await soak.soak(args)  # type: ignore[arg-type]
    soak.print_report(report, args)  # type: ignore[arg-type]
    total = report.total
    assert set(report.per_protocol) == {"auto", "spdy", "websocket", "v4"}
    assert total.transfers > 0 and total.intact == total.transfers, total.failures
    assert len(report.samples) >= 2
    out = capsys.readouterr().out
    assert "after their pod answered and was deleted: 0" in out
    assert "RSS parts: anonymous " in out and "files (code and data of libraries)" in out, out


async def test_a_tiny_soak_with_pod_deletions_excuses_only_what_a_deletion_cut() -> None:
    args = _args("--delete-every", "3", "--protocols", "auto,spdy")
    report = await soak.soak(args)  # type: ignore[arg-type]
    assert report.deletions >= 1
    assert report.total.unexplained == 0, report.total.failures
