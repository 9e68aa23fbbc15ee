"""Label selectors read as apimachinery's `labels.Parse` reads them: its lexer, its grammar,
its error texts (a client that sends `a===b` gets the real server's 400, not a PodList).

The lexer scans identifiers and keywords (anything up to whitespace or one of `=!(),<>`) and
operators (the longest run of those symbols that is a known token); the parser is the
recursive descent of `pkg/labels/selector.go`:

    <selector>    ::= <requirement> | <requirement> "," <selector>
    <requirement> ::= [!] KEY [ <set> | <exact> ]
    <set>         ::= ("in" | "notin") "(" VALUES ")"
    <exact>       ::= ("=" | "==" | "!=" | ">" | "<") VALUE
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from enum import Enum, auto


class SelectorError(ValueError):
    """A selector the API server would reject with 400 BadRequest."""


Predicate = Callable[[Mapping[str, str]], bool]


class Tok(Enum):
    ERROR = auto()
    END = auto()
    CLOSE = auto()
    COMMA = auto()
    NOT = auto()
    DOUBLE_EQUALS = auto()
    EQUALS = auto()
    GREATER = auto()
    IDENT = auto()
    IN = auto()
    LESS = auto()
    NOT_EQUALS = auto()
    NOT_IN = auto()
    OPEN = auto()


_TOKENS = {
    ")": Tok.CLOSE,
    ",": Tok.COMMA,
    "!": Tok.NOT,
    "==": Tok.DOUBLE_EQUALS,
    "=": Tok.EQUALS,
    ">": Tok.GREATER,
    "in": Tok.IN,
    "<": Tok.LESS,
    "!=": Tok.NOT_EQUALS,
    "notin": Tok.NOT_IN,
    "(": Tok.OPEN,
}
_SPECIAL = frozenset("=!(),><")
_SPACE = frozenset(" \t\r\n")
# Go's binaryOperators, in its order (selection.GreaterThan is "gt", LessThan "lt").
_BINARY = "in, notin, =, ==, !=, gt, lt"
_KEY_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_KEY_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _lex(text: str) -> list[tuple[Tok, str]]:
    items: list[tuple[Tok, str]] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in _SPACE:
            pos += 1
        if pos >= end:
            items.append((Tok.END, ""))
            return items
        if text[pos] in _SPECIAL:
            # The longest run of symbols that is a token; one symbol more that is not ends it.
            buffer, last, last_lit = "", None, ""
            while pos < end and text[pos] in _SPECIAL:
                buffer += text[pos]
                tok = _TOKENS.get(buffer)
                if tok is not None:
                    last, last_lit = tok, buffer
                elif last is not None:
                    break
                pos += 1
            if last is None:
                items.append((Tok.ERROR, f"error expected: keyword found '{buffer}'"))
            else:
                items.append((last, last_lit))
            continue
        start = pos
        while pos < end and text[pos] not in _SPECIAL and text[pos] not in _SPACE:
            pos += 1
        word = text[start:pos]
        items.append((_TOKENS.get(word, Tok.IDENT), word))


class _Parser:
    def __init__(self, text: str) -> None:
        self._items = _lex(text)
        self._at = 0

    def _peek(self, values: bool = True) -> tuple[Tok, str]:
        return self._as(self._items[self._at], values)

    def _take(self, values: bool = True) -> tuple[Tok, str]:
        item = self._items[self._at]
        self._at += 1
        return self._as(item, values)

    @staticmethod
    def _as(item: tuple[Tok, str], values: bool) -> tuple[Tok, str]:
        # Among values, the keywords in and notin are plain words ("x in (in)").
        if values and item[0] in (Tok.IN, Tok.NOT_IN):
            return Tok.IDENT, item[1]
        return item

    def parse(self) -> list[Predicate]:
        preds: list[Predicate] = []
        while True:
            tok, lit = self._peek()
            if tok in (Tok.IDENT, Tok.NOT):
                try:
                    preds.append(self._requirement())
                except SelectorError as exc:
                    raise SelectorError(f"unable to parse requirement: {exc}") from None
                tok, lit = self._take()
                if tok is Tok.END:
                    return preds
                if tok is not Tok.COMMA:
                    raise SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
                tok2, lit2 = self._peek()
                if tok2 not in (Tok.IDENT, Tok.NOT):
                    raise SelectorError(f"found '{lit2}', expected: identifier after ','")
            elif tok is Tok.END:
                return preds
            else:
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def _requirement(self) -> Predicate:
        negated = False
        tok, key = self._take()
        if tok is Tok.NOT:
            negated = True
            tok, key = self._take()
        if tok is not Tok.IDENT:
            raise SelectorError(f"found '{key}', expected: identifier")
        _check_key(key)
        if self._peek()[0] in (Tok.END, Tok.COMMA):
            if negated:
                return lambda labels: key not in labels
            return lambda labels: key in labels
        tok, lit = self._take(values=False)
        if tok in (Tok.IN, Tok.NOT_IN):
            values = self._set_values()
        elif tok in (Tok.EQUALS, Tok.DOUBLE_EQUALS, Tok.NOT_EQUALS, Tok.GREATER, Tok.LESS):
            values = {self._exact_value()}
        else:
            raise SelectorError(f"found '{lit}', expected: {_BINARY}")
        for value in values:
            _check_value(value)
        if tok in (Tok.GREATER, Tok.LESS):
            return _compare(key, values, greater=tok is Tok.GREATER)
        if tok in (Tok.NOT_IN, Tok.NOT_EQUALS):
            return lambda labels: labels.get(key) not in values
        return lambda labels: key in labels and labels[key] in values

    def _exact_value(self) -> str:
        if self._peek()[0] in (Tok.END, Tok.COMMA):
            return ""
        tok, lit = self._take()
        if tok is Tok.IDENT:
            return lit
        raise SelectorError(f"found '{lit}', expected: identifier")

    def _set_values(self) -> set[str]:
        tok, lit = self._take()
        if tok is not Tok.OPEN:
            raise SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self._peek()
        if tok is Tok.CLOSE:
            self._take()
            return {""}
        if tok not in (Tok.IDENT, Tok.COMMA):
            raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")
        values = self._identifiers()
        if self._take()[0] is not Tok.CLOSE:
            raise SelectorError(f"found '{lit}', expected: ')'")
        return values

    def _identifiers(self) -> set[str]:
        values: set[str] = set()
        while True:
            tok, lit = self._take()
            if tok is Tok.IDENT:
                values.add(lit)
                tok2, lit2 = self._peek()
                if tok2 is Tok.COMMA:
                    continue
                if tok2 is Tok.CLOSE:
                    return values
                raise SelectorError(f"found '{lit2}', expected: ',' or ')'")
            if tok is Tok.COMMA:
                if not values:
                    values.add("")
                tok2 = self._peek()[0]
                if tok2 is Tok.CLOSE:
                    values.add("")
                    return values
                if tok2 is Tok.COMMA:
                    self._take()
                    values.add("")
                continue
            raise SelectorError(f"found '{lit}', expected: ',', or identifier")


def _check_key(key: str) -> None:
    prefix, slash, name = key.rpartition("/")
    ok = bool(_KEY_NAME.match(name)) and (
        not slash or (0 < len(prefix) <= 253 and bool(_KEY_PREFIX.match(prefix)))
    )
    if not ok:
        raise SelectorError(f'Invalid value: "{key}": not a qualified name')


def _check_value(value: str) -> None:
    if len(value) > 63 or not _VALUE.match(value):
        raise SelectorError(f'Invalid value: "{value}": not a valid label value')


def _compare(key: str, values: set[str], *, greater: bool) -> Predicate:
    (text,) = values if len(values) == 1 else ("",)
    try:
        bound = int(text)
    except ValueError:
        raise SelectorError(
            f"Invalid value: \"{text}\": for 'Gt', 'Lt' operators, the value must be an integer"
        ) from None

    def pred(labels: Mapping[str, str]) -> bool:
        try:
            have = int(labels[key])
        except (KeyError, ValueError):
            return False
        return have > bound if greater else have < bound

    return pred


def parse_label_selector(text: str | None) -> Predicate:
    """A predicate over labels; an empty or missing selector matches everything."""
    if not text:
        return lambda labels: True
    preds = _Parser(text).parse()
    return lambda labels: all(p(labels) for p in preds)
