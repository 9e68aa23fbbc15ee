"""What a front end may run inside the daemon on its engine (the proxy, `portfwd daemon
--proxy`): the daemon package cannot import those layers, so the command line hands them in
as companions. A companion starts once the daemon listens (its failure stops the start, with
its one-line reason), stops before the forwards do, and says what it is in `status` (the
hello clients get, `portfwd daemon status`)."""

from __future__ import annotations

from typing import Any, Protocol

from portfwd.engine.manager import Manager


class Companion(Protocol):
    async def start(self, manager: Manager) -> None:
        """Start on the daemon's engine; PortfwdError (one line) when it cannot."""

    async def close(self) -> None:
        """Stop; idempotent."""

    def status(self) -> dict[str, Any]:
        """Keys merged into the daemon's status (e.g. {"proxy": {...}})."""
