"""What every portfwd screen gets from the app: the engine API, the catalog, the app itself.

A screen acts on forwards through `self.engine` (the `EngineAPI`: the in-process Manager or
the daemon's RemoteEngine, whichever the app was given) and lists the cluster through
`self.catalog`; it never reaches into the app's fields for them. The app is typed here, in
one place (screens run only inside a `PortfwdApp`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar, cast

from textual.screen import ModalScreen, Screen

if TYPE_CHECKING:
    from portfwd.engine.api import EngineAPI
    from portfwd.engine.catalog import Catalog
    from portfwd.tui.app import PortfwdApp

ResultT = TypeVar("ResultT")


class PortfwdScreen(Screen[ResultT]):
    @property
    def papp(self) -> PortfwdApp:
        """The app, typed: its settings (context, namespace, clock) and what it opens."""
        return cast("PortfwdApp", self.app)

    @property
    def engine(self) -> EngineAPI:
        return self.papp.engine

    @property
    def catalog(self) -> Catalog:
        return self.papp.catalog


class PortfwdModal(ModalScreen[ResultT], PortfwdScreen[ResultT]):
    """A modal screen (dims the one under it) with the same access as `PortfwdScreen`.

    ModalScreen comes first: Textual inherits CSS along the first base only."""
