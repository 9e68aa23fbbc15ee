"""`portfwd forward --probe ... --probe-interval ...` lines import (and quick-add) with the
probe; a bad one is skipped with the reason."""

from __future__ import annotations

from portfwd.transfer.kubectl_lines import parse_kubectl_lines


def test_a_forward_line_with_a_probe() -> None:
    result = parse_kubectl_lines(
        "portfwd forward svc/web 8080:80 --probe http:/healthz --probe-interval 30s\n"
    )
    assert result.skipped == []
    (spec,) = result.specs
    assert (spec.probe, spec.probe_interval) == ("http:/healthz", 30.0)


def test_a_bad_probe_is_skipped_with_the_reason() -> None:
    result = parse_kubectl_lines("portfwd forward svc/web 8080:80 --probe=udp\n", "in.txt")
    assert result.specs == []
    (skip,) = result.skipped
    assert 'unknown probe "udp"' in skip.reason
