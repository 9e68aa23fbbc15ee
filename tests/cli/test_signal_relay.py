"""`portfwd run` passes its signals on to COMMAND: also one that comes while COMMAND is
being started (before, the default disposition was back for that moment: a SIGTERM then
killed portfwd and left the command running on its own)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from portfwd.cli.child import SignalRelay, wait


async def test_a_signal_before_the_command_exists_reaches_it_once_it_does() -> None:
    with SignalRelay() as relay:
        os.kill(os.getpid(), signal.SIGHUP)  # as a supervisor would, mid-start
        await asyncio.wait_for(relay.heard.wait(), 10)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import time; time.sleep(60)"
        )
        relay.attach(proc)
        status = await asyncio.wait_for(wait(proc), 30)
    assert status == 128 + signal.SIGHUP  # it got it (and died of it), not 60 s later
