"""`portfwd sandbox`: run the sandbox API server in the foreground until Ctrl-C / SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import sys
from pathlib import Path

from portfwd.safetext import escape_controls  # a pure codec, shared with the client
from portfwd.sandbox.fleet import MAX_CLUSTERS, SandboxFleet
from portfwd.sandbox.kubeconfig import KubeconfigWriteError
from portfwd.sandbox.topology import TopologyError


async def _serve(
    kubeconfig_out: Path | None, topology: Path | None, port: int, clusters: int
) -> None:
    fleet = SandboxFleet(clusters, topology, port=port, kubeconfig_path=kubeconfig_out)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await fleet.start()
        out = sys.stdout
        if len(fleet) == 1:
            out.write(f"Sandbox Kubernetes API server listening on {fleet[0].url}\n")
        else:
            out.write(f"{len(fleet)} sandbox Kubernetes API servers, each its own CA:\n")
            width = max(len(c.name) for c in fleet)
            for c in fleet:
                out.write(f"  {c.name:<{width}}  {c.url}\n")
        out.write(f"kubeconfig: {fleet.kubeconfig_path}\n")
        for i, c in enumerate(fleet):
            current = ", current" if i == 0 else ""
            out.write(f"contexts: {c.name} (admin{current}), {c.name}-cert, {c.name}-viewer, ")
            out.write(f"{c.name}-limited, {c.name}-nobody\n")
        out.write(f"\n  export KUBECONFIG={fleet.kubeconfig_path}\n")
        out.write("  kubectl get pods,svc -n demo\n")
        out.write("  portfwd forward svc/echo 8080:80\n")
        if len(fleet) > 1:
            out.write(f"  portfwd forward svc/echo 8081:80 --context {fleet[1].name}\n")
        out.write("\nPress Ctrl-C to stop.\n")
        out.flush()
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)
        await fleet.stop()


def serve(
    *, kubeconfig_out: Path | None, topology: Path | None, port: int, clusters: int = 1
) -> int:
    """Run until interrupted; returns the exit code (0 on a clean Ctrl-C / SIGTERM).

    `clusters` independent API servers (contexts `sandbox`, `sandbox-2`, ...) share one
    kubeconfig. Expected failures print one `error:` line and return 1 here, rather than
    raising the client's error type: the sandbox imports nothing from the client side.
    """
    if not 1 <= clusters <= MAX_CLUSTERS:
        return _fail(f"--clusters takes 1 to {MAX_CLUSTERS}, not {clusters}")
    try:
        asyncio.run(_serve(kubeconfig_out, topology, port, clusters))
    except (TopologyError, KubeconfigWriteError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            if clusters == 1:
                return _fail(
                    f"port {port} on 127.0.0.1 is already in use: pick another with --port "
                    "(0 picks a free one)"
                )
            return _fail(
                f"ports {port}-{port + clusters - 1} on 127.0.0.1 are not all free (one per "
                "cluster): pick another --port (0 picks free ones)"
            )
        where = f" ({exc.filename})" if exc.filename else ""
        return _fail(f"cannot start the sandbox: {exc.strerror or exc}{where}")
    except KeyboardInterrupt:
        pass
    return 0


def _fail(message: str) -> int:
    sys.stderr.write(f"error: {escape_controls(message)}\n")  # it may quote the topology file
    return 1
