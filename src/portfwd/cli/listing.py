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
from typing import TYPE_CHECKING, Any

from portfwd.cli.health_cell import health_cell
from portfwd.humanize import human_bytes, human_duration
from portfwd.safetext import escape_controls

if TYPE_CHECKING:
    from portfwd.engine.model import ForwardSnapshot

OUTPUTS = ("table", "wide", "json", "yaml")
REASON_WIDTH = 60  # the last error, cut to fit a line (the full text is in -o json)
_LOOPBACK_PAIR = frozenset(("127.0.0.1", "::1"))  # tunnel/addresses.py's LOCALHOST_ADDRESSES
_DEFAULT_ADDRESSES = ["localhost"]  # kubectl's --address default


# Tables are drawn from the records as the daemon sends them (`engine/serial.py`'s shape),
# not from the engine's model: `portfwd ls` then never imports the engine (see quick.py).
# The three cells below word a forward as engine/present.py does for the dashboard
# (tests/cli/test_listing_data.py holds them to it).


def local_side_of(data: dict[str, Any]) -> str:
    """Where it listens: `localhost:8080` for both loopback addresses on one port, else every
    address; before it binds, what it asks for (`localhost:auto`)."""
    bound = [(str(h), int(p)) for h, p in data.get("bound") or []]
    spec = data.get("spec") or {}
    if bound:
        ports = {p for _, p in bound}
        if len(ports) == 1 and {a for a, _ in bound} == _LOOPBACK_PAIR:
            return f"localhost:{bound[0][1]}"
        return ", ".join(f"[{a}]:{p}" if ":" in a else f"{a}:{p}" for a, p in bound)
    port = str(spec.get("local_port") or "auto")
    addresses = spec.get("addresses") or _DEFAULT_ADDRESSES
    return ", ".join(f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in addresses)


def remote_side_of(data: dict[str, Any]) -> str:
    """The remote side, narrow: `80→9000` (asked, then resolved), without the port's name."""
    asked = str((data.get("spec") or {}).get("remote_port", ""))
    resolved = data.get("remote_port") or 0
    if resolved and asked != str(resolved):
        return f"{asked}→{resolved}"
    return str(resolved or asked)


def uptime_of(data: dict[str, Any], now: float) -> str:
    started = data.get("started_at")
    if data.get("state") in ("active", "degraded") and started:
        return human_duration(now - float(started))
    return "-"


def _row(data: dict[str, Any], now: float, wide: bool) -> list[str]:
    spec = data.get("spec") or {}
    stats = data.get("stats") or {}
    reason = str(data.get("reason") or "")
    if len(reason) > REASON_WIDTH:
        reason = reason[: REASON_WIDTH - 1] + "…"
    row = [
        str(spec.get("name") or data.get("id")),
        str(data.get("state")),
        str(data.get("context") or spec.get("context") or "-"),
        str(data.get("namespace") or spec.get("namespace") or "-"),
        str(spec.get("target")),
    ]
    if wide:
        row += [str(data.get("id")), str(data.get("pod") or "-")]
    row += [f"{local_side_of(data)}->{remote_side_of(data)}", str(stats.get("connections_open", 0))]
    if wide:
        row += [
            human_bytes(int(stats.get("bytes_in", 0))),
            human_bytes(int(stats.get("bytes_out", 0))),
            str(stats.get("reconnects", 0)),
            uptime_of(data, now),
            health_cell(data, now),
        ]
    row.append(reason or "-")
    return [escape_controls(cell) for cell in row]


def table_of(
    records: Sequence[dict[str, Any]], *, wide: bool = False, now: float | None = None
) -> str:
    now = time.time() if now is None else now
    header = ["NAME", "STATUS", "CONTEXT", "NAMESPACE", "TARGET"]
    if wide:
        header += ["ID", "POD"]
    header += ["LOCAL->REMOTE", "CONNS"]
    if wide:
        header += ["IN", "OUT", "RECONNECTS", "UPTIME", "HEALTH"]
    header.append("LAST ERROR")
    rows = [header, *(_row(r, now, wide) for r in records)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append("   ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


EMPTY = "no forwards (add one: portfwd add svc/NAME 8080:80)"


def render_tables(records: Sequence[dict[str, Any]], output: str) -> str:
    """`table` or `wide` from the daemon's records."""
    return table_of(records, wide=output == "wide") if records else EMPTY


# -- the same from the engine's snapshots (the commands that hold them already) ---------------


def _records(snaps: Sequence[ForwardSnapshot]) -> list[dict[str, Any]]:
    from portfwd.engine.serial import snapshot_to_dict

    return [snapshot_to_dict(s) for s in snaps]


def local_side(snap: ForwardSnapshot) -> str:
    return local_side_of(_records([snap])[0])


def remote_side(snap: ForwardSnapshot) -> str:
    """The remote side in a table cell (and `portfwd add`'s line): the narrow form, `80→9000`."""
    return remote_side_of(_records([snap])[0])


def table(snaps: Sequence[ForwardSnapshot], *, wide: bool = False, now: float | None = None) -> str:
    return table_of(_records(snaps), wide=wide, now=now)


def as_data(snaps: Sequence[ForwardSnapshot]) -> dict[str, Any]:
    return {"forwards": _records(snaps)}


def render(snaps: Sequence[ForwardSnapshot], output: str) -> str:
    if output == "yaml":
        import yaml

        return yaml.safe_dump(as_data(snaps), sort_keys=False, allow_unicode=False).rstrip()
    return render_records(_records(snaps), output)


def render_records(records: Sequence[dict[str, Any]], output: str) -> str:
    """`ls` of plain records (engine/serial.py's, as the daemon sends them): a table or JSON
    (`cli/quick.py` prints them without building snapshots)."""
    if output == "json":
        return json.dumps({"forwards": records}, indent=2)
    return render_tables(records, output)


def row(snap: ForwardSnapshot, note: str = "") -> str:
    """NAME, TARGET LOCAL->REMOTE and STATE[: reason], tab-separated: one forward as `add`,
    `start` and the others print it."""
    data = _records([snap])[0]
    state = snap.state.value + (f": {snap.reason}" if snap.reason else "")
    where = f"{snap.spec.target} {local_side_of(data)}->{remote_side_of(data)}"
    return "\t".join(escape_controls(c) for c in (snap.spec.name or snap.id, where, state)) + note
