"""`portfwd ls` and `--version` answer without click or the engine (cli/quick.py), and say
exactly what the full command line says."""

from __future__ import annotations

import json
import sys

from portfwd.sandbox.cluster import SandboxCluster
from tests.support.cli import portfwd_async, with_env

from .conftest import DaemonProcess
from .test_cli import add_echo, portfwd, running  # noqa: F401  (running: a fixture)

FULL = "import sys; sys.argv = ['portfwd', *sys.argv[1:]];from portfwd.cli.root import main; main()"
PROBE = (
    "import sys; from portfwd.cli.quick import answer;"
    "ok = answer(sys.argv[1:]);"
    "print(ok, sorted(m for m in sys.modules if m == 'click' or m.startswith('portfwd.engine')))"
)


async def python(code: str, *args: str) -> tuple[int, str, str]:
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=with_env(),
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_ls_answers_like_the_full_command_without_importing_the_engine(
    running: DaemonProcess,  # noqa: F811
    sandbox: SandboxCluster,
) -> None:
    add = await portfwd(*add_echo("--name", "web"))
    assert add.code == 0, add.err
    for args in ((), ("-o", "wide")):
        quick = await portfwd("ls", *args)
        code, full, err = await python(FULL, "ls", *args)
        assert quick.code == code == 0, err
        # Uptime may tick between the two runs; everything else is the same text.
        assert quick.out.split()[:20] == full.split()[:20]
        code, probe, err = await python(PROBE, "ls", *args)
        assert (code, probe.splitlines()[-1]) == (0, "True []"), err
    # -o json: the same records, field for field (the figures that move, rates, pings and
    # the like, may differ between the two reads; the fields and what the forward is may not).
    quick = await portfwd("ls", "-o", "json")
    code, full, err = await python(FULL, "ls", "-o", "json")
    assert quick.code == code == 0, err
    quick_data, full_data = json.loads(quick.out), json.loads(full)
    assert _shape(quick_data) == _shape(full_data)
    (mine,) = quick_data["forwards"]
    assert mine["spec"] == full_data["forwards"][0]["spec"] and mine["spec"]["name"] == "web"
    assert (mine["id"], mine["state"]) == (full_data["forwards"][0]["id"], "active")
    code, probe, err = await python(PROBE, "ls", "-o", "json")
    assert (code, probe.splitlines()[-1]) == (0, "True []"), err


def _shape(data: object) -> object:
    """The keys at every level, without the values (a list's length is a value: a rate
    history may grow between the two reads)."""
    if isinstance(data, dict):
        return {k: _shape(v) for k, v in data.items()}
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return [_shape(v) for v in data]
    return type(data).__name__ if isinstance(data, list) else None


async def test_version_and_anything_else_take_their_usual_path() -> None:
    code, probe, err = await python(PROBE, "--version")
    assert code == 0, err
    assert probe.splitlines()[0].startswith("portfwd, version ")
    assert probe.splitlines()[1] == "True []"
    code, probe, _ = await python(PROBE, "ls", "-o", "yaml")
    assert probe.strip().startswith("False")
    ran = await portfwd_async("--version", env=with_env(), limit=60)
    assert ran.code == 0 and ran.out.startswith("portfwd, version ")


def test_the_quick_listing_asks_for_the_tables_snapshot_operation() -> None:
    from portfwd.daemon import ops
    from portfwd.daemon.sync_client import SNAPSHOT_OP

    assert ops.SNAPSHOT_ALL.name == SNAPSHOT_OP
