"""Shell text split into simple commands, the way `sh` splits it (what pasted lines need).

Enough of POSIX shell for pasted and scripted port-forwards: words with single quotes, double
quotes and backslashes; `\\` + newline joins lines; `#` comments; commands separated by
newlines, `;`, `&`, `&&`, `||` and `|` (a command that reads a pipe is marked `piped`);
redirections (`> log`, `2>&1`, `&>/dev/null`) removed with their target, here-document
bodies (`<<EOF ... EOF`) passed over as the data they are. Nothing is expanded:
a word holding `$` or a backquote outside single quotes is marked, so the caller can refuse it
rather than import a literal `$NS`. An unterminated quote ends the text with an error on the
command it started in. Pure; no shell is run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_BLANKS = " \t"
_OPERATOR_CHARS = ";&|"
_REDIRECT_CHARS = "<>"
# A run of characters that mean nothing special inside a word (no newline among them).
_PLAIN = re.compile(r"[^ \t\n'\"\\;&|<>]+")


@dataclass(frozen=True)
class Word:
    text: str
    expands: bool = False  # holds an unquoted or double-quoted `$` or backquote


@dataclass
class Command:
    words: list[Word] = field(default_factory=list)
    line: int = 0  # 1-based line of the command's first character
    start: int = 0  # offsets of the command's text in the input
    end: int = 0
    piped: bool = False  # its input is another command's output (`a | b`: b)
    error: str = ""  # set when the text could not be split (unterminated quote)


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.line = 1
        self.commands: list[Command] = []
        self.current = Command(line=1)
        self.buf: list[str] = []
        self.in_word = False
        self.expands = False
        self.next_piped = False
        self.heredocs: list[tuple[str, bool]] = []  # (delimiter, strip tabs) awaiting a newline

    # -- words and commands ------------------------------------------------------------
    def _start_word(self) -> None:
        if not self.in_word:
            self.in_word = True
            if not self.current.words:
                self.current.line = self.line
                self.current.start = self.i

    def _end_word(self) -> None:
        if self.in_word:
            self.current.words.append(Word("".join(self.buf), self.expands))
        self.buf, self.in_word, self.expands = [], False, False

    def _end_command(self, piped_next: bool = False) -> None:
        self._end_word()
        if self.current.words or self.current.error:
            self.current.end = self.i
            self.current.piped = self.next_piped
            self.commands.append(self.current)
        self.current = Command(line=self.line)
        self.next_piped = piped_next

    # -- pieces ----------------------------------------------------------------------------
    def _peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.text[j] if j < len(self.text) else ""

    def _advance(self) -> str:
        ch = self.text[self.i]
        self.i += 1
        if ch == "\n":
            self.line += 1
        return ch

    def _single_quoted(self) -> bool:
        self._advance()  # the opening quote
        while self.i < len(self.text):
            ch = self._advance()
            if ch == "'":
                return True
            self.buf.append(ch)
        return False

    def _double_quoted(self) -> bool:
        self._advance()
        while self.i < len(self.text):
            ch = self._advance()
            if ch == '"':
                return True
            if ch == "\\" and self._peek() in ('"', "\\", "$", "`", "\n"):
                escaped = self._advance()
                if escaped != "\n":
                    self.buf.append(escaped)
                continue
            if ch in "$`":
                self.expands = True
            self.buf.append(ch)
        return False

    def _redirection(self) -> None:
        """At `<` or `>` (an fd number may be in the word buffer): drop operator and target."""
        if self.in_word and all(c.isdigit() for c in self.buf):
            self.buf, self.in_word = [], False  # `2>`: the fd is not a word
        else:
            self._end_word()
        op = ""
        while self._peek() in ("<", ">", "&", "|", "-") and not (op and self._peek() == "-"):
            op += self._advance()
            if op.startswith("<<") and self._peek() == "-":  # <<- strips leading tabs
                op += self._advance()
        while self._peek() in tuple(_BLANKS):
            self._advance()
        # the target: one word (quotes allowed), e.g. /dev/null, &1, "my log", 'EOF'
        target: list[str] = []
        while self.i < len(self.text):
            ch = self._peek()
            if ch in _BLANKS or ch == "\n" or ch in _OPERATOR_CHARS:
                break
            if ch in "'\"":
                quote = self._advance()
                while self.i < len(self.text) and (inner := self._advance()) != quote:
                    target.append(inner)
                continue
            target.append(self._advance())
        if op in ("<<", "<<-") and target:  # a here-document: its lines are data, not commands
            self.heredocs.append(("".join(target), op == "<<-"))
        self.buf, self.in_word, self.expands = [], False, False

    def _skip_heredocs(self) -> None:
        """After the newline that ends a command with here-documents: skip their bodies."""
        for delimiter, strip_tabs in self.heredocs:
            while self.i < len(self.text):
                end = self.text.find("\n", self.i)
                end = len(self.text) if end < 0 else end
                line = self.text[self.i : end]
                self.i = min(end + 1, len(self.text))
                self.line += 1
                if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                    break
        self.heredocs = []

    def run(self) -> list[Command]:
        text = self.text
        while self.i < len(text):
            ch = self._peek()
            if ch == "\\":
                if self._peek(1) == "\n":  # a continuation: the lines are one
                    self._advance()
                    self._advance()
                    continue
                self._start_word()
                self._advance()
                if self.i < len(text):
                    self.buf.append(self._advance())
                continue
            if ch == "'" or ch == '"':
                self._start_word()
                quote_line = self.line
                done = self._single_quoted() if ch == "'" else self._double_quoted()
                if not done:
                    self.current.error = f"unterminated {ch} quote (opened on line {quote_line})"
                    self.i = len(text)
                    self._end_command()
                    return self.commands
                continue
            if ch == "#" and not self.in_word:
                while self.i < len(text) and self._peek() != "\n":
                    self._advance()
                continue
            if ch == "\n":
                self._end_command()
                self._advance()
                if self.heredocs:
                    self._skip_heredocs()
                self.current.line = self.line
                continue
            if ch in _BLANKS:
                self._end_word()
                self._advance()
                continue
            if ch in _REDIRECT_CHARS or (ch == "&" and self._peek(1) == ">"):
                self._redirection()
                continue
            if ch in _OPERATOR_CHARS:
                op = self._advance()
                if self._peek() in ("&", "|") and self._peek() != "" and op != ";":
                    op += self._advance()
                self._end_command(piped_next=op in ("|", "|&"))
                continue
            self._start_word()
            plain = _PLAIN.match(text, self.i)
            assert plain is not None  # `ch` itself is plain: every other case is above
            chunk = plain.group()
            if "$" in chunk or "`" in chunk:
                self.expands = True
            self.buf.append(chunk)
            self.i = plain.end()
        self._end_command()
        return self.commands


def split_commands(text: str) -> list[Command]:
    """The simple commands of `text` (CRLF line ends read as LF)."""
    return _Lexer(text.replace("\r\n", "\n")).run()
