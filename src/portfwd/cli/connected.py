"""What the commands that talk to the daemon share: a blocking connection for the quick
ones, and the exit codes of the daemon's errors.

Exit codes (the same for every such command): 0 done; 1 it was tried and failed (a forward
could not start: the reason is the `error:` line); 2 bad input (usage, a bad target or port,
a name already used): nothing was changed; 3 no daemon is running (`portfwd daemon
--detach` starts one); 4 no forward has that name or id. A forward is named by its `--name`
or its id (`portfwd ls -o wide` shows both).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from portfwd.cli.run import ErrorCodes, ExitCode
from portfwd.daemon.replies import NotRunning
from portfwd.daemon.sync_client import SyncClient
from portfwd.errors import InputError

T = TypeVar("T")

DAEMON_ERRORS: ErrorCodes = {
    NotRunning: ExitCode.NO_DAEMON,
    KeyError: ExitCode.NOT_FOUND,  # the daemon's "no forward has the name or id ..."
    InputError: ExitCode.USAGE,
}


def connected(body: Callable[[SyncClient], T], *, client: str) -> T:
    """`body` with a connection to the daemon, closed afterwards."""
    conn = SyncClient.connect(client=client)
    try:
        return body(conn)
    finally:
        conn.close()
