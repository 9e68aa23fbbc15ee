"""Copying text to the clipboard, and saying honestly what was done.

A terminal app has one way to reach the clipboard, the OSC 52 escape sequence, and nothing
answers whether it worked. Inside tmux it is dropped by default (`set-clipboard external`
means tmux itself may set the clipboard, applications may not), so there the text goes into
tmux's paste buffer with `tmux load-buffer -w -`, which also hands it to the outer terminal's
clipboard the way tmux's own copy mode does. Elsewhere OSC 52 is sent and the message says
that a terminal without OSC 52 ignores it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

TMUX_TIMEOUT = 5.0  # seconds for one tmux command (it answers in milliseconds)


@dataclass(frozen=True)
class Copied:
    how: str  # "tmux", "osc52"
    message: str  # what was done, for the toast's title


@dataclass(frozen=True)
class _Run:
    ok: bool
    output: str


async def _tmux(*args: str, stdin: str | None = None) -> _Run:
    try:
        proc = await asyncio.create_subprocess_exec(
            "tmux",
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        return _Run(False, exc.strerror or str(exc))
    data = stdin.encode() if stdin is not None else None
    try:
        async with asyncio.timeout(TMUX_TIMEOUT):
            out, err = await proc.communicate(data)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return _Run(False, "tmux did not answer")
    text = (out if proc.returncode == 0 else err).decode(errors="replace").strip()
    return _Run(proc.returncode == 0, text)


async def copy_text(
    text: str,
    osc52: Callable[[str], None],
    environ: Mapping[str, str] | None = None,
) -> Copied:
    """Put `text` on the clipboard as well as this terminal allows; say what was done."""
    env = os.environ if environ is None else environ
    if env.get("TMUX"):
        loaded = await _tmux("load-buffer", "-w", "-", stdin=text)
        if loaded.ok:
            return Copied(
                "tmux",
                "Copied to tmux's paste buffer (prefix ] pastes it) and passed to the "
                "terminal's clipboard (if it accepts OSC 52)",
            )
        loaded = await _tmux("load-buffer", "-", stdin=text)  # a tmux older than 3.2: no -w
        if loaded.ok:
            return Copied(
                "tmux",
                "Copied to tmux's paste buffer (prefix ] pastes it); this tmux cannot pass "
                "it on to the terminal's clipboard",
            )
        osc52(text)
        setting = await _tmux("show-options", "-gv", "set-clipboard")
        mode = setting.output if setting.ok else "unknown"
        return Copied(
            "osc52",
            f"tmux refused the copy ({loaded.output}); sent OSC 52, which tmux drops unless "
            f"set-clipboard is on (it is {mode})",
        )
    osc52(text)
    if env.get("STY"):
        return Copied(
            "osc52",
            "Sent to the terminal's clipboard (OSC 52); GNU screen drops it unless it "
            "passes OSC 52 on",
        )
    return Copied(
        "osc52",
        "Sent to the terminal's clipboard (OSC 52); a terminal without OSC 52 ignores it",
    )
