"""Start-to-first-paint and memory of the dashboard: the single-file binary beside the venv.

Each run starts `portfwd` (the dashboard, on a kubeconfig whose cluster is down, with an empty
session) in a pseudo-terminal and stops the clock when the screen first shows the empty
dashboard ("No forwards yet"); the RSS then is the sum over the process and its children
(the binary's bootloader and the Python it unpacks). Runs alternate A B A B.

    .venv/bin/python bench/startup.py                         # dist/portfwd vs .venv/bin/portfwd
    .venv/bin/python bench/startup.py --runs 10 --binary dist/portfwd --venv .venv/bin/portfwd
    .venv/bin/python bench/startup.py --once dist/portfwd     # one start, for an outer timer
    .venv/bin/python bench/startup.py --once dist/portfwd --wait-exit   # ... and its end
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARKER = b"No forwards yet"
KUBECONFIG = """\
apiVersion: v1
kind: Config
current-context: down
clusters: [{name: down, cluster: {server: "https://127.0.0.1:9", insecure-skip-tls-verify: true}}]
contexts: [{name: down, context: {cluster: down, user: u, namespace: demo}}]
users: [{name: u, user: {token: bench}}]
"""


def _tree_rss_kib(root: int) -> int:
    """VmRSS of `root` and every descendant, in KiB."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total


def first_paint(
    command: list[str], workdir: Path, limit: float = 60.0, *, wait_exit: bool = True
) -> tuple[float, int]:
    """(seconds from exec to the first painted dashboard, RSS KiB of the tree then).

    Then the tree gets SIGTERM (the binary's bootloader passes it on, reaps its Python and
    removes what it unpacked); with `wait_exit` this waits for that, else it returns at once
    (an outer timer then measures start-to-first-paint alone)."""
    kubeconfig = workdir / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    kubeconfig.chmod(0o600)
    config = Path(tempfile.mkdtemp(dir=workdir))
    (config / "state.yaml").write_text("version: 1\nforwards: []\n")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env |= {"PORTFWD_CONFIG_DIR": str(config), "TERM": "xterm-256color"}
    primary, secondary = pty.openpty()
    os.set_blocking(primary, False)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*command, "--kubeconfig", str(kubeconfig)],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        start_new_session=True,
    )
    os.close(secondary)
    seen = b""
    try:
        while MARKER not in seen:
            if time.perf_counter() - started > limit:
                raise SystemExit(f"no first paint within {limit:g} s: {seen[-300:]!r}")
            ready, _, _ = select.select([primary], [], [], 0.5)
            if ready:
                try:
                    seen = seen[-4096:] + os.read(primary, 65536)
                except OSError:
                    raise SystemExit(f"{command[0]} ended before its first paint") from None
        elapsed = time.perf_counter() - started
        rss = _tree_rss_kib(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        if wait_exit:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        os.close(primary)
    return elapsed, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default="dist/portfwd")
    parser.add_argument("--venv", default=".venv/bin/portfwd")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--once", metavar="PORTFWD", help="one first paint of PORTFWD, then exit")
    parser.add_argument(
        "--wait-exit", action="store_true", help="with --once: also wait for PORTFWD to end"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.once:
            first_paint([args.once], Path(tmp), wait_exit=args.wait_exit)
            return
        results: dict[str, list[tuple[float, int]]] = {"binary": [], "venv": []}
        first_paint([args.venv], Path(tmp))  # warm the page cache for both
        first_paint([args.binary], Path(tmp))
        for _ in range(args.runs):
            results["binary"].append(first_paint([args.binary], Path(tmp)))
            results["venv"].append(first_paint([args.venv], Path(tmp)))
    size = Path(args.binary).stat().st_size
    print(f"binary {args.binary}: {size / 2**20:.1f} MiB")
    for name, runs in results.items():
        times = [t for t, _ in runs]
        rss = [r / 1024 for _, r in runs]
        print(
            f"{name:6} first paint median {statistics.median(times):.3f} s "
            f"(min {min(times):.3f}, max {max(times):.3f}); "
            f"RSS at first paint median {statistics.median(rss):.1f} MiB"
        )
    ratio = statistics.median(
        b / v for (b, _), (v, _) in zip(results["binary"], results["venv"], strict=True)
    )
    print(f"binary/venv first paint, median of pairs: {ratio:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
