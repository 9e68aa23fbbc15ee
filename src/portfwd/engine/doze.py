"""What a lazy or idle_stop forward does when its Idler (lazy.py) says it is quiet or woken.

`lazy.py` keeps the clocks; these are the forward's steps between them: doze with the port
bound and nothing asked of the cluster, go idle after traffic stopped (tunnel and watches
released, port kept), or stop for good after idle_stop. They are the supervisor's
(forward.py's `_run`) and run inside it, so a stop cancels them like any other step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from portfwd.engine.health import GiveUp
from portfwd.engine.lazy import IDLE_STOP_MARK, Idler
from portfwd.engine.model import ForwardState, LogKind, LogLevel
from portfwd.errors import PortfwdError
from portfwd.humanize import duration_text

if TYPE_CHECKING:
    from portfwd.engine.forward import Forward


async def doze(fwd: Forward, idler: Idler) -> bool:
    """IDLE, port bound, nothing asked of the cluster, until a connection arrives (True)
    or idle_stop is due (False)."""
    if fwd._listeners is None:  # the first start of a lazy forward: bind only
        try:
            fwd._listeners = await fwd._bind(list(fwd.spec.bind_addresses))
        except PortfwdError as exc:
            raise GiveUp(str(exc)) from None
        fwd._said_bound(fwd.spec.remote_port)
        fwd.add_log(LogLevel.INFO, "lazy: the first connection opens the tunnel", LogKind.IDLE)
    fwd._set_state(ForwardState.IDLE)
    fwd._settled.set()
    if not await idler.sleep():
        return False
    fwd._revalidate_reason = None  # a sleep's revalidation: this start is a fresh one
    fwd.add_log(LogLevel.INFO, "a connection arrived: opening the tunnel", LogKind.IDLE)
    fwd._set_state(ForwardState.STARTING)
    return True


async def go_idle(fwd: Forward, idler: Idler) -> None:
    """Quiet for idle_after: watches closed (by the follow loop), tunnel released; port kept."""
    fwd._clear_route()
    await fwd.router.close()
    fwd._last_pod = ""
    fwd._been_active = False  # waking is a start, not a reconnect
    fwd._retry_at = None
    fwd._backoff.reset()
    fwd.health.reset()
    idler.fell_asleep()
    fwd.add_log(
        LogLevel.INFO,
        f"idle: no traffic for {duration_text(idler.idle_after)}; tunnel closed, port"
        f" {fwd.local_port} stays bound",
        LogKind.IDLE,
    )


async def idle_stopped(fwd: Forward, idler: Idler) -> None:
    """Quiet for idle_stop: unbind and stop, saying why (the supervisor ends)."""
    reason = f"no traffic for {duration_text(idler.idle_stop)} {IDLE_STOP_MARK}"
    fwd._clear_route()
    await fwd.router.close()
    await fwd._close_listeners()
    await fwd.connections.close_all()
    fwd.add_log(LogLevel.INFO, f"stopped: {reason}", LogKind.STOPPED)
    fwd._set_state(ForwardState.STOPPED, reason)
