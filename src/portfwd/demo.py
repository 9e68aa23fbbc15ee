"""`portfwd demo`: the dashboard on the built-in sandbox cluster, no Kubernetes needed.

The sandbox runs in this process, on the same event loop as the Textual app, and the app talks
to it over real sockets exactly as it would to a cluster. The session lives in a temporary
config dir (or $PORTFWD_CONFIG_DIR, so a second run finds the first one's session). On a first
start the dashboard is seeded with a few forwards, one of them failing on purpose, so a new
user sees every state within seconds. The sandbox serves two clusters (contexts `sandbox` and
`sandbox-2`, one kubeconfig) and the seed forwards into both, so one window shows two clusters.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from portfwd.configdir import CONFIG_DIR_ENV, STATE_FILE_NAME
from portfwd.engine.model import ForwardSpec
from portfwd.store.state import check_session_path

if TYPE_CHECKING:
    from portfwd.sandbox.cluster import SandboxCluster
    from portfwd.tui.app import PortfwdApp

DEMO_CONTEXT = "sandbox"
DEMO_SECOND_CONTEXT = "sandbox-2"  # the second cluster of the demo's sandbox fleet
DEMO_NAMESPACE = "demo"


def demo_seed(protocol: str = "auto") -> list[ForwardSpec]:
    """svc/web and svc/api work; svc/crashy has no ready endpoint and shows the error state."""
    targets = (("svc/web", 80), ("svc/api", 443), ("svc/crashy", 80))
    return _seed(DEMO_CONTEXT, targets, protocol, ())


def second_cluster_seed(protocol: str = "auto", taken: Iterable[int] = ()) -> list[ForwardSpec]:
    """svc/echo and deploy/web of the second cluster (its web answers GET /cluster with
    `sandbox-2`), on local ports other than `taken`."""
    targets = (("svc/echo", 80), ("deploy/web", 8080))
    return _seed(DEMO_SECOND_CONTEXT, targets, protocol, taken)


def _seed(
    context: str, targets: tuple[tuple[str, int], ...], protocol: str, taken: Iterable[int]
) -> list[ForwardSpec]:
    """Forwards of `targets` in `context`, each on a free local port not in `taken`."""
    from portfwd.tui.ports import DEFAULT_ADDRESSES, suggest_port_sync

    used: dict[int, str] = dict.fromkeys(taken, "")
    specs = []
    for target, remote in targets:
        local = suggest_port_sync(remote, DEFAULT_ADDRESSES, used)
        if local:
            used[local] = target
        specs.append(
            ForwardSpec(
                target=target,
                remote_port=remote,
                local_port=local,
                namespace=DEMO_NAMESPACE,
                context=context,
                addresses=DEFAULT_ADDRESSES,  # localhost, as the picker and `forward`
                protocol=protocol,
            )
        )
    return specs


def _seed_both(protocol: str) -> list[ForwardSpec]:
    first = demo_seed(protocol)
    return first + second_cluster_seed(protocol, (s.local_port for s in first if s.local_port))


DEMO_PROFILES = """\
# The demo's profiles (press p in the dashboard): one profile over both of the demo's
# clusters, with a group per cluster. Start a group with enter; `portfwd profile example`
# documents every key.
profiles:
  demo:
    description: the demo's services, in both clusters
    defaults: {namespace: demo}
    forwards:
      - {name: web, context: sandbox, target: svc/web, ports: [":80"]}
      - {name: api, context: sandbox, target: svc/api, ports: [":443"]}
      - {name: echo-2, context: sandbox-2, target: svc/echo, ports: [":80"]}
      - {name: web-2, context: sandbox-2, target: deploy/web, ports: [":8080"]}
    groups:
      first-cluster: [web, api]
      second-cluster: [echo-2, web-2]
"""


def write_demo_profiles(config_dir: Path) -> None:
    """The demo's profiles file, unless the (kept) config dir already has one."""
    from portfwd.store.profiles import PROFILES_FILE_NAME
    from portfwd.store.state import write_atomic

    path = config_dir / PROFILES_FILE_NAME
    if not path.exists():
        write_atomic(path, DEMO_PROFILES)


