"""`portfwd forward --pod-running-timeout DURATION`: kubectl port-forward's flag, so a command
line carried over from kubectl works, with kubectl's meaning: wait up to DURATION for the
target to have a pod that can take the forward before giving up.

Without the flag portfwd fails at once when no pod is Ready (its own default, README); with it,
the target is resolved again with a growing pause (0.25 s doubling to 2 s) until a pod is
Ready or the time is up, then `portfwd forward` starts as usual; it says once, on stderr,
that it waits and for what. Only "no Ready pod yet" is
waited for: a missing Service, a 403 or a typo in a port fails at once, as without the flag.
"""

from __future__ import annotations

import asyncio
import time

import click

from portfwd.engine.model import ForwardSpec
from portfwd.errors import NoReadyPod
from portfwd.eventloop import run
from portfwd.kube.client import KubeClient
from portfwd.kube.config import load_connection
from portfwd.kube.resolve import resolve
from portfwd.kube.targets import Target
from portfwd.safetext import escape_controls


def wait_for_ready_pod(spec: ForwardSpec, timeout: float) -> None:
    """Return once the spec's target resolves to a Ready pod for its remote port; raise the
    last "no Ready pod" error after `timeout` seconds, and any other error at once."""
    run(
        _wait(
            spec.kubeconfig,
            spec.context,
            spec.namespace,
            spec.parsed_target,
            spec.remote_port,
            timeout,
        )
    )


async def _wait(
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    target: Target,
    remote: int | str,
    seconds: float,
) -> None:
    conn = await asyncio.to_thread(load_connection, kubeconfig, context, namespace)
    deadline = time.monotonic() + seconds
    pause = 0.25
    said = False
    async with KubeClient(conn, heartbeat=None) as client:
        while True:
            try:
                await resolve(client, conn.namespace, target, remote or 1)
                return
            except NoReadyPod as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                if not said:  # once: the user sees why nothing happens yet
                    said = True
                    click.echo(
                        escape_controls(
                            f"waiting up to {seconds:g}s (--pod-running-timeout) for a Ready pod"
                            f" of {target} to take port {remote}: {exc}"
                        ),
                        err=True,
                    )
                await asyncio.sleep(min(pause, left))
                pause = min(pause * 2, 2.0)
