"""Issue 18 §6: `export --format kftray-json` writes the port kftray dials. kftray sends a
service entry's `remote_port` to the pod, so the export writes the Service's targetPort (a
number, or the name the Service gives it), read from the cluster; where it cannot read it,
the export's notes say why."""

from __future__ import annotations

import json
from pathlib import Path

from portfwd.sandbox.cluster import SandboxCluster
from tests.support.cli import portfwd_async, private_env, write_private

LISTED = """\
- {name: web, namespace: demo, target: svc/web, ports: ['18080:80']}
- {name: echo, namespace: demo, target: svc/echo, ports: [':80']}
- {name: nope, namespace: demo, target: svc/web, ports: [':81']}
"""


async def test_the_export_writes_the_target_port_kftray_dials(
    sandbox: SandboxCluster, tmp_path: Path
) -> None:
    env = private_env(tmp_path, KUBECONFIG=str(sandbox.kubeconfig_path))
    listed = write_private(tmp_path / "f.yaml", LISTED)
    code, out, err = await portfwd_async("export", str(listed), "--format", "kftray-json", env=env)
    assert code == 0, err
    ports = {e["alias"]: e["remote_port"] for e in json.loads(out)}
    assert ports == {"web": 8080, "echo": "echo", "nope": 81}  # targetPort 8080, named echo
    assert "web: note: remote_port is svc/web's targetPort 8080 (kftray dials it on the pod)" in err
    assert "nope: note: kftray dials remote_port on the pod, not svc/web's port" in err
    assert "the Service has no TCP port 81" in err


async def test_without_a_cluster_the_notes_say_why(tmp_path: Path) -> None:
    env = private_env(tmp_path)  # a kubeconfig that is not there
    listed = write_private(tmp_path / "f.yaml", LISTED)
    code, out, err = await portfwd_async("export", str(listed), "--format", "kftray-json", env=env)
    assert code == 0, err
    assert [e["remote_port"] for e in json.loads(out)] == [80, 80, 81]
    notes = [line for line in err.splitlines() if "its targetPort could not be read" in line]
    assert len(notes) == 3, err
