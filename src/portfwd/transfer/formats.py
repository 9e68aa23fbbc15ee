"""Which importer reads a text, and reading it: `--format auto|kubectl|kftray|krelay|yaml`.

Auto-detection: a JSON array (or object) is kftray's export; a YAML list of forwards is
portfwd's own (what `portfwd import` prints); text holding a kubectl (or portfwd) command is
kubectl lines; anything else is a krelay targets file. When the choice is not clear-cut (a
script that also holds target-only lines, or text with no command at all), the reason is
returned so the caller can print it.
"""

from __future__ import annotations

import os
import re

from portfwd.transfer.export import from_yaml
from portfwd.transfer.kftray_json import parse_kftray_json
from portfwd.transfer.krelay import parse_krelay_targets
from portfwd.transfer.kubectl_lines import (
    KUBECTL_PROGRAMS,
    FlagTable,
    _strip_prefix,
    parse_kubectl_lines,
)
from portfwd.transfer.result import Imported, Names, Unreadable
from portfwd.transfer.shellwords import split_commands

FORMATS = ("auto", "kubectl", "kftray", "krelay", "yaml")
_PROGRAMS = KUBECTL_PROGRAMS | {"portfwd", "kubectl-portfwd", "kubectl-relay"}
_TARGET_LINE = re.compile(r"\s*(-n\s+\S+\s+|-l\s+\S+\s+)*[A-Za-z.]+/\S+\s+\S")
_YAML_LIST = re.compile(r"\s*-\s+(name|target|context|namespace):", re.MULTILINE)


def detect(text: str) -> tuple[str, str]:
    """(format, why) for `text`; `why` is '' when the choice is clear."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith(("[", "{")):
        return "kftray", ""
    if _YAML_LIST.match(stripped):
        return "yaml", ""
    lines = text.splitlines()
    command_lines: set[int] = set()
    for cmd in split_commands(text):
        words, _ = _strip_prefix([w.text for w in cmd.words])
        if words and os.path.basename(words[0]) in _PROGRAMS:
            command_lines.add(cmd.line)
    target_lines = [
        n
        for n, line in enumerate(lines, start=1)
        if _TARGET_LINE.match(line) and not line.lstrip().startswith(("#", "//"))
    ]
    if command_lines:
        others = [n for n in target_lines if n not in command_lines]
        if others:
            shown = ", ".join(str(n) for n in others[:5])
            return "kubectl", (
                f"read as kubectl command lines; line(s) {shown} look like krelay targets"
                " (use --format krelay to read those)"
            )
        return "kubectl", ""
    if target_lines:
        return "krelay", ""
    return "krelay", "no kubectl command found: read as krelay targets (TYPE/NAME PORT per line)"


def parse(
    text: str,
    fmt: str,
    source: str,
    names: Names | None = None,
    portfwd: FlagTable | None = None,
) -> Imported:
    """`text` read as `fmt` (not "auto"). Unreadable when the whole input cannot be read.
    `portfwd`: the flags of `portfwd forward` lines (kubectl_lines.flags_of)."""
    names = names or Names()
    if fmt == "kubectl":
        return parse_kubectl_lines(text, source, names, portfwd)
    if fmt == "kftray":
        return parse_kftray_json(text, source, names)
    if fmt == "krelay":
        return parse_krelay_targets(text, source, names)
    if fmt == "yaml":
        return Imported(specs=from_yaml(text, source))
    raise Unreadable(f"unknown format {fmt!r}: use one of " + ", ".join(FORMATS))
