"""A forward's health per layer, with times, and the task that keeps it fresh.

Each layer has its own fact, so "active" never hides which one is broken: the listener
(bound when), the target (which pod, Ready, resolved when), the tunnel (the last answered PING
and its round trip; verified end to end when), the pod's port (the probe, when configured),
the credentials (what they are, when they run out) and the traffic (last byte each way).

:class:`HealthWatch` is one task per started forward. It probes the pod's port every
`probe_interval` (when the spec has a probe), runs an exec credential plugin again before its
credential runs out, and republishes the forward's snapshot when a fact changed (checked every
:data:`FACTS_POLL` seconds; the last-byte times only every :data:`BYTES_PRECISION` seconds, so
a busy forward does not publish a snapshot per poll). A probe's verdict moves the forward
between `active` and `degraded` through the forward itself (`probe_changed`), with one log
line per change, never one per probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Protocol

from portfwd.engine.model import HealthFacts, LogKind, LogLevel
from portfwd.engine.probe import ProbeResult, probe_timeout, run_probe
from portfwd.engine.probe_spec import ProbeSpec, parse_probe
from portfwd.kube.auth import AuthProvider
from portfwd.kube.expiry import (
    EXPIRY_WARNING,
    credential_facts,
    refresh_due_at,
    refresh_if_due,
)
from portfwd.tunnel.protocol import TunnelStream

log = logging.getLogger(__name__)

FACTS_POLL = 5.0
BYTES_PRECISION = 30.0


class Watched(Protocol):
    """What the watch needs of its forward (engine/watch_link.py's WatchLink)."""

    @property
    def serving(self) -> bool:
        """ACTIVE or DEGRADED: a pod to probe."""
        ...

    def last_ping(self) -> tuple[float, float] | None: ...

    def last_bytes(self) -> tuple[float | None, float | None]: ...

    def auth(self) -> AuthProvider | None: ...

    async def open_probe_stream(self) -> TunnelStream: ...

    def probe_changed(self, fault: str | None) -> None: ...

    def facts_changed(self) -> None: ...

    def add_log(self, level: LogLevel, message: str, kind: LogKind = LogKind.NOTE) -> None: ...


class HealthWatch:
    def __init__(self, owner: Watched, probe: str = "", interval: float = 10.0) -> None:
        self.owner = owner
        self.listening_at: float | None = None
        self.resolved_at: float | None = None
        self.pod_ready: bool | None = None
        self._resolved_pod = ""
        self.verified_at: float | None = None
        self.last_probe: ProbeResult | None = None
        self.probe_at: float | None = None
        self.probe_ok_at: float | None = None
        self.fault: str | None = None  # the failing probe's reason while it fails
        self._task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._seen: tuple[object, ...] | None = None
        self._said: set[tuple[str, object]] = set()  # credential warnings already logged
        self.configure(probe, interval)

    def configure(self, probe: str, interval: float) -> None:
        """The spec's probe (its text) and interval; applied from the next probe on."""
        self.probe: ProbeSpec | None = parse_probe(probe)
        self.interval = interval
        if self.probe is None:
            self.last_probe = None
            self.probe_at = self.probe_ok_at = None
            if self.fault is not None:
                self.fault = None
                self.owner.probe_changed(None)
        self._kick.set()

    # -- facts the forward reports --------------------------------------------------------

    def listening(self) -> None:
        self.listening_at = time.time()

    def resolved(self, pod: str, ready: bool) -> None:
        if pod != self._resolved_pod or ready != self.pod_ready:
            self._resolved_pod, self.pod_ready = pod, ready
            self.resolved_at = time.time()
            self._kick.set()  # another pod: probe it now

    def verified(self) -> None:
        self.verified_at = time.time()

    def became_serving(self) -> None:
        self._kick.set()

    def facts(self) -> HealthFacts:
        owner = self.owner
        ping = owner.last_ping()
        last_in, last_out = owner.last_bytes()
        auth = owner.auth()
        cred = credential_facts(auth) if auth is not None else None
        probe = self.last_probe
        return HealthFacts(
            listening_at=self.listening_at,
            resolved_at=self.resolved_at,
            pod_ready=self.pod_ready,
            ping_at=ping[0] if ping else None,
            ping_rtt=ping[1] if ping else None,
            verified_at=self.verified_at,
            probe_at=self.probe_at,
            probe_ok=probe.ok if probe is not None else None,
            probe_result=probe.text if probe is not None else "",
            probe_ok_at=self.probe_ok_at,
            credential=_credential_text(cred.kind, cred.refresh_error) if cred else "",
            credential_expires_at=cred.expires_at if cred else None,
            credential_refreshed_at=cred.refreshed_at if cred else None,
            last_in_at=last_in,
            last_out_at=last_out,
        )

    # -- the task -------------------------------------------------------------------------

    def restart(self, probe: str, interval: float) -> None:
        """A (re)start of the forward: the spec's probe, nothing known of the pod's port yet,
        and the task running."""
        self.last_probe, self.fault = None, None
        self.probe_at = self.probe_ok_at = None
        self._resolved_pod, self.pod_ready, self.resolved_at = "", None, None
        self.configure(probe, interval)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="forward-health")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait({task})

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_probe = loop.time()
        while True:
            wait = FACTS_POLL
            if self.probe is not None and self.owner.serving:
                wait = min(wait, next_probe - loop.time())
            auth = self.owner.auth()
            due = refresh_due_at(auth) if auth is not None else None
            if due is not None:
                wait = min(wait, due - time.time())
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._kick.wait()
            if self._kick.is_set():
                self._kick.clear()
                next_probe = loop.time()  # something changed: probe now
            try:
                if auth is not None and await refresh_if_due(auth):
                    self._refreshed(auth)
                if auth is not None:
                    self._warn_expiry(auth)
                if self.probe is not None and self.owner.serving and loop.time() >= next_probe:
                    await self._probe(self.probe)
                    next_probe = loop.time() + self.interval
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug: the forward goes on, its health is just not watched
                log.exception("the health watch of a forward failed")
                await asyncio.sleep(FACTS_POLL)
            self._publish_if_changed()

    async def _probe(self, probe: ProbeSpec) -> None:
        result = await run_probe(
            self.owner.open_probe_stream, probe, within=probe_timeout(self.interval)
        )
        if not self.owner.serving:
            return  # the forward went down meanwhile: the verdict is about nothing now
        first = self.last_probe is None
        self.last_probe, self.probe_at = result, time.time()
        if result.ok:
            self.probe_ok_at = self.probe_at
        fault = None if result.ok else f"probe {probe.text}: {result.text}"
        if fault != self.fault:
            was, self.fault = self.fault, fault
            if fault is None:
                self.owner.add_log(
                    LogLevel.INFO,
                    f"probe {probe.text} answers ({result.text})"
                    + ("" if was is None else ": active again"),
                    LogKind.HEALTH,
                )
            else:
                self.owner.add_log(LogLevel.WARNING, f"degraded: {fault}", LogKind.HEALTH)
            self.owner.probe_changed(fault)
        elif first and result.ok:
            self.owner.add_log(
                LogLevel.INFO, f"probe {probe.text} answers ({result.text})", LogKind.HEALTH
            )

    def _refreshed(self, auth: AuthProvider) -> None:
        cred = credential_facts(auth)
        until = ""
        if cred is not None and cred.expires_at is not None:
            until = f", valid until {time.strftime('%H:%M:%S', time.localtime(cred.expires_at))}"
        kind = cred.kind if cred is not None else "credential"
        self.owner.add_log(
            LogLevel.INFO, f"credentials refreshed before they ran out ({kind}{until})"
        )

    def _warn_expiry(self, auth: AuthProvider) -> None:
        """Once per credential: it runs out soon and nothing here can renew it, or an early
        refresh failed (the old one is still used until it expires)."""
        cred = credential_facts(auth)
        if cred is None:
            return
        if cred.refresh_error and ("error", cred.refresh_error) not in self._said:
            self._said.add(("error", cred.refresh_error))
            self.owner.add_log(
                LogLevel.WARNING,
                f"refreshing the credentials before they run out failed: {cred.refresh_error}",
                LogKind.HEALTH,
            )
        expires = cred.expires_at
        if expires is None or cred.refreshable or ("soon", expires) in self._said:
            return
        left = expires - time.time()
        if left < EXPIRY_WARNING:
            self._said.add(("soon", expires))
            at = time.strftime("%H:%M:%S", time.localtime(expires))
            when = f"in {int(left // 60)} min ({at})" if left > 0 else f"at {at}: they expired"
            self.owner.add_log(
                LogLevel.WARNING,
                f"the credentials ({cred.kind}) run out {when}; renew them in the kubeconfig",
                LogKind.HEALTH,
            )

    def published(self, facts: HealthFacts) -> None:
        """The forward published a snapshot with these facts: the watch publishes again only
        when they changed since."""
        self._seen = _key(facts)

    def _publish_if_changed(self) -> None:
        if _key(self.facts()) != self._seen:
            self.owner.facts_changed()  # which calls published()


def _key(facts: HealthFacts) -> tuple[object, ...]:
    """What makes a new snapshot worth publishing (not the probe's time when it keeps
    answering the same; the last bytes to BYTES_PRECISION)."""
    return (
        facts.ping_at,
        facts.probe_result,
        facts.probe_ok,
        facts.probe_ok_at if not facts.probe_ok else None,
        facts.credential,
        facts.credential_expires_at,
        _bucket(facts.last_in_at),
        _bucket(facts.last_out_at),
    )


def _bucket(when: float | None) -> int | None:
    return None if when is None else int(when // BYTES_PRECISION)


def _credential_text(kind: str, error: str | None) -> str:
    return kind + (f" (refresh failed: {error})" if error else "")
