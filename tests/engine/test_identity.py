"""Issue 18 §2: one identity rule for every way in (engine/identity.py). A forward is its
context, namespace, target and remote port, plus where it listens when that is fixed; a name
is a label."""

from __future__ import annotations

from portfwd.engine.identity import find_running, name_clash, port_names, split_running
from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState
from portfwd.kube.targets import parse_port_mapping
from portfwd.store.profiles_model import Profile, ProfileForward, add_specs


def spec(target: str = "svc/api", local: int = 0, **kw: object) -> ForwardSpec:
    values: dict[str, object] = {"namespace": "demo", "context": "kind-dev", "remote_port": 80}
    values.update(kw)
    return ForwardSpec(target=target, local_port=local, **values)  # type: ignore[arg-type]


def running(s: ForwardSpec, port: int, fid: str = "f1") -> ForwardSnapshot:
    return ForwardSnapshot(
        id=fid,
        spec=s,
        state=ForwardState.ACTIVE,
        context=s.context or "kind-dev",
        namespace=s.namespace or "demo",
        bound=(("127.0.0.1", port),),
    )


def test_a_free_local_port_matches_whatever_port_the_forward_got() -> None:
    snap = running(spec(local=0), 41234)
    assert find_running(spec(local=0, name="api"), [snap]) is snap
    assert find_running(spec(local=41234), [snap]) is snap  # the port it got
    assert find_running(spec(local=8080), [snap]) is None  # a fixed port is that port


def test_what_a_forward_is_tells_forwards_apart() -> None:
    snap = running(spec(), 41234)
    for other in (
        spec(target="deploy/api"),
        spec(remote_port=443),
        spec(namespace="prod"),
        spec(context="kind-prod"),
    ):
        assert find_running(other, [snap]) is None, other
    # Spelled otherwise, the same target.
    assert find_running(spec(target="service/api"), [snap]) is snap
    # The context the running forward resolved stands for an unsaid one.
    unsaid = running(spec(context=None, namespace=None), 41234)
    assert find_running(spec(), [unsaid]) is unsaid


def test_a_name_is_a_label_same_name_other_target_is_a_clash() -> None:
    theirs = running(spec(target="deploy/api", name="api"), 41234)
    mine = spec(target="svc/api", name="api")
    assert find_running(mine, [theirs]) is None
    assert name_clash(mine, [theirs]) is theirs
    there, clashes, rest = split_running([mine, spec(target="svc/web", name="web")], [theirs])
    assert there == [] and clashes == [(mine, theirs)]
    assert [s.name for s in rest] == ["web"]


def test_a_profile_listing_one_forward_twice_starts_it_once() -> None:
    there, clashes, rest = split_running([spec(name="a"), spec(name="b")], [])
    assert (there, clashes) == ([], [])
    assert [s.name for s in rest] == ["a"]


def test_each_running_forward_stands_for_one_wanted_forward() -> None:
    snap = running(spec(), 41234)
    there, _, _ = split_running([spec(name="a"), spec(local=0, name="b")], [snap])
    assert [(s.name, r.id) for s, r in there] == [("a", "f1")]


def test_several_ports_get_names_of_their_own() -> None:
    def names(*ports: str) -> list[str | None]:
        return port_names("multi", [parse_port_mapping(p) for p in ports])

    assert names("8080:80") == ["multi"]
    assert names("8080:80", "8443:443") == ["multi-80", "multi-443"]
    assert names("19103:80", "19104:80") == ["multi-19103", "multi-19104"]
    assert names(":80", ":80") == ["multi-1", "multi-2"]
    fwd = ProfileForward(name="multi", target="svc/web", ports=("19103:80", "19104:80"))
    assert fwd.spec_names() == ["multi-19103", "multi-19104"]


def test_import_into_a_profile_skips_what_it_has_and_keeps_apart_what_differs() -> None:
    """Imported lines named as portfwd names them (`api-80`) beside a profile that already
    calls another target `api-80`: the other target is added (renamed), the same one not."""
    old = Profile(
        name="mine",
        forwards=(
            ProfileForward(name="api-80", target="deploy/api", ports=(":80",), namespace="demo"),
        ),
    )
    merged = add_specs(
        old,
        [
            ForwardSpec(target="deployment/api", remote_port=80, namespace="demo", name="api-80"),
            ForwardSpec(target="svc/api", remote_port=80, namespace="demo", name="api-80"),
        ],
    )
    assert [(f.name, f.target) for f in merged.forwards] == [
        ("api-80", "deploy/api"),
        ("api-80-2", "svc/api"),
    ]
