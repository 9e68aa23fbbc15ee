"""Hardening (issue 8, items 3, 4 and 9): the session file portfwd reads and writes.

- Item 3: a session entry's `kubeconfig:` decides which exec plugin runs at restore. A session
  file, config directory or such kubeconfig that another user could change (group/other
  writable, or owned by someone else) is refused in one line with the fix, like ssh's
  StrictModes. The suite runs as root: "another user" is uid 12345 via chown.
- Item 4: an 8 MB session file took 78 s and 818 MB; an alias bomb would take much more. Both
  are refused (moved aside, with the limit named) without being parsed.
- Item 9: a FIFO at the state path blocked the load forever, a device would be "replaced", a
  symlinked state file was silently replaced by a regular file. Non-regular files are refused
  without blocking; a symlink is written through, atomically, in its target's directory.
"""

from __future__ import annotations

import itertools
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState
from portfwd.errors import PortfwdError
from portfwd.store.state import StateStore
from tests.kube.test_config_kit import base_env

FIXED = 1_780_000_000.0
BACKUP = "state.yaml.bak-20260528T202640"
OTHER_UID = 12345

ENTRY = (
    "- id: f{n:06d}\n"
    "  target: svc/web\n"
    "  remote_port: 80\n"
    "  local_port: 0\n"
    "  addresses: [127.0.0.1]\n"
    "  reconnect: true\n"
    "  running: false\n"
    "  namespace: demo\n"
    "  context: sandbox\n"
)

