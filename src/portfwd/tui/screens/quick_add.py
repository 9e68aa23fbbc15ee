"""Quick add (`:`): one line, as kubectl takes it, and the forward starts.

The line is `svc/web 8080:80 -n demo --context c` (any flag of `portfwd forward`, so
`--probe` and `--lazy` too) or a whole pasted `kubectl port-forward ...` command (parsed by
`transfer.kubectl_lines`, the importer's parser). What the line does not name comes from the
dashboard: its context, namespace, kubeconfig and protocol. A line that does not parse, a
target that does not exist now or a local port in use (what `portfwd add` and the picker
refuse) says why under the prompt and adds nothing. The prompt completes kinds (svc/, pod/,
deploy/, sts/, rs/: any kubectl spelling of them works, as in `forward`), resource names and
ports from the app's catalog (→ accepts).

k9s's words switch where the dashboard points: `ctx NAME` (or `context`), `ns NAME` (or
`namespace`); their names complete too. Forwards already running keep their own context.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable
from dataclasses import replace
from typing import TypeVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.suggester import Suggester
from textual.widgets import Input, Label, Static

from portfwd.engine.catalog import Catalog, ListForbidden, PortChoice
from portfwd.engine.model import ForwardSpec
from portfwd.errors import InputError, PortfwdError
from portfwd.kube import kinds
from portfwd.safetext import escape_controls
from portfwd.transfer.kubectl_lines import KUBECTL_PROGRAMS, specs_from_command, value_flags
from portfwd.transfer.result import Names
from portfwd.tui.ports import check_port_all
from portfwd.tui.screens.base import PortfwdModal

T = TypeVar("T")

# What a first word completes to: the target kinds' short names, the listed ones first.
KIND_WORDS = tuple(
    f"{k.short}/" for k in (*kinds.LISTED, *(k for k in kinds.TARGETS if not k.listed))
)
FORWARDERS = KUBECTL_PROGRAMS | {"portfwd", "kubectl-portfwd", "kubectl-relay", "krelay"}
CATALOG_SECONDS = 3.0  # a completion that takes longer than this is not offered
CHECK_SECONDS = 15.0  # the check before adding: the API's answer, or a refusal that says so
HINT = "e.g. svc/web 8080:80 -n demo --context prod, or paste a kubectl line · → completes"
_FLAGS_WITH_VALUE = value_flags("kubectl")  # the importer's table: one place for kubectl's flags
# k9s's command words (`:ctx NAME`, `:ns NAME`); a quick add target always has a `/`.
SWITCH_WORDS = {
    "ctx": "context",
    "context": "context",
    "contexts": "context",
    "ns": "namespace",
    "namespace": "namespace",
    "namespaces": "namespace",
}
COMMAND_WORDS = ("ctx ", "ns ")
LISTED_NAMES = 8  # names an error line offers before "…"


def parse_switch(text: str) -> tuple[str, str] | None:
    """("context" | "namespace", NAME or "") for a k9s command line, else None."""
    words = text.split()
    if not words or words[0].lower() not in SWITCH_WORDS:
        return None
    if len(words) > 2:
        raise InputError(f"{words[0]} takes one name, e.g. {words[0]} NAME")
    return SWITCH_WORDS[words[0].lower()], words[1] if len(words) == 2 else ""


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:LISTED_NAMES])
    return shown + (", …" if len(names) > LISTED_NAMES else "")


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
        if len(words) == 2 and words[0].lower() in SWITCH_WORDS:
            return await self._switch_name(SWITCH_WORDS[words[0].lower()], value, last)
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
                if word is None and not before:
                    word = next((k for k in COMMAND_WORDS if k.startswith(last)), None)
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

    async def _switch_name(self, what: str, value: str, last: str) -> str | None:
        """A context after `ctx `, a namespace (of the dashboard's context) after `ns `."""
        try:
            if what == "context":
                found = await asyncio.wait_for(self.catalog.contexts(), CATALOG_SECONDS)
                choices = [c.name for c in found]
            else:
                choices = await asyncio.wait_for(
                    self.catalog.namespaces(self.context), CATALOG_SECONDS
                )
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
    """The forwards of a pasted command, or of the short form (`portfwd forward`'s
    arguments alone, kubectl port-forward's and portfwd's own flags: `svc/web 8080:80 -n
    demo --probe http:/healthz`). InputError with the reason."""
    if not text.strip():
        raise InputError("type a target and a port, e.g. svc/web 8080:80")
    programs = {os.path.basename(word) for word in text.split()}
    if not programs & FORWARDERS:  # no command named: the short form
        text = f"portfwd forward {text}"
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


async def _bounded(call: Awaitable[T], what: str) -> T:
    try:
        return await asyncio.wait_for(call, CHECK_SECONDS)
    except TimeoutError:
        raise PortfwdError(f"no answer listing {what} in {CHECK_SECONDS:.0f} s") from None


async def _context_namespace(catalog: Catalog, context: str) -> str:
    """The namespace a forward that names none runs in: its context's, else `default`."""
    found = await _bounded(catalog.contexts(), "the kubeconfig's contexts")
    choice = next((c for c in found if c.name == context or (not context and c.current)), None)
    return (choice.namespace if choice else "") or "default"


async def refuse(
    specs: list[ForwardSpec],
    catalog: Catalog,
    kubeconfig: str | None,
    taken: dict[int, str],
) -> None:
    """What `portfwd add` and the picker refuse, said before anything is added (an
    InputError): a local port in use, a target that does not exist now, a Service port it
    does not have. A target in a kubeconfig of its own is left to the engine (the catalog
    lists the dashboard's)."""
    wanted: dict[int, str] = {}
    for spec in specs:
        if spec.local_port:
            port = spec.local_port
            if port in wanted:
                raise InputError(f"local port {port} is given twice")
            check = await check_port_all(str(port), spec.addresses, taken, note_public=False)
            if not check.ok:
                raise InputError(f"local port {check.message}; nothing added")
            wanted[port] = spec.target
    for spec in {(s.context, s.namespace, s.target): s for s in specs}.values():
        if spec.kubeconfig != kubeconfig:
            continue
        prefix, _, name = spec.target.rpartition("/")
        kind = kinds.target_kind(prefix) if prefix else kinds.POD
        if kind is None or not name:
            continue  # the engine says what is wrong with it
        context = spec.context or ""
        namespace = spec.namespace or await _context_namespace(catalog, context)
        try:
            ports = await _bounded(catalog.ports(context, namespace, kind.name, name), spec.target)
        except PortfwdError as exc:
            raise InputError(f"{spec.target} in {namespace}: {exc}; nothing added") from None
        mine = [
            s.remote_port
            for s in specs
            if (s.context, s.namespace, s.target) == (spec.context, spec.namespace, spec.target)
        ]
        for remote in mine:
            _check_remote(spec.target, kind, remote, ports)


def _check_remote(
    target: str, kind: kinds.Kind, remote: int | str, ports: list[PortChoice]
) -> None:
    """A Service forwards only the ports it declares (TCP); a pod any number, but a named
    port must be declared."""
    if isinstance(remote, str):
        found = next((p for p in ports if p.name == remote), None)
    else:
        found = next((p for p in ports if p.port == remote), None)
        if found is None and kind is not kinds.SERVICE:
            return
    declared = (
        ", ".join(f"{p.port}/{p.protocol}" + (f" ({p.name})" if p.name else "") for p in ports)
        or "none"
    )
    if found is None:
        raise InputError(f"{target} has no port {remote} (ports: {declared}); nothing added")
    if found.disabled_reason:
        raise InputError(f"{target} port {remote}: {found.disabled_reason}; nothing added")


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

    def __init__(self, initial: str = "") -> None:
        super().__init__(id="quick-add")
        self._initial = initial  # `ctx ` / `ns ` from the palette

    def compose(self) -> ComposeResult:
        app = self.papp
        context = app.context_name or "(current)"
        where = f"context {context}, namespace {app.default_namespace or '(default)'}"
        with Vertical(id="quick-add-box"):
            yield Static("", id="quick-add-error", markup=False)
            with Horizontal(id="quick-add-line"):
                yield Label(":", id="quick-add-colon")
                yield Input(
                    self._initial,
                    id="quick-add-input",
                    placeholder=f"svc/NAME LOCAL:REMOTE [-n NS] [--context C]  ({where})",
                    suggester=LineSuggester(
                        self.catalog, app.context_name, app.default_namespace or "default"
                    ),
                )
            yield Static(f"{HINT} · ctx NAME / ns NAME switch", id="quick-add-hint", markup=False)

    checking = False  # a submitted line is being checked (tests wait on it)

    def on_mount(self) -> None:
        self.query_one("#quick-add-error", Static).display = False
        self.query_one("#quick-add-input", Input).focus()

    @on(Input.Changed)
    def _changed(self) -> None:
        self.query_one("#quick-add-error", Static).display = False

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit(event.value)

    @work(exclusive=True, group="quick-add")
    async def _submit(self, line: str) -> None:
        """Check before anything is added: an error stays in the prompt, one line."""
        app = self.papp
        self.checking = True
        try:
            switch = parse_switch(line)
            if switch is not None:
                await self._switch(*switch)
                return
            taken = {s.spec.name for s in app.engine.snapshot() if s.spec.name}
            specs = with_defaults(
                parse_line(line, taken),
                context=app.context_name or None,
                namespace=app.default_namespace,
                kubeconfig=app.spec_kubeconfig,
                protocol=app.protocol,
            )
            await refuse(specs, self.catalog, app.spec_kubeconfig, app.taken_ports())
        except PortfwdError as exc:
            self.show_error(str(exc))
            return
        finally:
            self.checking = False
        self.dismiss(specs)

    async def _switch(self, what: str, name: str) -> None:
        """`ctx NAME` / `ns NAME`: checked against the kubeconfig / the cluster first."""
        app = self.papp
        catalog = self.catalog
        if what == "context":
            found = await _bounded(catalog.contexts(), "the kubeconfig's contexts")
            choice = next((c for c in found if c.name == name), None)
            if choice is None:
                listed = _some([c.name for c in found])
                raise InputError(
                    f"no context {name!r} in the kubeconfig (contexts: {listed})"
                    if name
                    else f"type a context: {listed}"
                )
            app.switch_context(choice)
        else:
            context = app.context_name
            names: list[str]
            try:
                names = await _bounded(catalog.namespaces(context), "the namespaces")
            except ListForbidden:
                names = [name]  # may not list them: take the name as typed
            if not name or name not in names:
                where = f"context {context}" if context else "the current context"
                raise InputError(
                    f"no namespace {name!r} in {where} (namespaces: {_some(names)})"
                    if name
                    else f"type a namespace: {_some(names)}"
                )
            app.switch_namespace(name)
        self.dismiss(None)

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