def demo_banner(kubeconfig: Path) -> str:
    """What the demo prints before its dashboard opens: where its clusters' kubeconfig is,
    so the user can poke them with kubectl from another terminal while it runs."""
    path = shlex.quote(str(kubeconfig))
    return (
        f"demo clusters {DEMO_CONTEXT} and {DEMO_SECOND_CONTEXT}: kubeconfig {path}"
        " (removed when the demo ends)\n"
        f"  kubectl --kubeconfig {path} get pods -A"
    )


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
    # Everything of the demo (its profiles view too) uses its own config dir.
    os.environ[CONFIG_DIR_ENV] = str(config_dir)
    try:
        write_demo_profiles(config_dir)
        return guarded(
            config_dir, lambda: _demo(topology, config_dir, ping_interval, protocol, chaos)
        )
    finally:
        if override is None:
            os.environ.pop(CONFIG_DIR_ENV, None)
        # The throw-away session goes, unless it holds a crash report the user was pointed to.
        if not override and not any(config_dir.glob("portfwd-crash-*.log")):
            shutil.rmtree(config_dir, ignore_errors=True)


async def _demo(
    topology: Path | None, config_dir: Path, ping_interval: float, protocol: str, chaos: float
) -> int:
    from portfwd.sandbox.fleet import SandboxFleet
    from portfwd.tui.run import launch

    fleet = SandboxFleet(2, topology)
    await fleet.start()
    toasts = ChaosToasts()
    monkey = (
        asyncio.create_task(chaos_monkey(fleet[0], chaos, announce=toasts)) if chaos > 0 else None
    )
    try:
        kubeconfig = str(fleet.kubeconfig_path)
        print(demo_banner(fleet.kubeconfig_path), file=sys.stderr, flush=True)
        return await launch(
            kubeconfig=kubeconfig,
            context=DEMO_CONTEXT,
            namespace=DEMO_NAMESPACE,
            state_file=config_dir / STATE_FILE_NAME,
            restore=True,
            # Saved forwards name no kubeconfig: the next demo's sandbox has a new one.
            spec_kubeconfig=None,
            seed=await asyncio.to_thread(_seed_both, protocol),  # binds sockets: off the loop
            ping_interval=ping_interval,
            protocol=protocol,
            on_app=toasts.attach,
        )
    finally:
        if monkey is not None:
            monkey.cancel()
            await asyncio.gather(monkey, return_exceptions=True)
        await fleet.stop()


async def chaos_monkey(
    sandbox: SandboxCluster,
    interval: float,
    rounds: int | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Break something in the demo namespace every `interval` seconds, so a user sees
    forwards follow their pods: a rolling restart of deploy/web (3 replicas: svc/web switches
    pods without a failed connection), then the pod of deploy/api (1 replica: svc/api waits in
    reconnecting until the replacement is Ready), in turn. `announce` gets one line per
    switch (the dashboard shows it as a toast: the table alone says little at 80x24)."""
    done = 0
    while rounds is None or done < rounds:
        await asyncio.sleep(interval)
        said = ""
        with contextlib.suppress(KeyError, ValueError):  # a custom topology may lack them
            if done % 2 == 0:
                await sandbox.rollout_restart(DEMO_NAMESPACE, "web")
                said = "chaos: rolling restart of deploy/web; svc/web moves to the new pods"
            else:
                for pod in sandbox.pod_names(DEMO_NAMESPACE, {"app": "api"})[:1]:
                    await sandbox.delete_pod(DEMO_NAMESPACE, pod)
                    said = f"chaos: deleted pod {pod}; svc/api waits for its replacement"
        if said and announce is not None:
            announce(said)
        done += 1


class ChaosToasts:
    """Where the chaos monkey's lines go: toasts on the dashboard once it runs."""

    def __init__(self) -> None:
        self.app: PortfwdApp | None = None

    def attach(self, app: PortfwdApp) -> None:
        self.app = app

    def __call__(self, line: str) -> None:
        app = self.app
        if app is not None and app.is_running:
            app.notify(line, title="--chaos", timeout=8)
