"""portfwd.safetext: the one escaping of text from outside (issue 8, item 2)."""

from __future__ import annotations

import logging
import sys
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from portfwd.safetext import EscapingFormatter, escape_controls, escape_lines

UNSAFE = {"Cc", "Cf", "Zl", "Zp", "Cs"}


def test_the_escapes_are_readable() -> None:
    assert escape_controls("a\x1b]52;c;SGk=\x07b") == "a\\x1b]52;c;SGk=\\x07b"
    assert escape_controls("line\nnext\r\ttab") == "line\\nnext\\r\\ttab"
    assert escape_controls("\x9b31m") == "\\x9b31m"  # C1 CSI, one byte in 8-bit terminals
    assert escape_controls("abc\u202edef\u200b") == "abc\\u202edef\\u200b"  # bidi, zero-width
    assert escape_controls("tag\U000e0041") == "tag\\U000e0041"
    assert escape_controls("naïve 名前 [red]x \u00a0") == "naïve 名前 [red]x \u00a0"
    assert escape_controls("a\\x1b") == "a\\x1b"  # backslashes stay: idempotent


@given(st.text())
def test_nothing_unsafe_is_left_and_escaping_twice_changes_nothing(text: str) -> None:
    once = escape_controls(text)
    assert not [c for c in once if unicodedata.category(c) in UNSAFE]
    assert escape_controls(once) == once


@given(st.text().filter(lambda t: all(unicodedata.category(c) not in UNSAFE for c in t)))
def test_safe_text_is_unchanged(text: str) -> None:
    assert escape_controls(text) == text


@given(st.lists(st.text(), max_size=5))
def test_escape_lines_keeps_only_the_newlines(lines: list[str]) -> None:
    text = "\n".join(lines)
    assert escape_lines(text).split("\n") == [escape_controls(line) for line in text.split("\n")]


def test_a_log_record_stays_one_line_and_its_traceback_keeps_its_lines() -> None:
    formatter = EscapingFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("t", logging.WARNING, __file__, 1, "said %s", ("a\nFAKE\x1b",), None)
    assert formatter.format(record) == "WARNING said a\\nFAKE\\x1b"
    try:
        raise RuntimeError("boom\x1b[2J")
    except RuntimeError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "x", (), sys.exc_info())
    text = formatter.format(record)
    assert "\x1b" not in text and "RuntimeError: boom\\x1b[2J" in text
    assert text.count("\n") >= 3  # the traceback's own lines
