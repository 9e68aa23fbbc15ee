"""Patches a real API server refuses are refused with a Status (not a 500 and a traceback), and
the sandbox says how many replicas it runs instead of spinning until it stops answering."""

from __future__ import annotations

import logging

import pytest

from portfwd.sandbox.cluster import SandboxCluster
from portfwd.sandbox.patchcheck import MAX_REPLICAS

from .helpers import call

MERGE = "application/merge-patch+json"


@pytest.mark.parametrize(
    ("path", "patch", "message"),
    [
        (
            "/api/v1/namespaces/demo/services/echo",
            {"spec": 5},
            "json: cannot unmarshal number into Go struct field Service.spec of type struct",
        ),
        (
            "/apis/apps/v1/namespaces/demo/deployments/echo",
            {"spec": {"replicas": "x"}},
            "json: cannot unmarshal string into Go struct field Deployment.spec.replicas of "
            "type int32",
        ),
        (
            "/api/v1/namespaces/demo/services/echo",
            {"spec": {"ports": [{"port": "eighty"}]}},
            "json: cannot unmarshal string into Go struct field Service.spec.ports.port of "
            "type int32",
        ),
    ],
)
async def test_a_patch_of_the_wrong_type_is_a_400_status(
    sandbox: SandboxCluster,
    caplog: pytest.LogCaptureFixture,
    path: str,
    patch: dict[str, object],
    message: str,
) -> None:
    with caplog.at_level(logging.ERROR):
        status, body = await call(
            sandbox, "PATCH", path, sandbox.tokens.admin, body=patch, content_type=MERGE
        )
    assert status == 400, body
    assert body["kind"] == "Status" and body["reason"] == "BadRequest"
    assert body["message"] == message
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    # The object is as it was, and still served.
    status, _ = await call(sandbox, "GET", path, sandbox.tokens.admin)
    assert status == 200


@pytest.mark.parametrize("how", ["scale", "patch"])
async def test_scaling_past_the_cap_is_refused_with_the_cap(
    sandbox: SandboxCluster, how: str
) -> None:
    base = "/apis/apps/v1/namespaces/demo/deployments/echo"
    path = f"{base}/scale" if how == "scale" else base
    status, body = await call(
        sandbox,
        "PATCH",
        path,
        sandbox.tokens.admin,
        body={"spec": {"replicas": 100_000}},
        content_type=MERGE,
    )
    assert status == 422, body
    assert body["reason"] == "Invalid"
    assert f"the portfwd sandbox runs at most {MAX_REPLICAS} replicas" in body["message"]
    assert len(sandbox.pod_names("demo", {"app": "echo"})) == 2
