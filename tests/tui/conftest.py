"""The TUI on the real engine and the sandbox cluster: a harness that builds apps and cleans up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from textual.notifications import SeverityLevel

from portfwd.engine.catalog import KubeCatalog
from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec
from portfwd.sandbox.cluster import SandboxCluster
from portfwd.store.session import Session
from portfwd.store.state import StateStore
from portfwd.tui import app as app_module
from portfwd.tui.app import PortfwdApp


class RecordingApp(PortfwdApp):
    """Keeps the text of every toast: Textual has no public API to read notifications back."""

    # A relative CSS_PATH is read next to the subclass's module: point at the app's own.
    CSS_PATH = str(Path(app_module.__file__).with_name("portfwd.tcss"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.toasts: list[str] = []
        self.toast_titles: list[str] = []

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        self.toasts.append(message)
        self.toast_titles.append(title)
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)


@dataclass
class Harness:
    sandbox: SandboxCluster
    state_path: Path
    managers: list[Manager] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)

    @property
    def kubeconfig(self) -> str:
        return str(self.sandbox.kubeconfig_path)

    def app(
        self, *, restore: bool = True, seed: list[ForwardSpec] | None = None, **kw: Any
    ) -> RecordingApp:
        """A fresh app (own Manager and store) on the sandbox, like `portfwd` would build."""
        manager = Manager(kubeconfig=self.kubeconfig)
        self.managers.append(manager)
        store = StateStore(self.state_path)
        loaded = store.load()
        options: dict[str, Any] = {
            "catalog": KubeCatalog(manager.clients, kubeconfig=self.kubeconfig),
            "session": Session(manager, store, loaded, restart=restore, seed=seed or ()),
            "context": "sandbox",
            "cluster": "sandbox",
            "namespace": "demo",
            "spec_kubeconfig": None,
            "open_url": self.opened.append,
            "warnings": loaded.warnings,
        }
        options.update(kw)
        return RecordingApp(manager, **options)


@pytest.fixture(autouse=True)
def _own_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dashboard reads profiles.yaml from the config dir (its Group column, the profiles
    view): a test's is its own (the harness's state file is there too), never the
    developer's."""
    monkeypatch.setenv("PORTFWD_CONFIG_DIR", str(tmp_path / "config"))


@pytest_asyncio.fixture
async def harness(sandbox: SandboxCluster, tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(sandbox=sandbox, state_path=tmp_path / "config" / "state.yaml")
    try:
        yield h
    finally:
        for manager in h.managers:
            await manager.shutdown()
