"""`portfwd ls` output: a kubectl-style table (default and `-o wide`), JSON or YAML.

JSON and YAML are the engine's own serialisation (`engine/serial.py`): the same fields as the
session file and the daemon's protocol, so a script can feed `ls -o json` back into tools
without guessing. Tables show names as they are, with control characters escaped, and a
forward's sides and uptime as the dashboard words them (`engine/present.py`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from portfwd.engine.model import ForwardSnapshot
from portfwd.engine.present import local_side as local_side  # `portfwd add` prints it too
from portfwd.engine.present import remote_compact, uptime
from portfwd.engine.serial import snapshot_to_dict
from portfwd.humanize import human_bytes
from portfwd.safetext import escape_controls

OUTPUTS = ("table", "wide", "json", "yaml")
REASON_WIDTH = 60  # the last error, cut to fit a line (the full text is in -o json)


def remote_side(snap: ForwardSnapshot) -> str:
    """The remote side in a table cell (and `portfwd add`'s line): the narrow form, `80→9000`."""
    return remote_compact(snap)


def _row(snap: ForwardSnapshot, now: float, wide: bool) -> list[str]:
    reason = snap.reason
    if len(reason) > REASON_WIDTH:
        reason = reason[: REASON_WIDTH - 1] + "…"
    row = [
        snap.spec.name or snap.id,
        snap.state.value,
        snap.context or snap.spec.context or "-",
        snap.namespace or snap.spec.namespace or "-",
        snap.spec.target,
    ]
    if wide:
        row += [snap.id, snap.pod or "-"]
    row += [f"{local_side(snap)}->{remote_side(snap)}", str(snap.stats.connections_open)]
    if wide:
        row += [
            human_bytes(snap.stats.bytes_in),
            human_bytes(snap.stats.bytes_out),
            str(snap.stats.reconnects),
            uptime(snap, now),
        ]
    row.append(reason or "-")
    return [escape_controls(cell) for cell in row]


def table(snaps: Sequence[ForwardSnapshot], *, wide: bool = False, now: float | None = None) -> str:
    now = time.time() if now is None else now
    header = ["NAME", "STATUS", "CONTEXT", "NAMESPACE", "TARGET"]
    if wide:
        header += ["ID", "POD"]
    header += ["LOCAL->REMOTE", "CONNS"]
    if wide:
        header += ["IN", "OUT", "RECONNECTS", "UPTIME"]
    header.append("LAST ERROR")
    rows = [header, *(_row(s, now, wide) for s in snaps)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append("   ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def as_data(snaps: Sequence[ForwardSnapshot]) -> dict[str, Any]:
    return {"forwards": [snapshot_to_dict(s) for s in snaps]}


def render(snaps: Sequence[ForwardSnapshot], output: str) -> str:
    if output == "json":
        return json.dumps(as_data(snaps), indent=2)
    if output == "yaml":
        import yaml

        return yaml.safe_dump(as_data(snaps), sort_keys=False, allow_unicode=False).rstrip()
    if not snaps:
        return "no forwards (add one: portfwd add svc/NAME 8080:80)"
    return table(snaps, wide=output == "wide")


def row(snap: ForwardSnapshot, note: str = "") -> str:
    """NAME, TARGET LOCAL->REMOTE and STATE[: reason], tab-separated: one forward as `add`,
    `start` and the others print it."""
    state = snap.state.value + (f": {snap.reason}" if snap.reason else "")
    where = f"{snap.spec.target} {local_side(snap)}->{remote_side(snap)}"
    return "\t".join(escape_controls(c) for c in (snap.spec.name or snap.id, where, state)) + note
