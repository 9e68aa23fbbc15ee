"""Three small things issue 16 found: the import's kubeconfig path, an `-A` refusal that names
its scope, and the picker's low-port rule said as it is applied."""

from __future__ import annotations

import json
import os

import pytest

from portfwd.kube.errors import status_error
from portfwd.sandbox.cluster import SandboxCluster
from portfwd.transfer.annotations import K9S_AUTO, scan_cluster

from .test_annotations import _annotate


async def test_import_from_cluster_writes_an_absolute_kubeconfig(
    sandbox: SandboxCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    for pod in sandbox.pod_names("demo", {"app": "echo"}):
        _annotate(sandbox, "pods", pod, {K9S_AUTO: "echo::19000:echo"})
    monkeypatch.chdir(sandbox.kubeconfig_path.parent)
    result = await scan_cluster(kubeconfig=sandbox.kubeconfig_path.name, namespace="demo")
    assert result.specs
    assert {s.kubeconfig for s in result.specs} == {str(sandbox.kubeconfig_path.resolve())}


def _forbidden(resource: str) -> bytes:
    scope = "at the cluster scope"
    message = (
        f'{resource} is forbidden: User "alice" cannot list resource "{resource}" in API group '
        f'"" {scope}'
    )
    return json.dumps({"kind": "Status", "message": message, "reason": "Forbidden"}).encode()


def test_a_list_refused_across_namespaces_says_so() -> None:
    err = status_error(403, _forbidden("pods"), what="pods", context="ctx")
    assert 'user "alice" may not list pods in all namespaces (403 Forbidden' in str(err)
    # A resource that has no namespace is not "in all namespaces".
    err = status_error(403, _forbidden("namespaces"), what="namespaces", context="ctx")
    assert "may not list namespaces (403" in str(err)


def test_the_pickers_hint_says_what_it_does_below_1024(monkeypatch: pytest.MonkeyPatch) -> None:
    from portfwd.tui.screens import picker

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert "below 1024 too: you are root" in picker._low_port_rule()
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "below: +8000" in picker._low_port_rule()
