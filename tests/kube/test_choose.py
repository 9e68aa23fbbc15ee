"""The pure choice functions on watch-cache contents: stickiness, cache filtering, slices."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfwd.errors import NoReadyPod, ResolveError
from portfwd.kube.objects import EndpointSlice, Pod, Service, Workload
from portfwd.kube.resolve import (
    Resolution,
    choose_for_pod,
    choose_for_service,
    choose_for_workload,
)
from portfwd.kube.targets import Target
from tests.kube.test_resolve import NS, eps, pod, service, workload

WEB = {"app": "web"}
DEPLOY = Target("deployment", "web")
SVC = Target("service", "web")


def mk(
    name: str,
    minute: int,
    *,
    ready: bool = True,
    deleting: bool = False,
    phase: str = "Running",
    labels: dict[str, str] | None = None,
    ns: str = NS,
    port: int = 8080,
) -> Pod:
    data = pod(
        name,
        labels=labels or WEB,
        ports=[{"name": "http", "containerPort": port}],
        phase=phase,
        ready=ready,
        created=f"2026-11-24T00:{minute:02d}:00Z",
        deleting=deleting,
    )
    data["metadata"]["namespace"] = ns
    return Pod.from_dict(data)


def deploy() -> Workload:
    return Workload.from_dict("deployment", workload("deployment", "web", WEB))


def svc(target_port: int | str = "http") -> Service:
    return Service.from_dict(
        service("web", [{"name": "web", "port": 80, "targetPort": target_port}], WEB)
    )


def slices(*endpoints: tuple[str, bool, bool], service_name: str = "web") -> list[EndpointSlice]:
    return [EndpointSlice.from_dict(eps(service_name, list(endpoints)))]


# --- stickiness ------------------------------------------------------------------------------


def test_workload_keeps_the_pod_in_use_while_it_serves() -> None:
    old, new = mk("web-old", 1), mk("web-new", 5)
    r = choose_for_workload(DEPLOY, deploy(), [old, new], 8080, prefer="web-new")
    assert r.pod.name == "web-new"
    assert r.decisions[:2] == (
        "deploy/web -> pod web-new port 8080 (http)",
        "kept pod web-new: still Ready (2 match the selector app=web)",
    )
    # Without a preference the usual rule: the oldest Ready pod.
    r = choose_for_workload(DEPLOY, deploy(), [old, new], 8080)
    assert r.pod.name == "web-old"
    assert (
        r.decisions[1]
        == "chose pod web-old: the oldest of 2 Ready pods (2 match the selector app=web)"
    )


@pytest.mark.parametrize(
    "gone",
    [
        mk("web-new", 5, ready=False),
        mk("web-new", 5, deleting=True),
        mk("web-new", 5, phase="Failed", ready=False),
        None,  # deleted: no longer in the cache
    ],
    ids=["not-ready", "terminating", "failed", "deleted"],
)
def test_workload_moves_off_a_pod_that_stops_serving(gone: Pod | None) -> None:
    pods = [mk("web-b", 3), mk("web-a", 2)] + ([gone] if gone else [])
    r = choose_for_workload(DEPLOY, deploy(), pods, "http", prefer="web-new")
    assert r.pod.name == "web-a"  # the oldest Ready one
    assert r.decisions[1].startswith("chose pod web-a: the oldest of 2 Ready pods")


def test_workload_prefer_unknown_or_none_is_the_usual_rule() -> None:
    pods = [mk("web-b", 3), mk("web-a", 2)]
    for prefer in (None, "", "web-zzz"):
        assert choose_for_workload(DEPLOY, deploy(), pods, 8080, prefer=prefer).pod.name == "web-a"


def test_service_keeps_a_ready_endpoint() -> None:
    pods = [mk("web-a", 1), mk("web-b", 2)]
    ready = slices(("web-a", True, False), ("web-b", True, False))
    r = choose_for_service(SVC, svc(), pods, ready, 80, prefer="web-b")
    assert r.pod.name == "web-b"
    assert r.decisions == (
        "svc/web port 80 (web) -> targetPort http -> pod web-b port 8080",
        "kept pod web-b: still a Ready endpoint (2 in total)",
    )


def test_service_moves_off_an_endpoint_that_is_no_longer_ready() -> None:
    pods = [mk("web-a", 1), mk("web-b", 2), mk("web-c", 3)]
    for state in ((False, False), (False, True)):  # not ready; terminating
        cache = slices(("web-a", True, False), ("web-b", *state), ("web-c", True, False))
        r = choose_for_service(SVC, svc(), pods, cache, 80, prefer="web-b")
        assert r.pod.name == "web-a"
        assert r.decisions[1] == "chose pod web-a: the oldest of 2 Ready endpoints (3 in total)"


def test_service_without_slices_keeps_a_ready_pod() -> None:
    pods = [mk("web-a", 1), mk("web-b", 2)]
    r = choose_for_service(SVC, svc(), pods, None, 80, prefer="web-b")
    assert r.pod.name == "web-b"
    assert "kept pod web-b: still Ready (2 in total)" in r.decisions


# --- caches: strangers are ignored -------------------------------------------------------------


def mixed_cache() -> list[Pod]:
    """web-b and web-c match; the older pods are strangers (other labels or namespace)."""
    return [
        mk("web-c", 30),
        mk("api-1", 0, labels={"app": "api"}),
        mk("web-x", 0, ns="other"),  # same labels, another namespace
        mk("web-b", 20),
        mk("web-y", 0, labels={"app": "web", "tier": "canary"}),  # still matches: superset
    ]


def test_workload_filters_a_mixed_cache_by_selector_and_namespace() -> None:
    r = choose_for_workload(DEPLOY, deploy(), mixed_cache(), 8080)
    assert r.pod.name == "web-y"
    assert (
        r.decisions[1]
        == "chose pod web-y: the oldest of 3 Ready pods (3 match the selector app=web)"
    )
    canary = Workload.from_dict(
        "deployment", workload("deployment", "web", {"app": "web", "tier": "canary"})
    )
    r = choose_for_workload(DEPLOY, canary, mixed_cache(), 8080)
    assert r.pod.name == "web-y"
    assert "(1 match the selector app=web,tier=canary)" in r.decisions[1]


def test_service_filters_a_mixed_cache_and_other_services_slices() -> None:
    cache = [p for p in mixed_cache() if p.name != "web-y"]
    # Slices of another service (and one naming the stranger) must not count.
    other = slices(("web-x", True, False), ("api-1", True, False), service_name="api")
    own = slices(("web-b", False, False), ("web-c", True, False))
    r = choose_for_service(SVC, svc(), cache, other + own, 80)
    assert r.pod.name == "web-c"
    assert r.decisions[1] == "chose pod web-c: the only Ready endpoint (2 in total)"
    # Only other services' slices: "none yet" for this one, so by pod readiness.
    r = choose_for_service(SVC, svc(), cache, other, 80)
    assert r.pod.name == "web-b"
    assert "svc/web has no EndpointSlices yet; chose by pod readiness" in r.decisions


def test_no_ready_pod_counts_only_matching_pods() -> None:
    cache = [mk("web-a", 1, ready=False), mk("api-1", 0, labels={"app": "api"})]
    with pytest.raises(NoReadyPod) as err:
        choose_for_workload(DEPLOY, deploy(), cache, 8080)
    assert str(err.value) == (
        "deploy/web has no Ready pod: 1 pod matches its selector, none Ready"
        " (web-a: container main not ready)"
    )


# --- slices: None, [] and populated ------------------------------------------------------------


def test_service_slices_none_empty_and_populated() -> None:
    pods = [mk("web-a", 1), mk("web-b", 2)]
    unavailable = choose_for_service(SVC, svc(), pods, None, 80)
    none_yet = choose_for_service(SVC, svc(), pods, [], 80)
    populated = choose_for_service(SVC, svc(), pods, slices(("web-b", True, False)), 80)
    # None: by readiness, and the caller writes why (no note here).
    assert unavailable.pod.name == "web-a"
    assert not any("EndpointSlices" in d for d in unavailable.decisions)
    # []: by readiness, with a note.
    assert none_yet.pod.name == "web-a"
    assert "svc/web has no EndpointSlices yet; chose by pod readiness" in none_yet.decisions
    # Populated: only Ready endpoints count, a Ready pod that is not one is passed over.
    assert populated.pod.name == "web-b"
    assert populated.decisions[-1] == (
        "not Ready: web-a: Ready, but not yet a Ready endpoint of the service"
    )


def test_service_with_no_ready_endpoint_is_no_ready_pod() -> None:
    pods = [mk("web-a", 1)]
    with pytest.raises(NoReadyPod, match="none Ready"):
        choose_for_service(SVC, svc(), pods, slices(("web-a", False, False)), 80)
    with pytest.raises(NoReadyPod, match="no pods match its selector app=web"):
        choose_for_service(SVC, svc(), [], [], 80)


# --- named targetPort against the chosen pod ---------------------------------------------------


def test_named_target_port_follows_the_chosen_pod() -> None:
    """Mid-rollout the name "http" is 8080 on the old pods and 8081 on the new one."""
    old, new = mk("web-old", 1, port=8080), mk("web-new", 5, port=8081)
    ready = slices(("web-old", True, False), ("web-new", True, False))
    r = choose_for_service(SVC, svc("http"), [old, new], ready, "web")
    assert (r.pod.name, r.container_port, r.port_name, r.service_port) == (
        "web-old",
        8080,
        "http",
        80,
    )
    r = choose_for_service(SVC, svc("http"), [old, new], ready, "80", prefer="web-new")
    assert (r.pod.name, r.container_port) == ("web-new", 8081)
    assert r.decisions[0] == "svc/web port 80 (web) -> targetPort http -> pod web-new port 8081"
    old_gone = slices(("web-old", False, True), ("web-new", True, False))
    r = choose_for_service(SVC, svc("http"), [old, new], old_gone, 80)
    assert (r.pod.name, r.container_port) == ("web-new", 8081)


def test_named_target_port_skips_pods_without_it_even_when_preferred() -> None:
    plain = Pod.from_dict(pod("web-p", labels=WEB, created="2026-11-24T00:00:00Z"))
    named = mk("web-n", 9, port=9000)
    r = choose_for_service(SVC, svc("http"), [plain, named], None, 80, prefer="web-p")
    assert (r.pod.name, r.container_port) == ("web-n", 9000)


# --- pod targets -------------------------------------------------------------------------------


def test_choose_for_pod() -> None:
    r = choose_for_pod(Target("pod", "web-a"), mk("web-a", 1), "8080")
    assert (r.container_port, r.port_name, r.decisions) == (
        8080,
        "http",
        ("pod/web-a port 8080 (http)",),
    )
    with pytest.raises(NoReadyPod, match=r"pod web-a is not running \(phase Pending"):
        choose_for_pod(Target("pod", "web-a"), mk("web-a", 1, phase="Pending"), 8080)
    with pytest.raises(ResolveError) as err:
        choose_for_pod(Target("pod", "web-a"), mk("web-a", 1), "nope")
    assert not isinstance(err.value, NoReadyPod)


# --- any set of pods ---------------------------------------------------------------------------

_pods = st.lists(
    st.builds(
        dict,
        name=st.sampled_from([f"web-{i}" for i in range(8)]),
        minute=st.integers(0, 3),
        ready=st.booleans(),
        deleting=st.booleans(),
        phase=st.sampled_from(["Running", "Running", "Pending", "Failed"]),
        match=st.booleans(),
    ),
    max_size=8,
    unique_by=lambda d: d["name"],
)


def _build(specs: list[dict[str, Any]]) -> list[Pod]:
    return [
        mk(
            s["name"],
            s["minute"],
            ready=s["ready"],
            deleting=s["deleting"],
            phase=s["phase"],
            labels=WEB if s["match"] else {"app": "other"},
        )
        for s in specs
    ]


def _serves(p: Pod) -> bool:
    return p.ready and p.phase == "Running" and not p.terminating and p.meta.labels == WEB


def _oldest_name(pods: list[Pod]) -> str:
    return min(pods, key=lambda p: (p.meta.creation_timestamp, p.name)).name


def _check(pods: list[Pod], prefer: str | None, choose: Any) -> None:
    serving = [p for p in pods if _serves(p)]
    if not serving:
        with pytest.raises(NoReadyPod):
            choose()
        return
    r: Resolution = choose()
    assert r.pod.name in {p.name for p in serving}
    if prefer in {p.name for p in serving}:
        assert r.pod.name == prefer
        assert any(d.startswith(f"kept pod {prefer}:") for d in r.decisions)
    else:
        assert r.pod.name == _oldest_name(serving)


@given(_pods, st.one_of(st.none(), st.sampled_from([f"web-{i}" for i in range(8)])))
def test_any_pods_workload_chooses_a_serving_pod_and_keeps_prefer(
    specs: list[dict[str, Any]], prefer: str | None
) -> None:
    pods = _build(specs)
    _check(pods, prefer, lambda: choose_for_workload(DEPLOY, deploy(), pods, 8080, prefer=prefer))


@given(
    _pods,
    st.one_of(st.none(), st.sampled_from([f"web-{i}" for i in range(8)])),
    st.sampled_from(["none", "empty", "mirror"]),
)
def test_any_pods_service_chooses_a_serving_pod_and_keeps_prefer(
    specs: list[dict[str, Any]], prefer: str | None, mode: str
) -> None:
    pods = _build(specs)
    cache: list[EndpointSlice] | None = None if mode == "none" else []
    if mode == "mirror":  # the endpoints controller's view of the same pods
        cache = slices(*((p.name, _serves(p), p.terminating) for p in pods if p.meta.labels == WEB))
    _check(pods, prefer, lambda: choose_for_service(SVC, svc(), pods, cache, "web", prefer=prefer))
