"""`portfwd doctor`: is everything portfwd needs there and allowed?

One line per check (`✓`, `✗` with the fix, `!` works with a limit, `-` not checked because an
earlier check failed), or `-o json`. Exit code 1 when a check failed. Expected failures
(a broken kubeconfig, an unreachable cluster, a missing exec plugin, a forbidden verb) are
findings, printed as their check's line, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

from portfwd.doctor import local, report
from portfwd.doctor.cluster import cluster_checks
from portfwd.doctor.daemon import daemon_check
from portfwd.doctor.model import Check
from portfwd.eventloop import run


def collect(
    *, kubeconfig: str | None, context: str | None, namespace: str | None, state_file: Path | None
) -> list[Check]:
    checks = run(cluster_checks(kubeconfig, context, namespace))
    checks += [
        local.ipv6_loopback(),
        local.privileged_ports(),
        *local.files(state_file),
        daemon_check(),
    ]
    return checks


def run_doctor(
    *,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    state_file: Path | None,
    output: str = "text",
) -> int:
    checks = collect(
        kubeconfig=kubeconfig, context=context, namespace=namespace, state_file=state_file
    )
    chosen = next((c.details.get("context") for c in checks if c.name == "context"), context)
    shown = report.as_json(checks, chosen) if output == "json" else report.text(checks)
    sys.stdout.write(shown)
    sys.stdout.flush()
    return 1 if any(c.status == "fail" for c in checks) else 0
