"""`portfwd ls` draws its tables from the daemon's records (no engine model): each cell words
a forward exactly as the dashboard's presentation does from the snapshot."""

from __future__ import annotations

import pytest

from portfwd.cli.listing import local_side_of, remote_side_of, table, uptime_of
from portfwd.engine import present
from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState
from portfwd.engine.serial import snapshot_to_dict

SNAPSHOTS = [
    ForwardSnapshot("a", ForwardSpec(target="svc/echo", remote_port=80), ForwardState.STOPPED),
    ForwardSnapshot(
        "b",
        ForwardSpec(target="svc/web", remote_port="http", local_port=8080),
        ForwardState.ACTIVE,
        remote_port=9000,
        bound=(("127.0.0.1", 8080), ("::1", 8080)),
        started_at=1000.0,
    ),
    ForwardSnapshot(
        "c",
        ForwardSpec(target="pod/x", remote_port=5432, addresses=("0.0.0.0", "::")),
        ForwardState.RECONNECTING,
        remote_port=5432,
        bound=(("0.0.0.0", 15432), ("::", 15432)),
        started_at=900.0,
    ),
    ForwardSnapshot(
        "d",
        ForwardSpec(target="svc/db", remote_port=5432, local_port=0, addresses=("::1",)),
        ForwardState.ERROR,
        reason="x" * 100,
    ),
]


@pytest.mark.parametrize("snap", SNAPSHOTS, ids=lambda s: s.id)
def test_each_cell_reads_as_the_dashboard_words_it(snap: ForwardSnapshot) -> None:
    data = snapshot_to_dict(snap)
    assert local_side_of(data) == present.local_side(snap)
    assert remote_side_of(data) == present.remote_compact(snap)
    for now in (1000.0, 1061.0, 90000.0):
        assert uptime_of(data, now) == present.uptime(snap, now)


def test_the_wide_table_shows_every_forward() -> None:
    text = table(SNAPSHOTS, wide=True, now=1100.0)
    header, *rows = text.splitlines()
    assert header.split()[:7] == ["NAME", "STATUS", "CONTEXT", "NAMESPACE", "TARGET", "ID", "POD"]
    assert [r.split()[0] for r in rows] == ["a", "b", "c", "d"]
    assert "localhost:8080->http→9000" in rows[1] and "1m" in rows[1]
    assert rows[3].endswith("x" * 59 + "…")
