"""Installing portfwd as a user does, from a clone: `python -m build` (the wheel and sdist a
release uploads), `pip install '.[fast]'` into a fresh venv without the developer tools,
`pipx install .` and `uv tool install .`; then the installed commands work: `--version`,
`forward` moves bytes, the kubectl plugin, and `portfwd demo` paints in tmux.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from portfwd.sandbox.cluster import SandboxCluster
from tests.e2e.test_tmux import Tmux

from .helpers import dashboard_first_paint, forward_moves_bytes

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
SCRIPTS = ("portfwd", "kubectl-portfwd", "kubectl_complete-portfwd")
DEV_ONLY = ("pytest", "mypy", "ruff", "hypothesis", "kubernetes", "PyInstaller", "build")

pytestmark = pytest.mark.timeout(600)


def _run(*cmd: str | Path, env: dict[str, str] | None = None, limit: float = 400) -> str:
    done = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=limit, env=env
    )
    assert done.returncode == 0, f"{cmd}: {done.stdout}{done.stderr}"
    return done.stdout


def _source_files() -> set[str]:
    """What portfwd ships: every file under src/portfwd but bytecode."""
    base = ROOT / "src"
    return {
        str(p.relative_to(base))
        for p in (base / "portfwd").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(wheel, sdist) from `python -m build` on the working tree."""
    out = tmp_path_factory.mktemp("dists")
    _run(sys.executable, "-m", "build", "--outdir", out, ROOT)
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return wheels[0], sdists[0]


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with `pip install '<clone>[fast]'`: what running portfwd needs, no more."""
    venv = tmp_path_factory.mktemp("venv") / "v"
    _run(sys.executable, "-m", "venv", venv)
    _run(venv / "bin" / "python", "-m", "pip", "install", "-q", f"{ROOT}[fast]")
    return venv / "bin"


def test_wheel_and_sdist_hold_everything_portfwd_runs_with(dists: tuple[Path, Path]) -> None:
    wheel, sdist = dists
    expected = _source_files()
    assert {"portfwd/py.typed", "portfwd/tui/portfwd.tcss"} <= expected
    assert "portfwd/sandbox/demo_topology.yaml" in expected
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        info = f"portfwd-{VERSION}.dist-info"
        metadata = whl.read(f"{info}/METADATA").decode()
        entry_points = whl.read(f"{info}/entry_points.txt").decode()
    assert expected <= names, sorted(expected - names)
    assert f"\nVersion: {VERSION}\n" in metadata
    for script in SCRIPTS:
        assert f"\n{script} = portfwd." in entry_points
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    assert {"pyproject.toml", "README.md"} <= members
    assert {f"src/{f}" for f in expected} <= members


def test_fresh_venv_has_no_developer_tools(fresh_venv: Path) -> None:
    listed = _run(fresh_venv / "python", "-m", "pip", "list", "--format=freeze").lower()
    names = {line.split("==")[0] for line in listed.splitlines()}
    assert {"portfwd", "uvloop", "textual", "aiohttp"} <= names
    assert not names & {d.lower() for d in DEV_ONLY}
    for script in SCRIPTS:
        assert (fresh_venv / script).is_file()
    assert _run(fresh_venv / "portfwd", "--version") == f"portfwd, version {VERSION}\n"


async def test_fresh_venv_forwards_bytes_alone_and_as_kubectl_plugin(
    fresh_venv: Path, sandbox: SandboxCluster
) -> None:
    kubeconfig = str(sandbox.kubeconfig_path)
    await forward_moves_bytes(
        [str(fresh_venv / "portfwd"), "forward", "--kubeconfig", kubeconfig, "svc/echo", ":80"]
    )
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    env["PATH"] = f"{fresh_venv}{os.pathsep}{env['PATH']}"
    await forward_moves_bytes(["kubectl", "portfwd", "svc/echo", ":80"], env)


def test_fresh_venv_demo_paints_in_tmux(fresh_venv: Path, tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    tmux = Tmux(f"portfwd-fresh-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        screen = dashboard_first_paint(tmux, [str(fresh_venv / "portfwd"), "demo"], tmp_path)
    finally:
        tmux.kill()
    assert "sandbox" in screen


@pytest.fixture
def tool_dirs(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    bin_dir = tmp_path / "bin"
    env = {
        **os.environ,
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(bin_dir),
        "PIPX_MAN_DIR": str(tmp_path / "man"),
        "UV_TOOL_DIR": str(tmp_path / "uv-tools"),
        "UV_TOOL_BIN_DIR": str(bin_dir),
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
    yield bin_dir, env


@pytest.mark.parametrize("tool", ["pipx", "uv"])
def test_tool_install_from_the_clone(tool: str, tool_dirs: tuple[Path, dict[str, str]]) -> None:
    """`pipx install .` and `uv tool install .`, as README says (here with uvloop)."""
    exe = Path(sys.executable).parent / tool
    if not exe.exists():
        pytest.skip(f"{tool} is not installed (make install has it)")
    bin_dir, env = tool_dirs
    verb = ["install"] if tool == "pipx" else ["tool", "install"]
    _run(exe, *verb, "--python", sys.executable, f"{ROOT}[fast]", env=env)
    for script in SCRIPTS:
        assert (bin_dir / script).exists(), sorted(p.name for p in bin_dir.iterdir())
    assert _run(bin_dir / "portfwd", "--version", env=env) == f"portfwd, version {VERSION}\n"
    assert "forward" in _run(bin_dir / "kubectl-portfwd", "--help", env=env)


def test_make_demo_installs_what_portfwd_runs_with_only(tmp_path: Path) -> None:
    """`make demo`'s venv (its install step, run alone: the demo itself is interactive, see
    test_fresh_venv_demo_paints_in_tmux) holds portfwd and uvloop, not the developer tools;
    after it, `make demo` only runs `portfwd demo`."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    venv = tmp_path / "v"
    _run(make, "-C", ROOT, f"VENV={venv}", f"PYTHON={sys.executable}", f"{venv}/bin/.runtime")
    listed = _run(venv / "bin" / "python", "-m", "pip", "list", "--format=freeze").lower()
    names = {line.split("==")[0] for line in listed.splitlines()}
    assert {"portfwd", "uvloop", "textual", "aiohttp"} <= names
    assert not names & {d.lower() for d in DEV_ONLY}
    assert _run(venv / "bin" / "portfwd", "--version") == f"portfwd, version {VERSION}\n"
    planned = _run(make, "-C", ROOT, "-n", f"VENV={venv}", "demo").strip().splitlines()
    assert [line for line in planned if not line.startswith("make")] == [f"{venv}/bin/portfwd demo"]


def test_every_shipped_file_is_in_git() -> None:
    """A fresh clone builds what this tree builds: nothing portfwd ships is left untracked."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = set(_run(git, "-C", ROOT, "ls-files", "src/portfwd").splitlines())
    shipped = {f"src/{f}" for f in _source_files()}
    assert shipped <= tracked, sorted(shipped - tracked)
