"""The command lines typed most often, answered before click or the engine is imported.

`portfwd --version` and `portfwd ls [-o table|wide|json]` are typed often (at a prompt, or
by a script polling for its forwards): they should start like a compiled tool (issue 22
measured them at 3-3.5x kubectl's wall time, nearly all of it imports). Here they cost the
interpreter, the daemon's blocking client (a socket and JSON) and the table: no click, no
engine model, no event loop.

Anything else, or anything unusual on the way (no daemon, an error, an option this path does
not know), goes to the full command line, which does the same work with its messages and
exit codes: this path only ever answers when all went well.
"""

from __future__ import annotations

import os
import sys

# `-o json` too: scripts and agents list often, and the daemon's records are already
# `engine/serial.py`'s plain data, the very dicts `ls -o json` prints (yaml needs PyYAML).
QUICK_OUTPUTS = {"table", "wide", "json"}


def _ls_output(args: list[str]) -> str | None:
    """The output asked by `ls ARGS`, or None when this path does not take them."""
    rest = args
    output = "table"
    if rest and rest[0] in ("-o", "--output") and len(rest) == 2:
        output = rest[1]
        rest = []
    elif rest and rest[0].startswith("--output="):
        output = rest[0].partition("=")[2]
        rest = rest[1:]
    elif rest and rest[0].startswith("-o") and len(rest[0]) > 2:
        output = rest[0][2:]
        rest = rest[1:]
    if rest or output not in QUICK_OUTPUTS:
        return None
    return output


def _ls(output: str) -> bool:
    """Print the daemon's forwards (a table, or JSON); False (nothing printed) if it went
    otherwise."""
    from portfwd.cli.listing import render_records
    from portfwd.daemon.sync_client import SNAPSHOT_OP, SyncClient
    from portfwd.errors import PortfwdError
    from portfwd.safetext import escape_controls

    try:
        conn = SyncClient.connect(client="ls", ahead=SNAPSHOT_OP)
        try:
            records = conn.snapshot_records()
            warnings = list(conn.server.get("warnings") or [])
        finally:
            conn.close()
        text = render_records(records, output)
    except (PortfwdError, OSError, ValueError, TypeError, KeyError):
        return False
    for warning in warnings:  # what the daemon's session load left out, and why
        print(f"warning: {escape_controls(str(warning))}", file=sys.stderr)
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `portfwd ls | head`: the reader is done, so are we
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return True


def answer(argv: list[str]) -> bool:
    """True when this path answered `argv` (the process may exit 0); else the caller runs
    the full command line."""
    if argv == ["--version"]:
        from portfwd import version

        print(f"portfwd, version {version()}")
        return True
    if argv and argv[0] == "ls":
        output = _ls_output(argv[1:])
        if output is not None:
            return _ls(output)
    return False


def main() -> None:
    """The console script (and `python -m portfwd`): the quick answer, else the full command
    line (`root.main`, which imports click and the command group)."""
    if sys.argv[1:2] == ["__engine"]:  # the dashboard's engine process (daemon/private.py)
        from portfwd.daemon.private import child_main

        sys.exit(child_main(sys.argv[2:]))
    if answer(sys.argv[1:]):
        sys.exit(0)
    from portfwd.cli.root import main as full

    full()
