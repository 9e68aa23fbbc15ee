"""The one table of kinds: kubectl's spellings, the API paths, and what derives from it."""

from __future__ import annotations

import pytest

from portfwd.errors import InputError
from portfwd.kube import kinds
from portfwd.kube.client import resource_path
from portfwd.kube.targets import Target, parse_target


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("deploy.apps/web", "deployment"),
        ("deployments.apps/web", "deployment"),
        ("deployments.v1.apps/web", "deployment"),
        ("sts.apps/db", "statefulset"),
        ("rs/web-5d9", "replicaset"),
        ("RS.apps/web-5d9", "replicaset"),
        ("replicasets.apps/web-5d9", "replicaset"),
        ("po/web", "pod"),
    ],
)
def test_every_kubectl_spelling_parses(text: str, kind: str) -> None:
    assert parse_target(text).kind == kind


@pytest.mark.parametrize("text", ["ns/default", "endpointslice/x", "pods.apps/x", "svc.v1/x"])
def test_kinds_that_are_not_targets_are_refused(text: str) -> None:
    with pytest.raises(InputError, match="unknown target type"):
        parse_target(text)


def test_a_target_is_written_back_with_the_short_name() -> None:
    assert [str(Target(k.name, "x")) for k in kinds.TARGETS] == [
        "pod/x",
        "svc/x",
        "deploy/x",
        "sts/x",
        "rs/x",
    ]


def test_api_paths() -> None:
    assert resource_path("pods", "demo", "web") == "/api/v1/namespaces/demo/pods/web"
    assert resource_path("namespaces", "demo") == "/api/v1/namespaces"  # not namespaced
    assert resource_path("deployments", "a b") == "/apis/apps/v1/namespaces/a%20b/deployments"
    assert (
        resource_path("endpointslices", "demo")
        == "/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices"
    )


def test_the_ui_lists_services_first_and_every_listed_kind_is_a_target() -> None:
    assert [k.short for k in kinds.LISTED] == ["svc", "pod", "deploy", "sts"]
    assert all(k.target for k in kinds.LISTED)
    assert kinds.REPLICASET.target and not kinds.REPLICASET.listed


def test_spellings_name_one_kind_each() -> None:
    seen: dict[str, str] = {}
    for kind in kinds.KINDS:
        for word in kind.spellings:
            assert seen.setdefault(word, kind.name) == kind.name, word


def test_objects_parse_as_their_kind() -> None:
    obj = {"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}}}}
    for kind in kinds.WORKLOADS:
        assert kind.parse(obj).kind == kind.name
