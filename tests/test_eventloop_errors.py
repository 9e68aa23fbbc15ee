"""A transport's fatal error as a connection closes stays off the terminal; others do not."""

from __future__ import annotations

import asyncio
import logging

import pytest

from portfwd.engine.host import EngineThread
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


def test_the_dashboards_engine_thread_keeps_them_off_the_terminal_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = EngineThread()
    host.start()
    try:
        with caplog.at_level(logging.DEBUG):
            host.submit(
                _report(
                    {
                        "message": "Fatal error on transport",
                        "exception": ConnectionResetError(),
                        "transport": object(),
                    }
                )
            ).result(10)
    finally:
        host.stop()
    assert not [r for r in caplog.records if r.name == "asyncio"]
    assert any("Fatal error on transport" in r.getMessage() for r in caplog.records)
