"""`portfwd forward --pod-running-timeout DURATION`: kubectl port-forward's flag, so a command
line carried over from kubectl works, with kubectl's meaning: wait up to DURATION for the
target to have a pod that can take the forward before giving up.

Without the flag portfwd fails at once when no pod is Ready (its own default, README); with it,
the target is resolved again with a growing pause (0.25 s doubling to 2 s) until a pod is
Ready or the time is up, then `portfwd forward` starts as usual. Only "no Ready pod yet" is
waited for: a missing Service, a 403 or a typo in a port fails at once, as without the flag.
"""

from __future__ import annotations

import asyncio
import re
import time

from portfwd.errors import InputError, NoReadyPod
from portfwd.eventloop import run
from portfwd.kube.client import KubeClient
from portfwd.kube.config import load_connection
from portfwd.kube.resolve import resolve
from portfwd.kube.targets import Target, parse_port_mapping, parse_target

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_FORM = "a duration such as 30s, 2m or 1m30s (Go's time.ParseDuration syntax, as kubectl)"


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string (`1m30s`, `500ms`, `1.5h`); must be above zero, as
    kubectl requires for --pod-running-timeout. A bare number is refused, as in Go."""
    raw = text.strip()
    pos, total = 0, 0.0
    while pos < len(raw):
        match = _PART.match(raw, pos)
        if match is None:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not raw or pos != len(raw):
        raise InputError(f"{text!r} is not {_FORM}")
    if total <= 0:
        raise InputError(f"{text!r} is not higher than zero")
    return total


def wait_for_ready_pod(
    *,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    target: str,
    ports: list[str],
    timeout: float,
) -> None:
    """Return once `target` resolves to a Ready pod for its first port; raise the last
    "no Ready pod" error after `timeout` seconds, and any other error at once."""
    parsed = parse_target(target)
    remote = parse_port_mapping(ports[0]).remote if ports else 0
    run(_wait(kubeconfig, context, namespace, parsed, remote, timeout))


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
    async with KubeClient(conn, heartbeat=None) as client:
        while True:
            try:
                await resolve(client, conn.namespace, target, remote or 1)
                return
            except NoReadyPod:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                await asyncio.sleep(min(pause, left))
                pause = min(pause * 2, 2.0)
