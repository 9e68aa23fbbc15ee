"""krelay's targets file -> forwards; UDP ports and relay-only targets are listed as skipped."""

from __future__ import annotations

from pathlib import Path

from portfwd.engine.model import ForwardSpec
from portfwd.transfer.krelay import parse_krelay_targets

DATA = Path(__file__).parent / "data"


def test_the_targets_file() -> None:
    result = parse_krelay_targets((DATA / "krelay_targets.txt").read_text(), "targets.txt")
    assert result.specs == [
        ForwardSpec(
            target="svc/my-service",
            remote_port=80,
            local_port=8080,
            addresses=("127.0.0.1",),  # krelay's default listen address
            name="my-service-80",
        ),
        ForwardSpec(  # the UDP port of the line is skipped, its TCP port kept
            target="deploy/coredns",
            remote_port=9153,
            local_port=9153,
            namespace="kube-system",
            addresses=("127.0.0.1",),
            name="coredns-9153",
        ),
        ForwardSpec(
            target="sts/redis",
            remote_port=6379,
            local_port=6379,
            namespace="payments",
            addresses=("0.0.0.0",),
            name="redis-6379",
        ),
        ForwardSpec(
            target="pod/debug",
            remote_port=7000,
            local_port=7000,
            namespace="payments",
            addresses=("127.0.0.1",),
            name="debug-7000",
        ),
        ForwardSpec(
            target="pod/debug",
            remote_port=7001,
            local_port=7001,
            namespace="payments",
            addresses=("127.0.0.1",),
            name="debug-7001",
        ),
    ]
    reasons = {s.source: s.reason for s in result.skipped}
    assert set(reasons) == {f"targets.txt:{n}" for n in (4, 8, 9, 10, 11, 12)}
    assert reasons["targets.txt:4"].startswith("port 5353:53@udp: UDP")
    assert "IP address" in reasons["targets.txt:8"]
    assert "host name" in reasons["targets.txt:9"]
    assert "no port given" in reasons["targets.txt:10"]
    assert "unknown protocol 'sctp'" in reasons["targets.txt:11"]
    assert "daemonsets" in reasons["targets.txt:12"]


def test_comments_blank_lines_and_crlf() -> None:
    text = "# a\r\n// b\r\n\r\n   \r\nsvc/web 80\r\n"
    result = parse_krelay_targets(text, "t")
    assert [s.target for s in result.specs] == ["svc/web"]
    assert result.skipped == []
