"""`portfwd sandbox`: run the sandbox API server in the foreground until Ctrl-C / SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import sys
from pathlib import Path

from portfwd.safetext import escape_controls  # a pure codec, shared with the client
from portfwd.sandbox.cluster import SandboxCluster
from portfwd.sandbox.kubeconfig import KubeconfigWriteError
from portfwd.sandbox.topology import TopologyError


async def _serve(kubeconfig_out: Path | None, topology: Path | None, port: int) -> None:
    cluster = SandboxCluster(topology, port=port, kubeconfig_path=kubeconfig_out)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await cluster.start()
        out = sys.stdout
        out.write(f"Sandbox Kubernetes API server listening on {cluster.url}\n")
        out.write(f"kubeconfig: {cluster.kubeconfig_path}\n")
        out.write("contexts: sandbox (admin, current), sandbox-cert, sandbox-viewer, ")
        out.write("sandbox-limited, sandbox-nobody\n\n")
        out.write(f"  export KUBECONFIG={cluster.kubeconfig_path}\n")
        out.write("  kubectl get pods,svc -n demo\n")
        out.write("  portfwd forward svc/echo 8080:80\n\n")
        out.write("Press Ctrl-C to stop.\n")
        out.flush()
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)
        await cluster.stop()


def serve(*, kubeconfig_out: Path | None, topology: Path | None, port: int) -> int:
    """Run until interrupted; returns the exit code (0 on a clean Ctrl-C / SIGTERM).

    Expected failures print one `error:` line and return 1 here, rather than raising the
    client's error type: the sandbox imports nothing from the client side.
    """
    try:
        asyncio.run(_serve(kubeconfig_out, topology, port))
    except (TopologyError, KubeconfigWriteError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return _fail(
                f"port {port} on 127.0.0.1 is already in use: pick another with --port "
                "(0 picks a free one)"
            )
        where = f" ({exc.filename})" if exc.filename else ""
        return _fail(f"cannot start the sandbox: {exc.strerror or exc}{where}")
    except KeyboardInterrupt:
        pass
    return 0


def _fail(message: str) -> int:
    sys.stderr.write(f"error: {escape_controls(message)}\n")  # it may quote the topology file
    return 1
