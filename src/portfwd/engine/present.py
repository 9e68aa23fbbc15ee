"""How one forward reads, wherever it is shown: its kubectl command, its two sides, its uptime.

The dashboard and the profiles view (`y`), `portfwd ls`, `portfwd export` and the engine's
own log all word a forward through these pure functions, so one forward is one kubectl
command and one `local -> remote` everywhere. They return the text as it is: a caller that
puts it on a terminal escapes control characters (`portfwd.safetext`); the kubectl command
is already shell-quoted, so it pastes and runs as it is (a kubeconfig path with a space too).
"""

from __future__ import annotations

import shlex
from dataclasses import replace

from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState
from portfwd.humanize import human_duration
from portfwd.kube.targets import PortMapping
from portfwd.tunnel.addresses import LOCALHOST_ADDRESSES, format_host_port

# What kubectl listens on without --address: `localhost`, both loopback addresses.
KUBECTL_DEFAULT_ADDRESS = ("localhost",)
_LOOPBACK_PAIR = frozenset(LOCALHOST_ADDRESSES)


# --- the kubectl command ---------------------------------------------------------------------


def port_text(spec: ForwardSpec) -> str:
    """The port as kubectl writes it: `8080:80`, `80` (same both sides), `:80`, `:https`,
    or a bare `https` (the local port is the number the name resolves to)."""
    if spec.local_from_remote:
        return str(spec.remote_port)
    return str(PortMapping(local_port=spec.local_port, remote=spec.remote_port))


def _filled(spec: ForwardSpec, snap: ForwardSnapshot | None) -> ForwardSpec:
    """The spec with what a running forward settled: the local port it bound for `:80`."""
    if snap is not None and not spec.local_port and snap.local_port and not spec.local_from_remote:
        return replace(spec, local_port=snap.local_port)
    return spec


def kubectl_argv(spec: ForwardSpec, snap: ForwardSnapshot | None = None) -> list[str]:
    """The words of the equivalent `kubectl port-forward` (an environment assignment first
    for plain SPDY). With `snap`, a local port the spec left to the system is the bound one."""
    spec = _filled(spec, snap)
    words: list[str] = []
    if spec.protocol == "spdy":
        words.append("KUBECTL_PORT_FORWARD_WEBSOCKETS=false")
    words.append("kubectl")
    if spec.kubeconfig:
        words += ["--kubeconfig", spec.kubeconfig]
    if spec.context:
        words += ["--context", spec.context]
    if spec.namespace:
        words += ["-n", spec.namespace]
    words += ["port-forward", spec.target]
    if not _kubectl_default_address(spec.addresses):
        words += ["--address", ",".join(spec.addresses)]
    words.append(port_text(spec))
    return words


def _kubectl_default_address(addresses: tuple[str, ...]) -> bool:
    """What kubectl listens on without --address: `localhost` (any case), which is both
    loopback addresses, so also the two of them named."""
    named = {a.strip().lower() for a in addresses}
    return named == {"localhost"} or named == set(_LOOPBACK_PAIR) or not named


def _shell_path(word: str) -> str:
    """A path quoted for sh; a leading `~/` stays the home directory (`"$HOME"/...`)."""
    if word.startswith("~/"):
        return '"$HOME"/' + shlex.quote(word[2:])
    if word == "~":
        return '"$HOME"'
    return shlex.quote(word)


def kubectl_command(spec: ForwardSpec, snap: ForwardSnapshot | None = None) -> str:
    """One shell-quoted command line: what `y` copies, `export --format kubectl` writes and
    the engine logs when a forward starts."""
    words = kubectl_argv(spec, snap)
    quoted = [shlex.quote(w) for w in words]
    if "--kubeconfig" in words:  # a path: `~/` means the home directory, as for kubectl's users
        at = words.index("--kubeconfig") + 1
        quoted[at] = _shell_path(words[at])
    return " ".join(quoted)


# --- the two sides, the uptime -----------------------------------------------------------------


def local_side(snap: ForwardSnapshot) -> str:
    """Where it listens: `localhost:8080` for both loopback addresses on one port (what
    `localhost` means), else every address (`127.0.0.1:8080`, `[::]:8080`); before it binds,
    what it asks for (`localhost:auto`)."""
    if snap.bound:
        ports = {p for _, p in snap.bound}
        if len(ports) == 1 and {a for a, _ in snap.bound} == _LOOPBACK_PAIR:
            return f"localhost:{snap.bound[0][1]}"
        return ", ".join(format_host_port(a, p) for a, p in snap.bound)
    port = str(snap.spec.local_port or "auto")
    addresses = snap.spec.addresses or KUBECTL_DEFAULT_ADDRESS
    return ", ".join(f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in addresses)


def loopback_only(snap: ForwardSnapshot) -> bool:
    """It listens (or will) on loopback addresses only: no other machine can reach it."""
    hosts = {a for a, _ in snap.bound} if snap.bound else set(snap.spec.addresses)
    return bool(hosts) and all(
        h == "localhost" or h in _LOOPBACK_PAIR or h.startswith("127.") for h in hosts
    )


def local_compact(snap: ForwardSnapshot) -> str:
    """The narrow form: the port alone while it listens on loopback only (an address other
    machines can reach is always shown)."""
    if not loopback_only(snap):
        return local_side(snap)
    return str(snap.local_port or "auto")


def remote_side(snap: ForwardSnapshot) -> str:
    """The remote side: what the user asked for, and what it resolved to
    (`80 → 9000 (echo)`: a Service port 80 whose targetPort is the container port echo)."""
    asked = str(snap.spec.remote_port)
    if not snap.remote_port:
        return asked
    resolved = str(snap.remote_port)
    name = snap.port_name
    named = f" ({name})" if name else ""
    if asked not in (resolved, name):
        return f"{asked} → {resolved}{named}"
    return resolved + named


def remote_compact(snap: ForwardSnapshot) -> str:
    """The narrow form: `80→9000`, without the port's name."""
    asked = str(snap.spec.remote_port)
    if snap.remote_port and asked != str(snap.remote_port):
        return f"{asked}→{snap.remote_port}"
    return str(snap.remote_port or asked)


def uptime(snap: ForwardSnapshot, now: float) -> str:
    """How long it has been active; "-" in any other state (a reconnecting forward is not up,
    whatever its last start was)."""
    if snap.state in (ForwardState.ACTIVE, ForwardState.DEGRADED) and snap.started_at:
        return human_duration(now - snap.started_at)
    return "-"


def forward_label(snap: ForwardSnapshot) -> str:
    """Short name for toasts, titles and messages: `svc/echo 8080→80`."""
    return f"{snap.spec.target} {snap.local_port or 'auto'}→{snap.spec.remote_port}"
