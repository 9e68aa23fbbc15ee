"""Without the MCP SDK (a plain install, the single-file binary), `portfwd mcp` is one line
saying how to get it; no other command loads the SDK."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support.cli import private_env, run

NO_SDK = """
import sys
sys.modules["mcp"] = None  # as if it were not installed: importing it raises ImportError
sys.argv = ["portfwd", *sys.argv[1:]]
from portfwd.cli.root import main
main()
"""

LOADS_SDK = """
import sys
sys.argv = ["portfwd", "ls"]
from portfwd.cli.root import main
try:
    main()
except SystemExit:
    pass
print(sorted(m for m in sys.modules if m == "mcp" or m.startswith(("mcp.", "portfwd.mcp"))))
"""


async def test_without_the_sdk_it_says_how_to_get_it(tmp_path: Path) -> None:
    ran = await run(sys.executable, "-c", NO_SDK, "mcp", env=private_env(tmp_path))
    assert ran.code == 1, ran
    assert ran.one_error() == (
        "error: portfwd mcp needs the MCP Python SDK (mcp is missing): pip install 'portfwd[mcp]'"
    )


async def test_ls_does_not_load_it(tmp_path: Path) -> None:
    ran = await run(sys.executable, "-c", LOADS_SDK, env=private_env(tmp_path))
    assert ran.out.strip().splitlines()[-1] == "[]", ran
