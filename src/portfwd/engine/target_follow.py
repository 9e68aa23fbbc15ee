"""How a started forward follows its target: the supervisor's loop after the first start.

It waits for something to re-evaluate (a watch event, a tunnel fault, a retry timer, a
reloaded kubeconfig), asks the watch caches (`follow.py`) or, without a watch, the API server
which pod to use, probes the tunnel when it failed (`health.py`), and turns the outcome into
the forward's state: ACTIVE on a Ready pod, RECONNECTING with a backoff while none is usable,
ERROR while the target is gone, or the end of the supervisor when no retry can help.

It is a part of the forward, not a machine of its own: it reads and writes the forward's state
(pod, route, backoff, retry timer) and only owns the Follower, which lives as long as the loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from portfwd.engine.events import ForwardChanged
from portfwd.engine.follow import Follower, Gone, Outcome, Ready, Syncing, Unwatched, Waiting
from portfwd.engine.health import GiveUp, Retry, pod_check, transient
from portfwd.engine.model import ForwardState, LogKind, LogLevel
from portfwd.errors import NoReadyPod, PortfwdError
from portfwd.kube.errors import Forbidden, Unauthorized
from portfwd.kube.resolve import Resolution, resolve

if TYPE_CHECKING:
    from portfwd.engine.forward import Forward


class TargetFollow:
    """One forward's follow loop, its evaluation and how an outcome becomes its state."""

    def __init__(self, fwd: Forward) -> None:
        self._fwd = fwd
        self.follower: Follower | None = None  # the watch caches, while the loop runs

    async def run(self) -> None:
        """React to watch events, tunnel faults and retry timers until stopped or given up."""
        fwd = self._fwd
        assert fwd._client is not None and fwd._target is not None
        self.follower = self.new_follower()
        loop = asyncio.get_running_loop()
        config = fwd.config_follow
        try:
            while True:
                fired = False
                if fwd._retry_at is None:
                    await fwd._wake.wait()
                else:
                    try:
                        async with asyncio.timeout_at(fwd._retry_at):
                            await fwd._wake.wait()
                    except TimeoutError:
                        fired = True
                fwd._wake.clear()
                if fwd._idler is not None and fwd._idler.due:
                    return  # quiet long enough: doze or stop (see Forward._run)
                if fired or (fwd._retry_at is not None and loop.time() >= fwd._retry_at):
                    fired, fwd._retry_at = True, None
                if not fwd.serving and (
                    fired or fwd.state is ForwardState.RECONNECTING or config.error
                ):
                    config.check()  # a reconnect attempt: did the file change?
                if config.next_client is not None:
                    config.move_to(config.next_client)
                if config.error is not None:
                    await config.broken(config.error)
                    continue
                health = fwd.health
                if health.fatal is not None:
                    raise GiveUp(health.fatal)
                if not fwd.spec.reconnect and (
                    fwd.state is ForwardState.ERROR
                    or (fwd.state is ForwardState.RECONNECTING and fwd.router.route is None)
                ):
                    raise GiveUp(fwd.reason or "auto-reconnect is off")
                if fwd._revalidate_reason is not None:
                    fwd.add_log(LogLevel.INFO, f"re-validating: {fwd._revalidate_reason}")
                    fwd._revalidate_reason = None
                    health.fault = health.fault or "re-validating"  # probe the tunnel too
                outcome = await self.evaluate(fired)
                if outcome is not None and not await self.apply(outcome):
                    return
        finally:
            self.close_follower()

    def close_follower(self) -> None:
        """Stop watching (the loop ended, or the watches move to a new client)."""
        follower, self.follower = self.follower, None
        if follower is not None:
            follower.close()

    def new_follower(self) -> Follower | None:
        fwd = self._fwd
        if fwd._informers is None:
            return None
        assert fwd._client is not None and fwd._target is not None
        follower = Follower(
            fwd._informers,
            fwd._client,
            fwd.namespace,
            fwd._target,
            fwd.spec.remote_port,
            fwd._wake,
        )
        follower.start()
        return follower

    async def evaluate(self, fired: bool) -> Outcome | Retry | None:
        fwd = self._fwd
        follower = self.follower
        if follower is not None:
            outcome = follower.evaluate(fwd.pod or None)
            if isinstance(outcome, Unwatched):
                fwd.add_log(
                    LogLevel.WARNING,
                    f"{outcome.reason}; following the target only when connections fail",
                )
                follower.close()
                self.follower = None
                return await self.evaluate(True)
            if isinstance(outcome, Syncing):
                return None  # no opinion until the caches are filled
            health = fwd.health
            if isinstance(outcome, Ready) and (health.fault is not None or fired):
                same_pod = outcome.resolution.pod.name == health.fault_pod
                if not fired and fwd._retry_at is not None and same_pod:
                    return None  # the backoff timer decides when to probe this pod again
                result, name = await health.probe_each(
                    fwd.router.tunnel, follower, outcome.resolution, self._warn
                )
                fwd._note_tunnel(name)
                return result
            return outcome
        # Without a watch: ask the API, but only when something suggests a change.
        if not fired and fwd.health.fault is None:
            return None
        assert fwd._client is not None and fwd._target is not None
        try:
            resolution = await resolve(
                fwd._client, fwd.namespace, fwd._target, fwd.spec.remote_port
            )
        except (Forbidden, Unauthorized) as exc:
            raise GiveUp(str(exc)) from None
        except NoReadyPod as exc:
            return Retry(str(exc))
        except PortfwdError as exc:
            if transient(exc):
                return Retry(str(exc))
            return Gone(str(exc))
        checked = pod_check(fwd._target, resolution)
        if isinstance(checked, Ready):
            result, name = await fwd.health.probe(fwd.router.tunnel, resolution)
            fwd._note_tunnel(name)
            return result
        return checked

    def _warn(self, text: str) -> None:
        self._fwd.add_log(LogLevel.WARNING, text)

    async def apply(self, outcome: Outcome | Retry) -> bool:
        """Turn an outcome into state; False when the forward gave up (reconnect off)."""
        fwd = self._fwd
        if isinstance(outcome, Ready):
            previous = fwd.pod or fwd._last_pod
            moved = previous and outcome.resolution.pod.name != previous
            if not fwd.spec.reconnect and fwd._been_active and moved:
                # kubectl's way: a forward is bound to the pod it started with.
                await fwd._give_up(
                    f"lost pod {previous} (deleted or no longer Ready); auto-reconnect is off"
                )
                return False
            self._become_active(outcome.resolution)
            return True
        if isinstance(outcome, Gone):
            if not fwd.spec.reconnect:
                await fwd._give_up(outcome.reason)
                return False
            fwd._clear_route()
            fwd._retry_at = None
            if fwd.state is not ForwardState.ERROR or fwd.reason != outcome.message:
                # ERROR, but not final: the kind says the forward waits for its target.
                fwd.add_log(LogLevel.ERROR, outcome.message, LogKind.GONE)
                fwd._set_state(ForwardState.ERROR, outcome.message)
            return True
        if not isinstance(outcome, Retry | Waiting):
            return True
        if not fwd.spec.reconnect and outcome.usable is None:
            await fwd._give_up(outcome.reason)
            return False
        if outcome.usable is not None:
            self._use(outcome.usable)
        else:
            fwd._clear_route()
        loop = asyncio.get_running_loop()
        next_at: float | None
        if isinstance(outcome, Retry):
            delay = fwd._backoff.failure()
            fwd._retry_at = loop.time() + delay
            attempt, next_at = fwd._backoff.attempt, time.time() + delay
        else:
            fwd._retry_at = None if fwd.health.fault is None else fwd._retry_at
            attempt, next_at = outcome.attempt, outcome.next_retry_at
        # One log line per new episode or retry; a reason that only changes its details
        # (pod counts while a rollout goes on) updates the state silently.
        changed = fwd.state is not ForwardState.RECONNECTING or fwd.attempt != attempt
        retry_moved = fwd.next_retry_at != next_at
        fwd.attempt, fwd.next_retry_at = attempt, next_at
        if changed:
            if next_at is not None:
                when = max(0.0, next_at - time.time())
                fwd.add_log(
                    LogLevel.WARNING,
                    f"reconnecting (attempt {attempt}, next try in {when:.1f} s): {outcome.reason}",
                    LogKind.RECONNECTING,
                )
            else:
                fwd.add_log(LogLevel.WARNING, f"waiting: {outcome.reason}", LogKind.WAITING)
        if changed or retry_moved or fwd.reason != outcome.reason:
            fwd.state, fwd.reason = ForwardState.RECONNECTING, outcome.reason
            fwd.started_at = None  # not active: no uptime while it is down
            fwd._publish(ForwardChanged(fwd.snapshot()))
        return True

    def _become_active(self, resolution: Resolution) -> None:
        fwd = self._fwd
        old, was = fwd.pod or fwd._last_pod, fwd.state
        moved = old != resolution.pod.name or fwd.remote_port != resolution.container_port
        fwd.health.healed()  # before _use: it wakes connections waiting for a healed route
        self._use(resolution)
        fwd._retry_at = None
        fwd._backoff.success()
        was_serving = was in (ForwardState.ACTIVE, ForwardState.DEGRADED)
        if was_serving and not moved:
            return
        if fwd._been_active:
            if not was_serving:
                fwd.reconnects += 1  # a recovery; a pod switch while active is not one
            if moved and old:
                fwd.add_log(
                    LogLevel.INFO,
                    f"switched to pod {resolution.pod.name} port {resolution.container_port}"
                    f" (was {old})",
                    LogKind.RECOVERED,
                )
            else:
                fwd.add_log(
                    LogLevel.INFO,
                    f"active again: pod {resolution.pod.name} port {resolution.container_port}",
                    LogKind.RECOVERED,
                )
        fwd._been_active = True
        if not was_serving or fwd.started_at is None:
            fwd.started_at = time.time()
        fwd._set_state(ForwardState.ACTIVE)
        fwd.watch.became_serving()

    def _use(self, resolution: Resolution) -> None:
        fwd = self._fwd
        fwd.watch.resolved(resolution.pod.name, resolution.pod.ready)
        fwd.pod = resolution.pod.name
        fwd.remote_port = resolution.container_port
        fwd.port_name = resolution.port_name
        fwd.router.use(fwd.namespace, resolution)
        if fwd.spec.spread:
            follower = self.follower
            spread = follower.spread() if follower is not None else []
            if not any(r.pod.name == resolution.pod.name for r in spread):
                spread = [resolution]  # a probe chose it, or no watch: the route alone
            before = [r.pod.name for r in fwd.router.spread]
            fwd.router.use_spread(fwd.namespace, spread)
            names = [r.pod.name for r in spread]
            if names != before:
                fwd.add_log(
                    LogLevel.INFO,
                    f"spreading new connections over {len(names)} pod(s): {', '.join(names)}",
                    LogKind.RESOLVED,
                )
