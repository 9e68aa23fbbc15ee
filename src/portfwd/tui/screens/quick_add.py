"""Quick add (`:`): one line, as kubectl takes it, and the forward starts.

The line is `svc/web 8080:80 -n demo --context c` or a whole pasted `kubectl port-forward
...` command (parsed by `transfer.kubectl_lines`, the importer's parser). What the line does
not name comes from the dashboard: its context, namespace, kubeconfig and protocol. A line
that does not parse says why under the prompt and adds nothing. The prompt completes kinds
(svc/, pod/, deploy/, sts/, rs/: any kubectl spelling of them works, as in `forward`),
resource names and ports from the app's catalog (→ accepts).
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import replace

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.suggester import Suggester
from textual.widgets import Input, Label, Static

from portfwd.engine.catalog import Catalog
from portfwd.engine.model import ForwardSpec
from portfwd.errors import InputError, PortfwdError
from portfwd.kube import kinds
from portfwd.safetext import escape_controls
from portfwd.transfer.kubectl_lines import KUBECTL_PROGRAMS, specs_from_command, value_flags
from portfwd.transfer.result import Names
from portfwd.tui.screens.base import PortfwdModal

# What a first word completes to: the target kinds' short names, the listed ones first.
KIND_WORDS = tuple(
    f"{k.short}/" for k in (*kinds.LISTED, *(k for k in kinds.TARGETS if not k.listed))
)
FORWARDERS = KUBECTL_PROGRAMS | {"portfwd", "kubectl-portfwd", "kubectl-relay", "krelay"}
CATALOG_SECONDS = 3.0  # a completion that takes longer than this is not offered
HINT = "e.g. svc/web 8080:80 -n demo --context prod, or paste a kubectl line · → completes"
_FLAGS_WITH_VALUE = value_flags("kubectl")  # the importer's table: one place for kubectl's flags


def _flag(words: list[str], *names: str) -> str | None:
    for i, word in enumerate(words):
        for name in names:
            if word == name and i + 1 < len(words):
                return words[i + 1]
            if word.startswith(name + "="):
                return word.partition("=")[2]
    return None


def _target(words: list[str]) -> tuple[int, str] | None:
    """The index and text of the KIND/NAME word, if one is complete."""
    for i, word in enumerate(words):
        if (
            "/" in word
            and not word.startswith("-")
            and (i == 0 or words[i - 1] not in _FLAGS_WITH_VALUE)
        ):
            return i, word
    return None


class LineSuggester(Suggester):
    """Completes the last word: a kind, then a resource name, then a port."""

    def __init__(self, catalog: Catalog, context: str, namespace: str) -> None:
        super().__init__(use_cache=True, case_sensitive=True)
        self.catalog = catalog
        self.context = context
        self.namespace = namespace

    async def get_suggestion(self, value: str) -> str | None:
        words = value.split(" ")
        last = words[-1]
        before = words[:-1]
        if before and before[-1] in _FLAGS_WITH_VALUE:
            return await self._flag_value(before[-1], words, value, last)
        if last.startswith("-"):
            return None
        target = _target(before)
        if target is None:
            if "/" not in last:
                if not last:
                    return None
                word = next((k for k in KIND_WORDS if k.startswith(last)), None)
                return value + word[len(last) :] if word else None
            prefix, _, partial = last.partition("/")
            kind = kinds.target_kind(prefix)
            if kind is None:
                return None
            names = [r.name for r in await self._resources(words, kind.name)]
            match = next((n for n in names if n.startswith(partial) and n != partial), None)
            return value + match[len(partial) :] if match else None
        prefix, _, name = target[1].partition("/")
        kind = kinds.target_kind(prefix)
        if kind is None or not name or not re.fullmatch(r"\d*(:\d*)?", last):
            return None
        found = await self._ports(words, kind.name, name)
        ports = [str(p.port) for p in found if not p.disabled_reason]  # no UDP
        if ":" in last:
            partial = last.partition(":")[2]
            match = next((p for p in ports if p.startswith(partial) and p != partial), None)
            return value + match[len(partial) :] if match else None
        if not last:
            return None
        match = next((p for p in ports if p.startswith(last) and p != last), None)
        return value + match[len(last) :] if match else None

    async def _flag_value(self, flag: str, words: list[str], value: str, last: str) -> str | None:
        """A context after --context, a namespace after -n (from the catalog)."""
        if not last:
            return None
        choices: list[str] = []
        try:
            if flag == "--context":
                found = await asyncio.wait_for(self.catalog.contexts(), CATALOG_SECONDS)
                choices = [c.name for c in found]
            elif flag in ("-n", "--namespace"):
                context = self._where(words[:-2])[0]
                choices = await asyncio.wait_for(self.catalog.namespaces(context), CATALOG_SECONDS)
        except (PortfwdError, TimeoutError, OSError):
            return None
        match = next((c for c in choices if c.startswith(last) and c != last), None)
        return value + match[len(last) :] if match else None

    def _where(self, words: list[str]) -> tuple[str, str]:
        context = _flag(words, "--context") or self.context
        namespace = _flag(words, "-n", "--namespace") or self.namespace
        return context, namespace

    async def _resources(self, words: list[str], kind: str) -> list:  # type: ignore[type-arg]
        context, namespace = self._where(words)
        try:
            return await asyncio.wait_for(
                self.catalog.resources(context, namespace, kind), CATALOG_SECONDS
            )
        except (PortfwdError, TimeoutError, OSError):
            return []

    async def _ports(self, words: list[str], kind: str, name: str) -> list:  # type: ignore[type-arg]
        context, namespace = self._where(words)
        try:
            return await asyncio.wait_for(
                self.catalog.ports(context, namespace, kind, name), CATALOG_SECONDS
            )
        except (PortfwdError, TimeoutError, OSError):
            return []


def parse_line(text: str, taken: set[str]) -> list[ForwardSpec]:
    """The forwards of a pasted command, or of the short form (kubectl port-forward's
    arguments alone: `svc/web 8080:80 -n demo`). InputError with the reason."""
    if not text.strip():
        raise InputError("type a target and a port, e.g. svc/web 8080:80")
    programs = {os.path.basename(word) for word in text.split()}
    if not programs & FORWARDERS:  # no command named: the short form
        text = f"kubectl port-forward {text}"
    return specs_from_command(text, Names(taken))


def with_defaults(
    specs: list[ForwardSpec],
    *,
    context: str | None,
    namespace: str | None,
    kubeconfig: str | None,
    protocol: str,
) -> list[ForwardSpec]:
    """What the line did not name, from the dashboard."""
    return [
        replace(
            s,
            context=s.context or context,
            namespace=s.namespace or namespace,
            kubeconfig=s.kubeconfig or kubeconfig,
            protocol=protocol if s.protocol == "auto" else s.protocol,
        )
        for s in specs
    ]


class QuickAddScreen(PortfwdModal[list[ForwardSpec] | None]):
    """The prompt, docked at the bottom of the dashboard."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    QuickAddScreen {
        align: left bottom;
        background: $background 40%;
    }
    #quick-add-box {
        height: auto;
        width: 100%;
        background: $panel;
        border-top: solid $accent;
        padding: 0 1;
    }
    #quick-add-line { height: auto; }
    #quick-add-colon { width: 2; padding: 1 0 0 0; text-style: bold; }
    #quick-add-input { width: 1fr; }
    #quick-add-error { color: $error; height: auto; }
    #quick-add-hint { color: $text-muted; height: auto; }
    """

    def __init__(self) -> None:
        super().__init__(id="quick-add")

    def compose(self) -> ComposeResult:
        app = self.papp
        context = app.context_name or "(current)"
        where = f"context {context}, namespace {app.default_namespace or '(default)'}"
        with Vertical(id="quick-add-box"):
            yield Static("", id="quick-add-error", markup=False)
            with Horizontal(id="quick-add-line"):
                yield Label(":", id="quick-add-colon")
                yield Input(
                    id="quick-add-input",
                    placeholder=f"svc/NAME LOCAL:REMOTE [-n NS] [--context C]  ({where})",
                    suggester=LineSuggester(
                        self.catalog, app.context_name, app.default_namespace or "default"
                    ),
                )
            yield Static(HINT, id="quick-add-hint", markup=False)

    def on_mount(self) -> None:
        self.query_one("#quick-add-error", Static).display = False
        self.query_one("#quick-add-input", Input).focus()

    @on(Input.Changed)
    def _changed(self) -> None:
        self.query_one("#quick-add-error", Static).display = False

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        app = self.papp
        taken = {s.spec.name for s in app.engine.snapshot() if s.spec.name}
        try:
            specs = parse_line(event.value, taken)
            specs = with_defaults(
                specs,
                context=app.context_name or None,
                namespace=app.default_namespace,
                kubeconfig=app.spec_kubeconfig,
                protocol=app.protocol,
            )
        except PortfwdError as exc:
            self.show_error(str(exc))
            return
        self.dismiss(specs)

    def show_error(self, message: str) -> None:
        box = self.query_one("#quick-add-error", Static)
        box.update(escape_controls(message))
        box.display = True

    @property
    def error(self) -> str:
        box = self.query_one("#quick-add-error", Static)
        return str(box.render()) if box.display else ""

    def action_cancel(self) -> None:
        self.dismiss(None)