STOPPED_B = ForwardSnapshot(
    id="b", spec=ForwardSpec(target="svc/api", remote_port=443), state=ForwardState.STOPPED
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")


def session(*entries: dict[str, object]) -> str:
    return yaml.safe_dump({"version": 1, "forwards": list(entries)})


def store(path: Path) -> StateStore:
    return StateStore(path, clock=lambda: FIXED)


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    """A private config dir (mode 0700, as portfwd creates it)."""
    d = tmp_path / "cfg"
    d.mkdir(mode=0o700)
    return d


# -- item 4: size and alias limits -------------------------------------------------------------


LOAD_IN_A_SMALL_PROCESS = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from pathlib import Path
from portfwd.store.state import StateStore
result = StateStore(Path(sys.argv[1]), clock=lambda: 1_780_000_000.0).load()
print(json.dumps({"forwards": len(result.forwards), "warnings": result.warnings}))
"""


def test_an_8_mb_session_file_is_moved_aside_unparsed(cfg: Path) -> None:
    """Loaded in a child process with 1 GiB of address space and a deadline: parsing it, as
    portfwd used to (78 s, 818 MB), fails the test instead of stalling the suite."""
    path = cfg / "state.yaml"
    with path.open("w") as fh:
        fh.write("version: 1\nforwards:\n")
        n = 0
        while fh.tell() < 8 * 1024 * 1024:
            fh.write(ENTRY.format(n=n))
            n += 1
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_IN_A_SMALL_PROCESS, str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(proc.stdout) == {
        "forwards": 0,
        "warnings": [
            f"session file {path} is unusable (it is 8.0 MiB, over portfwd's limit of 1 MiB); "
            f"moved it to {cfg / BACKUP} and started with an empty session"
        ],
    }
    assert (cfg / BACKUP).stat().st_size >= 8 * 1024 * 1024  # kept for the user


@pytest.mark.parametrize("levels", [9, 10])
def test_an_alias_bomb_in_the_session_file_is_moved_aside(cfg: Path, levels: int) -> None:
    lines = ["version: 1", "x-a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    names = "abcdefghijk"[:levels]
    for prev, name in itertools.pairwise(names):
        lines.append(f"x-{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    lines.append("forwards: []")
    path = cfg / "state.yaml"
    path.write_text("\n".join(lines) + "\n")
    result = store(path).load()
    assert result.forwards == []
    assert result.warnings[0].startswith(
        f"session file {path} is unusable (it has more YAML nodes than portfwd's limit of "
        "200,000, counting aliases expanded)"
    )


# -- item 9: FIFOs, devices, directories, symlinks ----------------------------------------------


def _refused(path: Path) -> str:
    with pytest.raises(PortfwdError) as err:
        store(path).load()
    return str(err.value)


def test_a_fifo_at_the_state_path_is_refused_without_blocking(cfg: Path) -> None:
    path = cfg / "state.yaml"
    os.mkfifo(path, 0o600)
    outcome: list[BaseException | None] = []

    def load() -> None:
        try:
            store(path).load()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    loader.join(10)
    if loader.is_alive():  # the bug: blocked in open(); release it, then fail
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        loader.join(10)
        pytest.fail("loading a FIFO blocked")
    assert isinstance(outcome[0], PortfwdError)
    assert str(outcome[0]) == (
        f"session file {path} is a FIFO (named pipe), not a regular file; "
        "remove it or choose another file with --state FILE"
    )
    assert stat.S_ISFIFO(os.lstat(path).st_mode)  # left alone


@pytest.mark.parametrize("how", ["device", "link-to-device"])
def test_a_device_at_the_state_path_is_refused(cfg: Path, how: str) -> None:
    path = Path("/dev/null") if how == "device" else cfg / "state.yaml"
    if how == "link-to-device":
        path.symlink_to("/dev/null")
    assert _refused(path) == (
        f"session file {path} is a character device, not a regular file; "
        "remove it or choose another file with --state FILE"
    )


def test_a_directory_at_the_state_path_is_refused(cfg: Path) -> None:
    path = cfg / "state.yaml"
    path.mkdir()
    assert _refused(path).startswith(f"session file {path} is a directory, not a regular file")
    assert path.is_dir()


async def test_a_symlinked_state_file_is_written_through(cfg: Path, tmp_path: Path) -> None:
    """A dotfile manager's link stays a link; the file it points to is replaced atomically in
    its own directory (no temp file next to the link), mode 0600."""
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir(mode=0o700)
    target = dotfiles / "portfwd-state.yaml"
    target.write_text(session({"id": "a", "target": "svc/web", "remote_port": 80}))
    link = cfg / "state.yaml"
    link.symlink_to(target)
    st = store(link)
    loaded = st.load()
    assert [f.id for f in loaded.forwards] == ["a"]  # read through the link
    assert await st.save([STOPPED_B])
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert [f["id"] for f in yaml.safe_load(target.read_text())["forwards"]] == ["b"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(cfg) == ["state.yaml"]
    assert os.listdir(dotfiles) == ["portfwd-state.yaml"]


async def test_a_dangling_symlink_gets_its_target_created(cfg: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "state.yaml"
    link = cfg / "state.yaml"
    link.symlink_to(target)
    st = store(link)
    assert st.load().forwards == []
    assert await st.save([STOPPED_B])
    assert link.is_symlink() and target.is_file()


def test_a_corrupt_file_behind_a_symlink_is_moved_aside_next_to_its_target(
    cfg: Path, tmp_path: Path
) -> None:
    target = tmp_path / "dotfiles" / "state.yaml"
    target.parent.mkdir(mode=0o700)
    target.write_text("forwards: [unclosed\n")
    link = cfg / "state.yaml"
    link.symlink_to(target)
    result = store(link).load()
    assert (target.parent / BACKUP).exists() and not target.exists()
    assert link.is_symlink()  # the link stays, for the next save to write through
    assert "not valid YAML" in result.warnings[0]


# -- item 3: files and directories others can change --------------------------------------------


def test_a_session_file_writable_by_others_is_refused(cfg: Path) -> None:
    path = cfg / "state.yaml"
    path.write_text(session())
    path.chmod(0o666)
    assert _refused(path) == (
        f"session file {path} is writable by group or others, so they could change what "
        f"portfwd runs; fix it with: chmod go-w {path}"
    )
    path.chmod(0o620)  # group-writable only: the same
    assert "is writable by group or others" in _refused(path)


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o722], ids=oct)
def test_a_config_dir_writable_by_others_is_refused(cfg: Path, mode: int) -> None:
    path = cfg / "state.yaml"
    path.write_text(session())
    path.chmod(0o600)
    cfg.chmod(mode)
    assert _refused(path) == (
        f"directory {cfg} (above the session file {path}) is writable by group or others, so "
        f"they could change what portfwd runs; fix it with: chmod go-w {cfg}"
    )


def test_a_missing_session_in_a_writable_dir_is_refused_too(cfg: Path) -> None:
    """Nothing there yet: someone could still plant the file before portfwd saves."""
    cfg.chmod(0o777)
    assert "is writable by group or others" in _refused(cfg / "state.yaml")


def test_a_sticky_shared_directory_is_fine(tmp_path: Path) -> None:
    """Like /tmp: others may create files there, not replace ours."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    path = shared / "state.yaml"
    path.write_text(session())
    path.chmod(0o600)
    assert store(path).load().warnings == []


@needs_root
def test_a_session_file_owned_by_another_user_is_refused(cfg: Path) -> None:
    path = cfg / "state.yaml"
    path.write_text(session())
    path.chmod(0o600)
    os.chown(path, OTHER_UID, OTHER_UID)
    assert _refused(path) == (
        f"session file {path} belongs to uid {OTHER_UID}, not to you (user root (uid 0)), so "
        f"that user could change what portfwd runs; take it over (chown 0 {path}) or remove it"
    )


@needs_root
def test_a_config_dir_owned_by_another_user_is_refused(cfg: Path) -> None:
    path = cfg / "state.yaml"
    path.write_text(session())
    os.chown(cfg, OTHER_UID, OTHER_UID)
    assert _refused(path).startswith(
        f"directory {cfg} (above the session file {path}) belongs to uid {OTHER_UID}"
    )


def _named_kubeconfig(cfg: Path, tmp_path: Path, mode: int) -> tuple[Path, Path]:
    kc = tmp_path / "kube" / "config"
    kc.parent.mkdir(mode=0o700)
    kc.write_text("apiVersion: v1\nkind: Config\n")
    kc.chmod(mode)
    path = cfg / "state.yaml"
    entry = {"id": "a", "target": "svc/web", "remote_port": 80, "kubeconfig": str(kc)}
    path.write_text(session(entry))
    path.chmod(0o600)
    return path, kc


def test_a_kubeconfig_named_by_the_session_and_writable_by_others_is_refused(
    cfg: Path, tmp_path: Path
) -> None:
    path, kc = _named_kubeconfig(cfg, tmp_path, 0o646)
    assert _refused(path) == (
        f"kubeconfig {kc} (named by the session file {path}) is writable by group or others, "
        f"so they could change what portfwd runs; fix it with: chmod go-w {kc}"
    )


@needs_root
def test_a_kubeconfig_named_by_the_session_and_owned_by_another_user_is_refused(
    cfg: Path, tmp_path: Path
) -> None:
    path, kc = _named_kubeconfig(cfg, tmp_path, 0o600)
    os.chown(kc, OTHER_UID, OTHER_UID)
    assert _refused(path).startswith(
        f"kubeconfig {kc} (named by the session file {path}) belongs to uid {OTHER_UID}"
    )


def test_a_private_named_kubeconfig_and_a_missing_one_are_fine(cfg: Path, tmp_path: Path) -> None:
    path, kc = _named_kubeconfig(cfg, tmp_path, 0o600)
    assert [f.id for f in store(path).load().forwards] == ["a"]
    kc.unlink()  # gone: the forward shows its error when started; nothing to refuse
    assert [f.id for f in store(path).load().forwards] == ["a"]


def _dashboard(tmp_path: Path, state: Path) -> subprocess.CompletedProcess[str]:
    """`portfwd --state STATE` without a terminal: it must refuse before it needs one."""
    return subprocess.run(
        [sys.executable, "-m", "portfwd", "--state", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**base_env(tmp_path / "home"), "TERM": "dumb"},
        check=False,
    )


def test_the_dashboard_refuses_to_start_and_the_plugin_never_runs(
    cfg: Path, tmp_path: Path
) -> None:
    """The issue's case: an exec plugin named only by a session entry's kubeconfig ran when
    the dashboard started. Now `portfwd` prints one line and exits 1 before anything runs."""
    marker = tmp_path / "plugin-ran"
    plugin = tmp_path / "plugin.sh"
    plugin.write_text(f"#!/bin/sh\ntouch {marker}\n")
    plugin.chmod(0o755)
    kc = tmp_path / "shared" / "kubeconfig"
    kc.parent.mkdir()
    kc.write_text(
        yaml.safe_dump(
            {
                "current-context": "c",
                "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:1"}}],
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                "users": [
                    {
                        "name": "u",
                        "user": {
                            "exec": {
                                "apiVersion": "client.authentication.k8s.io/v1",
                                "command": str(plugin),
                                "interactiveMode": "Never",
                            }
                        },
                    }
                ],
            }
        )
    )
    kc.chmod(0o666)
    state = cfg / "state.yaml"
    entry = {
        "id": "a",
        "target": "svc/web",
        "remote_port": 80,
        "kubeconfig": str(kc),
        "running": True,
    }
    state.write_text(session(entry))
    state.chmod(0o600)
    proc = _dashboard(tmp_path, state)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        f"error: kubeconfig {kc} (named by the session file {state}) is writable by group or "
        f"others, so they could change what portfwd runs; fix it with: chmod go-w {kc}\n"
    )
    assert not marker.exists()
    assert yaml.safe_load(state.read_text())["forwards"] == [entry]  # untouched


def test_the_dashboard_refuses_a_fifo_state_file_in_one_line(cfg: Path, tmp_path: Path) -> None:
    fifo = cfg / "state.yaml"
    os.mkfifo(fifo, 0o600)
    proc = _dashboard(tmp_path, fifo)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        f"error: session file {fifo} is a FIFO (named pipe), not a regular file; "
        "remove it or choose another file with --state FILE\n"
    )
