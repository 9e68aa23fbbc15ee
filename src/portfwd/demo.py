"""`portfwd demo`: the dashboard on the built-in sandbox cluster, no Kubernetes needed.

The sandbox runs in this process, on the same event loop as the Textual app, and the app talks
to it over real sockets exactly as it would to a cluster. The session lives in a temporary
config dir (or $PORTFWD_CONFIG_DIR, so a second run finds the first one's session). On a first
start the dashboard is seeded with a few forwards, one of them failing on purpose, so a new
user sees every state within seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from portfwd.configdir import CONFIG_DIR_ENV, STATE_FILE_NAME
from portfwd.engine.model import ForwardSpec
from portfwd.store.state import check_session_path

if TYPE_CHECKING:
    from portfwd.sandbox.cluster import SandboxCluster

DEMO_CONTEXT = "sandbox"
DEMO_NAMESPACE = "demo"


def demo_seed(protocol: str = "auto") -> list[ForwardSpec]:
    """svc/web and svc/api work; svc/crashy has no ready endpoint and shows the error state."""
    from portfwd.tui.ports import DEFAULT_ADDRESSES, suggest_port_sync

    taken: dict[int, str] = {}
    specs = []
    for target, remote in (("svc/web", 80), ("svc/api", 443), ("svc/crashy", 80)):
        local = suggest_port_sync(remote, DEFAULT_ADDRESSES, taken)
        if local:
            taken[local] = target
        specs.append(
            ForwardSpec(
                target=target,
                remote_port=remote,
                local_port=local,
                namespace=DEMO_NAMESPACE,
                context=DEMO_CONTEXT,
                addresses=DEFAULT_ADDRESSES,  # localhost, as the picker and `forward`
                protocol=protocol,
            )
        )
    return specs


def run_demo(
    *,
    topology: Path | None,
    ping_interval: float = 30.0,
    protocol: str = "auto",
    chaos: float = 0.0,
) -> int:
    from portfwd.tui.run import guarded

    override = os.environ.get(CONFIG_DIR_ENV)
    if override:  # a kept session: checked as the dashboard's is (a fresh temp dir is ours)
        check_session_path(Path(override).expanduser() / STATE_FILE_NAME)
    config_dir = (
        Path(override).expanduser() if override else Path(tempfile.mkdtemp(prefix="portfwd-demo-"))
    )
    try:
        return guarded(
            config_dir, lambda: _demo(topology, config_dir, ping_interval, protocol, chaos)
        )
    finally:
        # The throw-away session goes, unless it holds a crash report the user was pointed to.
        if not override and not any(config_dir.glob("portfwd-crash-*.log")):
            shutil.rmtree(config_dir, ignore_errors=True)


async def _demo(
    topology: Path | None, config_dir: Path, ping_interval: float, protocol: str, chaos: float
) -> int:
    from portfwd.sandbox.cluster import SandboxCluster
    from portfwd.tui.run import launch

    sandbox = SandboxCluster(topology)
    await sandbox.start()
    monkey = asyncio.create_task(chaos_monkey(sandbox, chaos)) if chaos > 0 else None
    try:
        kubeconfig = str(sandbox.kubeconfig_path)
        return await launch(
            kubeconfig=kubeconfig,
            context=DEMO_CONTEXT,
            namespace=DEMO_NAMESPACE,
            state_file=config_dir / STATE_FILE_NAME,
            restore=True,
            # Saved forwards name no kubeconfig: the next demo's sandbox has a new one.
            spec_kubeconfig=None,
            seed=await asyncio.to_thread(demo_seed, protocol),  # binds sockets: off the loop
            ping_interval=ping_interval,
            protocol=protocol,
        )
    finally:
        if monkey is not None:
            monkey.cancel()
            await asyncio.gather(monkey, return_exceptions=True)
        await sandbox.stop()


async def chaos_monkey(sandbox: SandboxCluster, interval: float, rounds: int | None = None) -> None:
    """Break something in the demo namespace every `interval` seconds, so a user sees
    forwards follow their pods: a rolling restart of deploy/web (3 replicas: svc/web switches
    pods without a failed connection), then the pod of deploy/api (1 replica: svc/api waits in
    reconnecting until the replacement is Ready), in turn."""
    done = 0
    while rounds is None or done < rounds:
        await asyncio.sleep(interval)
        with contextlib.suppress(KeyError, ValueError):  # a custom topology may lack them
            if done % 2 == 0:
                await sandbox.rollout_restart(DEMO_NAMESPACE, "web")
            else:
                for pod in sandbox.pod_names(DEMO_NAMESPACE, {"app": "api"})[:1]:
                    await sandbox.delete_pod(DEMO_NAMESPACE, pod)
        done += 1
