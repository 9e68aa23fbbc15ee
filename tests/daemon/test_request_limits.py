"""A request whose id has 100,000 digits is a bad request, answered in one line (it was no
reply and a traceback in the daemon's log: Python refuses to read integers over 4,300
digits with a ValueError, not JSON's own error)."""

from __future__ import annotations

import pytest

from portfwd.daemon import protocol as proto

from .conftest import InProcessDaemon
from .test_protocol import Raw, one_error_then_eof, still_serves

pytestmark = pytest.mark.timeout(120)

HUGE = b"9" * 100_000


def test_a_huge_id_is_a_protocol_error() -> None:
    with pytest.raises(proto.ProtocolError, match="4300 digits"):
        proto.parse_request(b'{"id": ' + HUGE + b', "op": "status"}\n')


@pytest.mark.parametrize("greets", [True, False], ids=["after-hello", "as-hello"])
async def test_the_daemon_answers_bad_request_for_a_huge_id(
    daemon: InProcessDaemon, greets: bool
) -> None:
    raw = await Raw.open(daemon.paths.socket)
    try:
        if greets:
            await raw.said_hello()
        await raw.send(b'{"id": ' + HUGE + b', "op": "status"}\n')
        message = await one_error_then_eof(raw)
    finally:
        raw.close()
    assert message["id"] is None
    assert message["error"]["type"] == proto.BAD_REQUEST, message
    assert "digits" in message["error"]["message"]
    await still_serves(daemon)
