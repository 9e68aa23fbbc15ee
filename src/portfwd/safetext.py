"""Text from outside, made safe to show: control characters escaped, readable.

Everything portfwd shows that it did not write itself (API Status messages, object names,
error-channel text, kubeconfig and session-file values, plugin output) may hold terminal
control sequences: `ESC ] 52 ; c ; ... BEL` sets the clipboard, `ESC [ 2 J` clears the screen,
a newline forges a log line. Before such text reaches a terminal, a log file or a
notification, :func:`escape_controls` replaces every control character with a visible escape
in Python's notation:

- `\\n`, `\\r`, `\\t` for newline, carriage return and tab (a one-line message stays one line);
- `\\xHH` for the other C0 and C1 controls and DEL (ESC shows as `\\x1b`, BEL as `\\x07`);
- `\\uHHHH` / `\\UHHHHHHHH` for invisible format characters (bidi overrides, zero-width
  characters, line and paragraph separators, lone surrogates).

Backslashes are left alone, so the escaping is idempotent: text escaped twice reads the same as
text escaped once, and every layer may escape without thinking about the others. (The price:
a literal `\\x1b` typed by someone reads like an escaped ESC; both are harmless.)

Pure functions; the one logging helper, :class:`EscapingFormatter`, formats log records so a
log file never holds raw control characters either.
"""

from __future__ import annotations

import functools
import unicodedata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging

__all__ = ["escape_controls", "escape_lines"]  # and EscapingFormatter, built on first use

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Unicode categories shown as escapes: controls, format characters (bidi overrides, zero-width
# joiners), line/paragraph separators and surrogates. Spaces, private-use and unassigned code
# points print as themselves (they cannot steer a terminal).
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _escape_char(ch: str) -> str:
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape_controls(text: str) -> str:
    """`text` with every control and invisible format character shown as an escape."""
    if text.isprintable():  # the common case, at C speed
        return text
    return "".join(
        _escape_char(ch) if ch != " " and unicodedata.category(ch) in _ESCAPED_CATEGORIES else ch
        for ch in text
    )


def escape_lines(text: str) -> str:
    """Like :func:`escape_controls`, but newlines stay: for multi-line reports (tracebacks)."""
    return "\n".join(escape_controls(line) for line in text.split("\n"))


@functools.cache
def _escaping_formatter() -> type[logging.Formatter]:
    """The formatter class, built on first use: `logging` is not imported by every command
    that escapes text (`portfwd ls` starts faster without it)."""
    import logging

    class EscapingFormatter(logging.Formatter):
        """A log line per record, whatever the message holds; tracebacks keep their lines."""

        def formatMessage(self, record: logging.LogRecord) -> str:
            record.message = escape_controls(record.message)
            return super().formatMessage(record)

        def formatException(self, ei: logging._SysExcInfoType) -> str:
            return escape_lines(super().formatException(ei))

        def formatStack(self, stack_info: str) -> str:
            return escape_lines(super().formatStack(stack_info))

    return EscapingFormatter


def __getattr__(name: str) -> Any:
    """`EscapingFormatter`, a `logging.Formatter` that escapes every line (PEP 562)."""
    if name == "EscapingFormatter":
        return _escaping_formatter()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
