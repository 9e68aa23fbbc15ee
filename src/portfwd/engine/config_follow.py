"""How a forward follows its kubeconfig: a reloaded context moves it, a broken one halts it.

The client pool reloads a context when its file changes (new server, CA or credentials) and
says so to every forward (`ContextChange`). The forward that used the old client moves its
tunnel and watches to the new one and keeps its port; while the context cannot be loaded it
is ERROR with the loader's reason, checked again on a backoff, until the file is fixed.

The pool's callback only records what changed and wakes the supervisor: the move itself is
done in the supervisor's loop (`target_follow.py`), between two evaluations, so a connection or a
probe never sees half a move.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from portfwd.engine.clients import ContextChange
from portfwd.engine.health import GiveUp
from portfwd.engine.model import ForwardState, LogKind, LogLevel
from portfwd.kube.client import KubeClient
from portfwd.kube.targets import printable

if TYPE_CHECKING:
    from portfwd.engine.forward import Forward


class ConfigFollow:
    """One forward's view of its kubeconfig: the client to move to, or why none loads.

    It shares the forward's supervisor state (client, follower, backoff, retry timer): a
    reload is one more event of the same state machine, not a machine of its own.
    """

    def __init__(self, fwd: Forward) -> None:
        self._fwd = fwd
        self.next_client: KubeClient | None = None  # the kubeconfig changed: move over
        self.error: str | None = None  # the kubeconfig cannot be loaded right now

    def reset(self) -> None:
        """A start loads the context itself: what an earlier run heard no longer applies."""
        self.next_client = self.error = None

    def changed(self, change: ContextChange) -> bool:
        """The kubeconfig of a context changed (the client pool says so): True when it is
        this forward's; it moves to the new client, or shows the error, in its supervisor."""
        fwd = self._fwd
        if not fwd.wanted or fwd._client is None or fwd._client is not change.old:
            return False
        if change.error:
            self.error = change.error
        else:
            self.error = None
            self.next_client = change.new if change.reloaded else None
            fwd.health.fault = fwd.health.fault or "the kubeconfig changed"  # probe again
            fwd._backoff.reset()
            fwd._retry_at = None
        fwd._wake.set()
        return True

    def check(self) -> None:
        """Have the pool look at the files, in the background (a stat; a read when they
        changed): the answer comes back through `changed`, never delaying this evaluation."""
        fwd = self._fwd
        refresh = getattr(fwd._clients, "refresh_soon", None)  # test pools may lack it
        if refresh is not None:
            refresh(fwd.spec.context, fwd.spec.kubeconfig)

    def move_to(self, client: KubeClient) -> None:
        """The context was loaded again with new content: new connections, tunnels and
        watches use the new client; connections open on the old one finish there."""
        fwd = self._fwd
        self.next_client = None
        fwd._clear_route()  # releases this forward's hold on the old client's sessions
        following = fwd.target_follow
        following.close_follower()
        fwd._use_client(client)
        following.follower = following.new_follower()
        fwd._retry_at = None
        fwd.add_log(
            LogLevel.INFO,
            f"kubeconfig changed: context {printable(client.context)} reloaded"
            f" (server {printable(client.conn.server)})",
            LogKind.RESOLVED,
        )

    async def broken(self, error: str) -> None:
        """ERROR with the loader's reason while the kubeconfig cannot be loaded; the port
        stays bound and the file is checked again on a backoff (and by the watcher)."""
        fwd = self._fwd
        if not fwd.spec.reconnect:
            raise GiveUp(error)
        reason = f"{error} (the forward keeps its port and resumes when the kubeconfig is fixed)"
        if fwd.state is not ForwardState.ERROR or fwd.reason != reason:
            fwd._clear_route()
            fwd.add_log(LogLevel.ERROR, f"kubeconfig changed: {reason}", LogKind.GONE)
            fwd._set_state(ForwardState.ERROR, reason)
        loop = asyncio.get_running_loop()
        fwd._retry_at = loop.time() + fwd._backoff.failure()
