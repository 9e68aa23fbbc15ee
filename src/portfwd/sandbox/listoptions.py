"""The API server's reading of a list or watch request's query (metav1.ListOptions).

A real API server converts the query with apimachinery's generated conversion
(`Convert_url_Values_To_v1_ListOptions`, using `runtime.Convert_Slice_string_To_*`), field by
field in the struct's order, and answers the first failure with 400 BadRequest and Go's own
error text (`errors.NewBadRequest(err.Error())`):

- `timeoutSeconds`, then `limit`: `strconv.ParseInt(value, 10, 64)`, so `limit=abc` is
  `strconv.ParseInt: parsing "abc": invalid syntax`, `timeoutSeconds=1e309` too, and an empty
  `limit=` as well (a value that overflows int64: `... value out of range`);
- `watch`, `allowWatchBookmarks`, `sendInitialEvents` never fail: only `0` and `false` (any
  case) are false; anything else, `maybe` and the empty string included, is true;
- `resourceVersion` is a string here; a list checks it later, in the storage layer
  (`storage.ValidateListOptions`): `invalid resource version: resourceVersion: Invalid value:
  "abc": strconv.ParseUint: parsing "abc": invalid syntax`; a watch's is parsed by the watch
  cache, whose failure is a 500 without a reason (`resourceVersion: Invalid value: ...`).

Only the first value of a repeated parameter counts, as in Go.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from portfwd.sandbox.portforward import _go_quote  # strconv.Quote, shared with the kubelet side

__all__ = [
    "ListOptions",
    "go_bool",
    "list_resource_version_problem",
    "parse_list_options",
    "watch_resource_version_problem",
]

_INT64_MAX = (1 << 63) - 1
_UINT64_MAX = (1 << 64) - 1


@dataclass(frozen=True)
class ListOptions:
    watch: bool
    allow_bookmarks: bool
    send_initial_events: bool
    timeout_seconds: int | None  # None: not given
    limit: int  # 0 or negative: no limit


def go_bool(value: str | None) -> bool:
    """Convert_Slice_string_To_bool: absent, "0" and "false" (any case) are false."""
    return value is not None and value != "0" and value.lower() != "false"


def _parse_uint(text: str, func: str, quoted: str) -> int | str:
    """strconv.ParseUint(text, 10, 64)'s digits loop: the value, or the error text. An
    overflow is reported where it happens, before a bad character further on (as Go does)."""
    if not text:
        return f"strconv.{func}: parsing {quoted}: invalid syntax"
    value = 0
    for ch in text:
        if not "0" <= ch <= "9":
            return f"strconv.{func}: parsing {quoted}: invalid syntax"
        value = value * 10 + (ord(ch) - 48)
        if value > _UINT64_MAX:
            return f"strconv.{func}: parsing {quoted}: value out of range"
    return value


def parse_int64(text: str) -> int | str:
    """strconv.ParseInt(text, 10, 64): the value, or Go's error text."""
    quoted = _go_quote(text)
    negative = text.startswith("-")
    digits = text[1:] if text[:1] in ("+", "-") else text
    value = _parse_uint(digits, "ParseInt", quoted)
    if isinstance(value, str):
        return value
    if value > (_INT64_MAX + 1 if negative else _INT64_MAX):
        return f"strconv.ParseInt: parsing {quoted}: value out of range"
    return -value if negative else value


def parse_list_options(query: Mapping[str, str]) -> ListOptions | str:
    """The options, or the 400 message a real API server gives for the first bad one."""
    numbers: dict[str, int | None] = {}
    for key in ("timeoutSeconds", "limit"):  # ListOptions' field order
        raw = query.get(key)
        parsed = parse_int64(raw) if raw is not None else None
        if isinstance(parsed, str):
            return parsed
        numbers[key] = parsed
    return ListOptions(
        watch=go_bool(query.get("watch")),
        allow_bookmarks=go_bool(query.get("allowWatchBookmarks")),
        send_initial_events=go_bool(query.get("sendInitialEvents")),
        timeout_seconds=numbers["timeoutSeconds"],
        limit=numbers["limit"] or 0,
    )


def watch_resource_version_problem(value: str) -> str | None:
    """A watch's resourceVersion as the watch cache parses it: the (500) message, or None."""
    parsed = _parse_uint(value, "ParseUint", _go_quote(value))
    if isinstance(parsed, str):
        return f"resourceVersion: Invalid value: {_go_quote(value)}: {parsed}"
    return None


def list_resource_version_problem(value: str | None) -> str | None:
    """A list's resourceVersion as the storage layer parses it: the 400 message, or None."""
    if value is None or value in ("", "0"):
        return None
    problem = watch_resource_version_problem(value)
    return None if problem is None else f"invalid resource version: {problem}"
