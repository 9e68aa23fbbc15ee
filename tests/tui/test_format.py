"""How values read on screen."""

from __future__ import annotations

from dataclasses import replace

import pytest

from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState, ForwardStats
from portfwd.tui.format import (
    human_bytes,
    human_duration,
    local_compact,
    local_text,
    reconnect_text,
    remote_compact,
    remote_text,
    status_cell,
    url_for,
)


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (5 * 1024**2, "5.0 MiB"),
        (3 * 1024**4, "3.0 TiB"),
        (2048 * 1024**4, "2048.0 TiB"),
    ],
)
def test_human_bytes(n: int, text: str) -> None:
    assert human_bytes(n) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-3, "0s"),
        (59.9, "59s"),
        (60, "1m"),
        (3599, "59m"),
        (3600, "1h00m"),
        (86399, "23h59m"),
        (90000, "1d01h"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_remote_shows_asked_and_resolved_ports() -> None:
    spec = ForwardSpec(target="svc/echo", remote_port=80)
    snap = ForwardSnapshot(
        id="x",
        spec=spec,
        state=ForwardState.ACTIVE,
        remote_port=9000,
        port_name="echo",
        bound=(("::1", 8080), ("127.0.0.1", 8080)),
    )
    assert remote_text(snap) == "80 → 9000 (echo)"
    assert local_text(snap) == "localhost:8080"  # both loopback addresses: what it means
    assert local_compact(snap) == "8080"
    assert remote_compact(snap) == "80→9000"
    public = replace(snap, bound=(("0.0.0.0", 8080), ("127.0.0.1", 8080)))
    assert local_text(public) == local_compact(public) == "0.0.0.0:8080, 127.0.0.1:8080"
    named = ForwardSnapshot(
        id="y",
        spec=ForwardSpec(target="svc/web", remote_port="http"),
        state=ForwardState.ACTIVE,
        remote_port=8080,
        port_name="http",
    )
    assert remote_text(named) == "8080 (http)"
    unresolved = ForwardSnapshot(id="z", spec=spec, state=ForwardState.STOPPED)
    assert remote_text(unresolved) == "80" and local_text(unresolved) == "127.0.0.1:auto"


def _retrying(**kw: object) -> ForwardSnapshot:
    base = ForwardSnapshot(
        id="r", spec=ForwardSpec(target="svc/web", remote_port=80), state=ForwardState.RECONNECTING
    )
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("snap", "text"),
    [
        (_retrying(attempt=3, next_retry_at=1000.2), "↻ reconnecting #3 · 1s"),
        (_retrying(attempt=3, next_retry_at=1004.0), "↻ reconnecting #3 · 4s"),
        (_retrying(attempt=1, next_retry_at=990.0), "↻ reconnecting #1 · 0s"),  # overdue
        (_retrying(attempt=0, next_retry_at=1002.5), "↻ reconnecting · 3s"),
        (_retrying(attempt=2), "↻ reconnecting #2"),  # waiting for a Ready pod: no timer
        (_retrying(), "↻ reconnecting"),
        (_retrying(attempt=5, next_retry_at=1090.0), "↻ reconnecting #5 · 1m"),
        (
            _retrying(spec=ForwardSpec(target="svc/web", remote_port=80, reconnect=False)),
            "↻ reconnecting ⊘",
        ),
        (
            replace(_retrying(), state=ForwardState.ACTIVE, next_retry_at=1004.0),
            "● active",
        ),
    ],
)
def test_status_cell_counts_down_to_the_next_retry(snap: ForwardSnapshot, text: str) -> None:
    assert status_cell(snap, now=1000.0).plain == text


def test_reconnect_text_names_the_count_and_a_disabled_reconnect() -> None:
    snap = _retrying()
    assert reconnect_text(snap) == ""
    assert reconnect_text(replace(snap, stats=ForwardStats(reconnects=1))) == "1 reconnect"
    off = replace(
        snap,
        spec=replace(snap.spec, reconnect=False),
        stats=ForwardStats(reconnects=2),
    )
    assert reconnect_text(off) == "2 reconnects · ⊘ auto-reconnect off"


def test_a_port_named_https_or_numbered_443_or_8443_opens_as_https() -> None:
    def snap(remote: int | str, resolved: int = 0, name: str = "") -> ForwardSnapshot:
        return ForwardSnapshot(
            id="x",
            spec=ForwardSpec(target="svc/api", remote_port=remote),
            state=ForwardState.ACTIVE,
            remote_port=resolved,
            port_name=name,
            bound=(("127.0.0.1", 9443),),
        )

    assert url_for(snap(443, 8443, "https")) == "https://localhost:9443"
    assert url_for(snap("https", 9000, "https")) == "https://localhost:9443"
    assert url_for(snap(8443, 8443)) == "https://localhost:9443"
    assert url_for(snap(80, 8080, "http")) == "http://localhost:9443"
