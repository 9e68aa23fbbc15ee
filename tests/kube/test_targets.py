"""Target and port parsing: kubectl's accepted forms, exact error texts, and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfwd.errors import InputError
from portfwd.kube.targets import (
    PortMapping,
    Target,
    is_valid_port_name,
    parse_port_mapping,
    parse_target,
)


@pytest.mark.parametrize(
    ("text", "kind", "name"),
    [
        ("web-0", "pod", "web-0"),
        ("pod/web", "pod", "web"),
        ("pods/web", "pod", "web"),
        ("po/web", "pod", "web"),
        ("svc/echo", "service", "echo"),
        ("service/echo", "service", "echo"),
        ("services/echo", "service", "echo"),
        ("deploy/echo", "deployment", "echo"),
        ("deployment/echo", "deployment", "echo"),
        ("deployments/echo", "deployment", "echo"),
        ("deployment.apps/echo", "deployment", "echo"),
        ("sts/db", "statefulset", "db"),
        ("statefulset/db", "statefulset", "db"),
        ("statefulsets/db", "statefulset", "db"),
        ("rs/echo-5d9", "replicaset", "echo-5d9"),
        ("SVC/echo", "service", "echo"),
        ("  svc/echo  ", "service", "echo"),
        ("pod/a.b-c.d", "pod", "a.b-c.d"),
    ],
)
def test_targets_kubectl_accepts(text: str, kind: str, name: str) -> None:
    assert parse_target(text) == Target(kind, name)


def test_target_str_uses_short_kind() -> None:
    assert str(parse_target("service/echo")) == "svc/echo"
    assert str(parse_target("web")) == "pod/web"
    assert str(parse_target("statefulsets/db")) == "sts/db"


def test_unknown_kind_lists_accepted() -> None:
    with pytest.raises(InputError) as err:
        parse_target("job/x")
    assert str(err.value) == (
        'unknown target type "job" in "job/x": use one of pod/, po/, svc/, service/, deploy/,'
        " deployment/, sts/, statefulset/, rs/, replicaset/ or a bare pod name"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "missing target: expected TYPE/NAME (e.g. svc/web) or a pod name"),
        ("svc/", 'missing name in target "svc/": expected TYPE/NAME, e.g. svc/web'),
        (
            "svc/Echo",
            'invalid name "Echo" in target "svc/Echo": names use lowercase letters, digits,'
            " '-' and '.', and start and end with a letter or digit",
        ),
        (
            "pod/a/b",
            'invalid name "a/b" in target "pod/a/b": names use lowercase letters, digits,'
            " '-' and '.', and start and end with a letter or digit",
        ),
        (
            "-web",
            'invalid name "-web" in target "-web": names use lowercase letters, digits,'
            " '-' and '.', and start and end with a letter or digit",
        ),
    ],
)
def test_bad_targets(text: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_target(text)
    assert str(err.value) == message


def test_overlong_name_rejected() -> None:
    with pytest.raises(InputError):
        parse_target("pod/" + "a" * 254)
    assert parse_target("pod/" + "a" * 253).name == "a" * 253


@pytest.mark.parametrize(
    ("text", "mapping"),
    [
        ("8080:80", PortMapping(8080, 80)),
        ("80", PortMapping(80, 80)),
        (":80", PortMapping(0, 80)),
        ("0:80", PortMapping(0, 80)),
        ("8443:https", PortMapping(8443, "https")),
        (":https", PortMapping(0, "https")),
        ("https", PortMapping(0, "https", local_from_remote=True)),
        ("65535:65535", PortMapping(65535, 65535)),
        ("080", PortMapping(80, 80)),
        (" 8080:80 ", PortMapping(8080, 80)),
    ],
)
def test_ports_kubectl_accepts(text: str, mapping: PortMapping) -> None:
    assert parse_port_mapping(text) == mapping


FORM = "expected [LOCAL:]REMOTE, e.g. 8080:80, 80, :80 or 8443:https"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", f'invalid remote port "0" in "0": ports are 1..65535; {FORM}'),
        ("65536", f'invalid remote port "65536" in "65536": ports are 1..65535; {FORM}'),
        ("80:65536", f'invalid remote port "65536" in "80:65536": ports are 1..65535; {FORM}'),
        ("65536:80", f'invalid local port "65536" in "65536:80": ports are 0..65535; {FORM}'),
        ("8080:0", f'invalid remote port "0" in "8080:0": ports are 1..65535; {FORM}'),
        (
            "-1",
            'invalid remote port "-1" in "-1": a number 1..65535 or a port name (up to 15'
            f" lowercase letters, digits and '-'); {FORM}",
        ),
        (
            "-1:80",
            'invalid local port "-1" in "-1:80": a number 0..65535 or nothing (a free port);'
            f" {FORM}",
        ),
        (
            "abc:80",
            'invalid local port "abc" in "abc:80": a number 0..65535 or nothing (a free port);'
            f" {FORM}",
        ),
        ("8080:", f'missing remote port in "8080:": {FORM}'),
        ("1:2:3", f'invalid port "1:2:3": {FORM}'),
        ("", f"missing port: {FORM}"),
        (
            "HTTPS",
            'invalid remote port "HTTPS" in "HTTPS": a number 1..65535 or a port name (up to 15'
            f" lowercase letters, digits and '-'); {FORM}",
        ),
        (
            "9" * 5000,
            f'invalid remote port "{"9" * 5000}" in "{"9" * 5000}": ports are 1..65535; {FORM}',
        ),
    ],
)
def test_bad_ports(text: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_port_mapping(text)
    assert str(err.value) == message


@pytest.mark.parametrize("name", ["http", "h2c", "web-admin", "a1", "abcdefghijklmno"])
def test_valid_port_names(name: str) -> None:
    assert is_valid_port_name(name)


@pytest.mark.parametrize("name", ["123", "-http", "http-", "a--b", "abcdefghijklmnop", "Http"])
def test_invalid_port_names(name: str) -> None:
    assert not is_valid_port_name(name)


# --- properties -------------------------------------------------------------------------

_label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)
_names = st.lists(_label, min_size=1, max_size=4).map(".".join)
_port_names = st.from_regex(r"[a-z]([a-z0-9]{0,6}(-[a-z0-9]{1,6})?)?", fullmatch=True)
_kinds = st.sampled_from(["pod", "service", "deployment", "statefulset", "replicaset"])


@given(kind=_kinds, name=_names)
def test_target_roundtrip(kind: str, name: str) -> None:
    target = Target(kind, name)
    assert parse_target(str(target)) == target


@given(st.text(max_size=60))
def test_target_arbitrary_text_only_input_errors(text: str) -> None:
    try:
        target = parse_target(text)
    except InputError as err:
        assert len(str(err).splitlines()) == 1
    else:
        assert target.kind in {"pod", "service", "deployment", "statefulset", "replicaset"}


@given(
    local=st.integers(min_value=0, max_value=65535),
    remote=st.one_of(st.integers(min_value=1, max_value=65535), _port_names),
)
def test_port_roundtrip(local: int, remote: int | str) -> None:
    mapping = PortMapping(local, remote)
    assert parse_port_mapping(str(mapping)) == mapping
    assert parse_port_mapping(f"{local}:{remote}") == mapping


@given(remote=st.integers(min_value=1, max_value=65535))
def test_single_number_means_same_local_port(remote: int) -> None:
    assert parse_port_mapping(str(remote)) == PortMapping(remote, remote)


@given(st.text(max_size=40))
def test_port_arbitrary_text_only_input_errors(text: str) -> None:
    try:
        mapping = parse_port_mapping(text)
    except InputError as err:
        assert len(str(err).splitlines()) == 1
    else:
        assert 0 <= mapping.local_port <= 65535
        if isinstance(mapping.remote, int):
            assert 1 <= mapping.remote <= 65535
        else:
            assert is_valid_port_name(mapping.remote)
