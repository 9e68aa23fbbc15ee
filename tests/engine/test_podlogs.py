"""The pod-log tail's parts without a cluster: lines cut from bytes however they arrive (and
bounded), what a reader that falls behind is told it missed, and the page's wire form."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState
from portfwd.engine.podlogs import MAX_LINES, PodLogPage, PodLogTail
from portfwd.kube.logs import MAX_LINE, LineSplitter

TEXT = b"one\ntwo\r\n\xff bad utf-8\n\x1b[2Jclear\nlast without newline"


def split(data: bytes, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    splitter, out, last = LineSplitter(), [], 0
    for p in [*points, len(data)]:
        out += splitter.feed(data[last:p])
        last = p
    rest = splitter.finish()
    return out + ([rest] if rest is not None else [])


@given(st.lists(st.integers(0, 200), max_size=8))
def test_lines_are_the_same_however_the_bytes_arrive(cuts: list[int]) -> None:
    assert split(TEXT, cuts) == [
        "one",
        "two",
        "\ufffd bad utf-8",
        "\\x1b[2Jclear",
        "last without newline",
    ]


def test_a_line_without_end_is_cut_and_memory_stays_bounded() -> None:
    splitter = LineSplitter()
    got: list[str] = []
    for _ in range(100):
        got += splitter.feed(b"x" * 10_000)  # a megabyte, no newline
    got += splitter.feed(b"tail\nnext\n")
    assert len(got) == 2
    assert len(got[0]) == MAX_LINE and got[0].endswith("…")
    assert got[1] == "next"  # the rest of the long line is passed over


def test_skipping_counts_lines_without_reading_them() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"a\nhalf") == ["a"]
    assert splitter.skip(b" of it\nb\nc\npartial") == 3
    assert splitter.feed(b" line\nfresh\n") == ["fresh"]


def test_the_page_round_trips_and_escapes_what_a_peer_sends() -> None:
    page = PodLogPage(("a", "b"), 7, "web-1", "web", ("web", "proxy"), 3, 2, "")
    assert PodLogPage.from_dict(page.to_dict()) == page
    hostile = PodLogPage.from_dict(
        {"lines": ["\x1b]0;x\x07", 5], "next": True, "pod": 3, "error": "\x1b[31m"}
    )
    assert hostile.lines == ("\\x1b]0;x\\x07",) and hostile.next == 0
    assert hostile.pod == "" and "\x1b" not in hostile.error
    assert PodLogPage.from_dict(None) == PodLogPage()


async def test_a_reader_that_falls_behind_is_told_how_many_lines_it_missed() -> None:
    snap = ForwardSnapshot(
        id="f", spec=ForwardSpec(target="svc/web", remote_port=80), state=ForwardState.ACTIVE
    )

    async def no_client(_: ForwardSnapshot) -> object:
        await asyncio.Event().wait()  # never: the lines are put in by hand below
        raise AssertionError

    tail = PodLogTail(lambda: snap, no_client)  # type: ignore[arg-type]
    try:
        for n in range(MAX_LINES + 500):
            tail._append(f"line {n}")
        first = tail.page(0, limit=10)
        assert first.lines[-1] == f"line {MAX_LINES + 499}" and len(first.lines) == 10
        assert first.skipped == 0  # a new reader starts at the latest lines
        for n in range(MAX_LINES + 500, MAX_LINES + 3500):
            tail._append(f"line {n}")
        behind = tail.page(first.next, limit=100)
        assert behind.skipped == 3000 - 100 and len(behind.lines) == 100
        assert tail.page(behind.next).lines == ()
        assert len(tail.lines) == MAX_LINES
    finally:
        await tail.close()
