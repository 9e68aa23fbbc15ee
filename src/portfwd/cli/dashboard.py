"""`portfwd` with no command: the dashboard (Textual, loaded only for it)."""

from __future__ import annotations

from pathlib import Path

from portfwd.cli.run import run
from portfwd.tui import run as tui


def open_dashboard(
    *,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    state_file: str | None,
    no_restore: bool,
    ping_interval: float,
    protocol: str,
    use_daemon: bool,
) -> None:
    run(
        lambda: tui.run_tui(
            kubeconfig=kubeconfig,
            context=context,
            namespace=namespace,
            state_file=Path(state_file) if state_file else None,
            restore=not no_restore,
            ping_interval=ping_interval,
            protocol=protocol,
            use_daemon=use_daemon,
        )
    )
