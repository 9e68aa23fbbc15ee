"""The command palette (ctrl+p): every action by name, with its key as a hint."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual.app import SystemCommand

from portfwd.tui.screens.dashboard import DashboardScreen
from portfwd.tui.screens.logs import LogScreen

if TYPE_CHECKING:
    from portfwd.tui.app import PortfwdApp


def palette_commands(app: PortfwdApp, screen: object) -> Iterable[SystemCommand]:
    """Actions are offered where they apply: forward actions on the dashboard, log actions
    on a log view; the app-wide ones everywhere."""
    dash = app.dashboard
    if isinstance(screen, DashboardScreen):
        yield SystemCommand(
            "New forward", "Pick context, namespace, resource, port (n)", dash.action_new_forward
        )
        yield SystemCommand(
            "Start / stop forward", "Toggle the selected forward (space)", dash.action_start_stop
        )
        yield SystemCommand(
            "Restart forward", "Restart the selected forward (r)", dash.action_restart
        )
        yield SystemCommand("Delete forward", "Delete the selected forward (d)", dash.action_delete)
        yield SystemCommand("Edit forward", "Change local port/address (e)", dash.action_edit)
        yield SystemCommand("Rename forward", "The name CLI commands take (R)", dash.action_rename)
        yield SystemCommand(
            "Auto-reconnect on/off",
            "Retry the selected forward after failures, or not (a)",
            dash.action_toggle_reconnect,
        )
        yield SystemCommand(
            "Lazy on/off",
            "Open the tunnel on the first connection, close it when idle (z)",
            dash.action_toggle_lazy,
        )
        yield SystemCommand("Forward logs", "Log of the selected forward (l)", dash.action_logs)
        yield SystemCommand(
            "HTTP log on/off",
            "Log each HTTP request of the selected forward's new connections (H)",
            dash.action_toggle_http_log,
        )
        yield SystemCommand(
            "HTTP requests", "The request log, filterable, latest first (h)", dash.action_http_log
        )
        yield SystemCommand(
            "Pod log tail on/off",
            "Tail the log of the pod the selected forward uses, in the details (t)",
            dash.action_toggle_pod_log,
        )
        yield SystemCommand(
            "Pod log: next container",
            "Tail another container of a pod with several (c)",
            dash.action_pod_log_container,
        )
        yield SystemCommand(
            "Details on/off",
            "Whole error, pod, node, connections, history of the selected forward (i)",
            dash.action_toggle_detail,
        )
        yield SystemCommand(
            "Browse resources",
            "Services, pods, deployments, statefulsets of the namespace; forward one (b)",
            dash.action_resources,
        )
        yield SystemCommand(
            "Copy kubectl command", "Equivalent kubectl port-forward (y)", dash.action_copy_command
        )
        yield SystemCommand(
            "Open in browser", "http(s)://localhost:PORT (o)", dash.action_open_browser
        )
        yield SystemCommand("Filter forwards", "Show only matching rows (/)", dash.action_filter)
        yield SystemCommand(
            "Sort by next column", "Cycle the sort column (s)", dash.action_cycle_sort
        )
        yield SystemCommand("Reverse sort", "Flip the sort order (S)", dash.action_reverse_sort)
        yield SystemCommand(
            "Profiles", "Saved sets of forwards: start, stop, save (p)", app.action_profiles
        )
        yield SystemCommand(
            "Quick add", "Type or paste a kubectl port-forward line (:)", app.action_quick_add
        )
        yield SystemCommand(
            "Switch context",
            "New forwards, browse and picker use it; running ones keep theirs (:ctx NAME)",
            app.action_switch_context,
        )
        yield SystemCommand(
            "Switch namespace",
            "New forwards, browse and picker use it (:ns NAME)",
            app.action_switch_namespace,
        )
        yield SystemCommand(
            "Start / stop several", "Mark forwards, start or stop them all (m)", app.action_bulk
        )
    if isinstance(screen, LogScreen):
        yield SystemCommand("Follow log", "Live tail on/off (f)", screen.action_follow)
        yield SystemCommand("Clear log view", "Empty this view (c)", screen.action_clear)
    yield SystemCommand("App log", "Log of every forward (L)", dash.action_all_logs)
    yield SystemCommand("Help", "Every key (?)", app.action_help)
    if app.daemon is not None:
        yield SystemCommand(
            "Detach", "Leave the daemon's forwards running, exit (q)", app.action_quit
        )
        yield SystemCommand(
            "Stop all and detach",
            "Stop every forward in the daemon, then exit (Q)",
            app.action_stop_all_and_quit,
        )
    else:
        yield SystemCommand(
            "Quit", "Save the session, stop every forward, exit (q)", app.action_quit
        )
        yield SystemCommand(
            "Stop all and quit", "The same as quit here (Q)", app.action_stop_all_and_quit
        )
