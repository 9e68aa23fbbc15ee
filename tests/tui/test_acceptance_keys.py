"""Acceptance: "Help (?) lists every key; the command palette offers every action" (issue 3).

test_app.py checks a handful of words in the help text and a fixed list of palette titles;
both would still pass after a new binding was added without help or palette entry. These
tests derive the keys and actions from the BINDINGS the app really uses.
"""

from __future__ import annotations

import re

import pytest
from textual.binding import Binding, BindingType

from portfwd.engine.catalog import KubeCatalog
from portfwd.engine.manager import Manager
from portfwd.store.session import Session
from portfwd.store.state import StateStore
from portfwd.tui.app import PortfwdApp
from portfwd.tui.screens.bulk import BulkScreen
from portfwd.tui.screens.dashboard import DashboardScreen
from portfwd.tui.screens.dialogs import HELP_SECTIONS, HelpScreen
from portfwd.tui.screens.logs import LogScreen
from portfwd.tui.screens.picker import NewForwardScreen
from portfwd.tui.screens.profiles import ProfilesScreen
from portfwd.tui.widgets.forward_table import ForwardTable
from tests.tui.conftest import Harness
from tests.tui.helpers import collapsed, screen_text, settle

pytestmark = pytest.mark.timeout(60)

# How the help spells Textual's key names.
SPELLED = {
    "question_mark": "?",
    "slash": "/",
    "escape": "esc",
    "pagedown": "pgdn",
    "pageup": "pgup",
    "down": "↓",
    "up": "↑",
    "colon": ":",
    "asterisk": "*",
}

SCREENS = [
    ("Everywhere", PortfwdApp),
    ("Dashboard", DashboardScreen),
    ("Dashboard", ForwardTable),
    ("New forward picker", NewForwardScreen),
    ("Logs", LogScreen),
    ("Profiles view", ProfilesScreen),
    ("Several forwards", BulkScreen),
]


def _plain_app(h: Harness) -> PortfwdApp:
    """The app exactly as `portfwd` builds it (no test subclass), its Manager owned by `h`."""
    manager = Manager(kubeconfig=h.kubeconfig)
    h.managers.append(manager)
    store = StateStore(h.state_path)
    loaded = store.load()
    return PortfwdApp(
        manager,
        catalog=KubeCatalog(manager.clients, kubeconfig=h.kubeconfig),
        session=Session(manager, store, loaded),
        context="sandbox",
        cluster="sandbox",
        namespace="demo",
        spec_kubeconfig=None,
        open_url=h.opened.append,
        warnings=loaded.warnings,
    )


def _bindings(owner: type) -> list[Binding]:
    found: list[BindingType] = list(owner.__dict__.get("BINDINGS", []))
    assert all(isinstance(b, Binding) for b in found), owner
    return [b for b in found if isinstance(b, Binding)]


def _help_keys() -> dict[str, set[str]]:
    """section title -> every key token its lines name."""
    keys: dict[str, set[str]] = {}
    for title, lines in HELP_SECTIONS:
        tokens = keys.setdefault(title, set())
        for key, what in lines:
            tokens.update(t for t in re.split(r",\s*|\s+/\s+|\s+", key) if t)
            # "esc clears" and the like: a key named in the explanation counts too.
            tokens.update(w for w in re.split(r"[\s;,()]+", what) if w in ("esc", "enter"))
    return keys


@pytest.mark.parametrize(("section", "owner"), SCREENS, ids=lambda v: getattr(v, "__name__", v))
def test_help_names_every_bound_key(section: str, owner: type) -> None:
    shown = _help_keys()[section] | _help_keys()["Everywhere"]
    missing = [
        f"{key} ({b.action})"
        for b in _bindings(owner)
        for key in b.key.split(",")
        if SPELLED.get(key, key) not in shown
    ]
    assert not missing, f"keys of {owner.__name__} not in the help's {section!r}: {missing}"


async def test_help_screen_shows_the_sections(harness: Harness) -> None:
    app = _plain_app(harness)
    async with app.run_test(size=(120, 90)) as pilot:  # tall enough for all of it
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        text = collapsed(screen_text(app))
        for title, lines in HELP_SECTIONS:
            assert title in text
            for key, what in lines:
                assert collapsed(key) in text and collapsed(what) in text, (key, what)


async def _palette_gaps(harness: Harness) -> list[str]:
    """Actions bound to a key on the dashboard that the command palette does not offer."""
    app = _plain_app(harness)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        offered = {getattr(c.callback, "__name__", "") for c in app.get_system_commands(app.screen)}
    wanted = {
        f"action_{b.action}"
        for owner in (PortfwdApp, DashboardScreen, ForwardTable)
        for b in _bindings(owner)
        # Plain movement and leaving the filter box are not actions a palette offers; the
        # table's enter is the dashboard's "logs" under another name.
        if b.action
        not in {
            "clear_filter",
            "cursor_down",
            "cursor_up",
            "scroll_top",
            "scroll_bottom",
            "open_logs",
        }
    }
    return sorted(wanted - offered)


async def test_palette_offers_every_dashboard_action(harness: Harness) -> None:
    missing = await _palette_gaps(harness)
    assert not missing, f"actions bound to keys but not in the command palette: {missing}"
