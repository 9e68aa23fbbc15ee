"""A transport's fatal error as a connection closes stays off the terminal; others do not."""

from __future__ import annotations

import asyncio
import logging

import pytest

from portfwd.eventloop import run


async def _report(context: dict[str, object]) -> None:
    asyncio.get_running_loop().call_exception_handler(context)


def test_a_transport_failing_as_it_closes_is_not_printed(caplog: pytest.LogCaptureFixture) -> None:
    fatal = {
        "message": "Fatal error on SSL protocol",
        "exception": RuntimeError("unable to perform operation on <TCPTransport closed=True>"),
        "protocol": object(),
        "transport": object(),
    }
    with caplog.at_level(logging.DEBUG):
        run(_report(fatal))
    assert not [r for r in caplog.records if r.name == "asyncio"]
    assert any("Fatal error on SSL protocol" in r.getMessage() for r in caplog.records)


def test_other_loop_errors_still_reach_the_default_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        run(_report({"message": "Task exception was never retrieved", "exception": OSError()}))
    assert [r for r in caplog.records if r.name == "asyncio" and r.levelno == logging.ERROR]
