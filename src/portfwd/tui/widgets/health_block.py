"""The detail pane's "Health per layer" block: one line per layer, its verdict and its time.

A forward that says active while nothing answers is the complaint this answers: each layer
(listener, target, tunnel, the pod's port, credentials, traffic) has its own line, so the
broken one is named. Countdowns (the credential's time left) are computed here from the
snapshot's times, so the engine does not publish a snapshot per second. Pure: a Rich `Text`
from a snapshot (the pane composes it with a one-line hook).
"""

from __future__ import annotations

from datetime import tzinfo

from rich.text import Text

from portfwd.engine.model import ForwardSnapshot, ForwardState, HealthFacts
from portfwd.humanize import human_duration
from portfwd.kube.expiry import EXPIRY_WARNING
from portfwd.safetext import escape_controls
from portfwd.tui.format import log_time

OK = ("✓", "green")
BAD = ("✗", "bold red")
WARN = ("!", "bold yellow")
NONE = ("·", "grey50")
LABEL_WIDTH = 12


def ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


def _when(ts: float, now: float, tz: tzinfo | None) -> str:
    ago = now - ts
    return f"{log_time(ts, tz)[:8]} ({human_duration(ago)} ago)" if ago >= 0 else log_time(ts, tz)


def _line(text: Text, label: str, mark: tuple[str, str], body: str, when: str = "") -> None:
    if text.plain:
        text.append("\n")
    text.append(f"{label:<{LABEL_WIDTH}}", style="dim")
    text.append(mark[0], style=mark[1])
    text.append(f" {body}")
    if when:
        text.append(f" · {when}", style="grey62")


def health_block(snap: ForwardSnapshot, now: float, tz: tzinfo | None = None) -> Text:
    facts = snap.health
    text = Text()
    running = snap.state not in (ForwardState.STOPPED, ForwardState.ERROR) or bool(snap.bound)
    # listener
    if snap.bound:
        where = ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in snap.bound)
        when = f"bound {_when(facts.listening_at, now, tz)}" if facts.listening_at else ""
        _line(text, "listener", OK, escape_controls(where), when)
    else:
        _line(text, "listener", NONE, "not bound")
    # target
    if snap.pod:
        ready = facts.pod_ready
        mark = OK if ready else WARN if ready is False else NONE
        word = "Ready" if ready else "not Ready" if ready is False else ""
        body = f"pod {escape_controls(snap.pod)} {word}".rstrip()
        when = f"resolved {_when(facts.resolved_at, now, tz)}" if facts.resolved_at else ""
        _line(text, "target", mark, body, when)
    else:
        _line(text, "target", BAD if running else NONE, "no pod in use")
    _tunnel(text, snap, facts, now, tz)
    _probe(text, snap, facts, now, tz)
    _credentials(text, facts, now, tz)
    _traffic(text, facts, now)
    return text


def _tunnel(
    text: Text, snap: ForwardSnapshot, facts: HealthFacts, now: float, tz: tzinfo | None
) -> None:
    verified = f"verified {_when(facts.verified_at, now, tz)}" if facts.verified_at else ""
    if facts.ping_at is not None and facts.ping_rtt is not None:
        when = f"{human_duration(now - facts.ping_at)} ago"
        _line(text, "tunnel", OK, f"PING {ms(facts.ping_rtt)}", when)
    elif facts.verified_at is not None and snap.pod:
        how = "no PING on v4 (a WebSocket per connection)" if "v4" in snap.tunnel else "no PING yet"
        _line(text, "tunnel", OK, how, verified)
    else:
        _line(text, "tunnel", NONE, "not verified yet")


def _probe(
    text: Text, snap: ForwardSnapshot, facts: HealthFacts, now: float, tz: tzinfo | None
) -> None:
    probe = snap.spec.probe
    if not probe:
        _line(text, "pod port", NONE, "no probe (--probe tcp or http:/PATH)")
        return
    every = f"every {snap.spec.probe_interval:g} s"
    if facts.probe_ok is None or facts.probe_at is None:
        _line(text, "pod port", NONE, f"probe {probe} {every}: not run yet")
        return
    body = f"probe {probe}: {escape_controls(facts.probe_result)}"
    when = f"{human_duration(now - facts.probe_at)} ago, {every}"
    if facts.probe_ok:
        _line(text, "pod port", OK, body, when)
        return
    if facts.probe_ok_at is not None:
        when += f"; last answered {_when(facts.probe_ok_at, now, tz)}"
    else:
        when += "; never answered"
    _line(text, "pod port", BAD, body, when)


def _credentials(text: Text, facts: HealthFacts, now: float, tz: tzinfo | None) -> None:
    kind = escape_controls(facts.credential)
    if not kind:
        _line(text, "credentials", NONE, "nothing known")
        return
    expires = facts.credential_expires_at
    refreshed = facts.credential_refreshed_at
    got = f"refreshed {_when(refreshed, now, tz)}" if refreshed is not None else ""
    if expires is None:
        _line(text, "credentials", OK, f"{kind}, no expiry known", got)
        return
    left = expires - now
    at = log_time(expires, tz)[:8]
    if left <= 0:
        _line(text, "credentials", BAD, f"{kind} expired at {at}", got)
        return
    mark = OK
    if refreshed is None and left < EXPIRY_WARNING:
        mark = WARN  # a certificate or static token: nothing here can renew it
    countdown = f"{int(left)}s" if left < 120 else human_duration(left)
    _line(text, "credentials", mark, f"{kind}, expires in {countdown} ({at})", got)


def _traffic(text: Text, facts: HealthFacts, now: float) -> None:
    parts = []
    for arrow, ts in (("↓", facts.last_in_at), ("↑", facts.last_out_at)):
        parts.append(f"{arrow} {human_duration(now - ts)} ago" if ts is not None else f"{arrow} -")
    if facts.last_in_at is None and facts.last_out_at is None:
        _line(text, "traffic", NONE, "no byte yet")
    else:
        _line(text, "traffic", OK, "last byte " + "  ".join(parts))
