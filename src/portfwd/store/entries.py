"""The session file's text, built from one cached YAML block per forward.

Why blocks: the file is rewritten after every change, and a daemon taking 1,000 `add`s in a
row would otherwise re-encode all of it per change (quadratic: 45 s for 1,000 forwards with
PyYAML's pure-Python emitter on the event loop). Each forward's block is encoded once, by
libyaml's emitter (`yaml.CSafeDumper`, 3x the pure-Python one) in the writer's thread, and
kept until that forward changes; a save joins the blocks, which costs a copy of the file's
bytes, off the loop. The text is byte for byte what one `yaml.dump` of the whole document
gives, so the format stays plain YAML that users may read and edit (an append-only journal
or a binary format would save a copy per change, but lose that).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

SCHEMA_VERSION = 1
HEADER = "# portfwd session state (written by portfwd; edits are read at start)\n"

# libyaml's emitter when PyYAML was built with it (the wheels are); else the Python one.
_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump_yaml(data: Any) -> str:
    """Block-style YAML, keys in the given order."""
    return yaml.dump(data, Dumper=_DUMPER, sort_keys=False, default_flow_style=False)


class Entry:
    """One forward's entry: its plain data (compared on the loop to see if it changed) and
    its YAML block, encoded on first use (in the writer's thread, never on the loop)."""

    __slots__ = ("_text", "data")

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self._text: str | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = dump_yaml([self.data])  # "- id: ...\n  target: ...\n"
        return self._text


def encode_entries(entries: Sequence[Entry]) -> str:
    """The whole file: header, schema version, the blocks in order."""
    head = f"{HEADER}version: {SCHEMA_VERSION}\n"
    if not entries:
        return f"{head}forwards: []\n"
    return head + "forwards:\n" + "".join(entry.text for entry in entries)
