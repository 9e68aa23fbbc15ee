"""krelay's targets file (`kubectl relay -f targets.txt`): one kubectl-style target per line.

A line is `[-n NS] [-l ADDRESS] TYPE/NAME PORT...`, as krelay reads it: `#` and `//` start a
comment line, fields are split on blanks (no quotes), a port may end in `@tcp` or `@udp`.
krelay listens on 127.0.0.1 unless `-l` says otherwise; so do the imported forwards.
What portfwd cannot do is skipped with the reason: UDP ports, and `ip/...` / `host/...`
targets (krelay reaches those through its relay pod in the cluster).
"""

from __future__ import annotations

from portfwd.engine.model import ForwardSpec
from portfwd.transfer.kubectl_lines import import_words
from portfwd.transfer.result import Imported, Names


def parse_krelay_targets(text: str, source: str = "-", names: Names | None = None) -> Imported:
    names = names or Names()
    seen: dict[ForwardSpec, str] = {}
    result = Imported()
    for number, raw in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("//"):
            continue
        where = f"{source}:{number}"
        words = ["kubectl-relay", *line.split()]
        import_words(result, words, line, names=names, where=where, seen=seen)
    return result
