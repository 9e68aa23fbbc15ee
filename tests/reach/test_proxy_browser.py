"""A real browser with the PAC file: cluster names through the proxy, everything else direct.

Needs Debian's Chromium (`apt install chromium`), run headless; the test is skipped where it
is not installed (`chromium-headless-shell` will not do: it ignores --proxy-pac-url). The
screenshot is written under the test's tmp_path and its path printed (pytest -s shows it).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from .conftest import Proxy

BROWSER = shutil.which("chromium")

pytestmark = pytest.mark.skipif(BROWSER is None, reason="Chromium is not installed")


async def browse(proxy: Proxy, url: str, tmp_path: Path, *extra: str) -> str:
    assert BROWSER is not None
    proc = await asyncio.create_subprocess_exec(
        BROWSER,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--proxy-pac-url=http://{proxy.where}/proxy.pac",
        "--virtual-time-budget=5000",
        *extra,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return out.decode(errors="replace")


async def test_browser_reaches_a_service_by_name_through_the_pac(
    proxy: Proxy, tmp_path: Path
) -> None:
    dom = await browse(proxy, "http://web.demo/", tmp_path, "--dump-dom")
    assert "hello from web-" in dom
    shot = tmp_path / "web.demo.png"
    await browse(proxy, "http://web.demo/", tmp_path, f"--screenshot={shot}")
    assert shot.stat().st_size > 0
    print(f"screenshot of http://web.demo/ through the proxy: {shot}")
    assert proxy.server.served >= 2


async def test_browser_sends_other_names_direct(proxy: Proxy, tmp_path: Path) -> None:
    await browse(proxy, "http://not-a-cluster.invalid/", tmp_path, "--dump-dom")
    assert proxy.server.pac_served >= 1  # the browser did read the PAC file
    assert proxy.server.served == 0  # and sent nothing through the proxy
    assert proxy.log == []  # not even a refusal: the request never reached it
