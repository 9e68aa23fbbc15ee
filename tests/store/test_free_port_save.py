"""Issue 18 §6: `profile save` keeps a forward's free-port form (`:8080`) instead of the port
it happened to get, across a restore too, and skips forwards in error with a note."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from portfwd.engine.model import ForwardSpec, ForwardState
from portfwd.store.profiles import load_profiles
from portfwd.store.session import Session
from portfwd.store.state import StateStore
from tests.support.cli import portfwd, private_env
from tests.tui.fakes import FakeManager


async def _run(path: Path, edit: bool = False) -> None:
    """A session: restore, optionally give the first forward a port of the user's, save."""
    engine = FakeManager()
    store = StateStore(path)
    session = Session(engine, store, store.load())
    try:
        await session.start()
        if not engine.snapshot():
            await engine.add(ForwardSpec(target="svc/web", remote_port=8080, name="web"))
            await engine.add(ForwardSpec(target="svc/db", remote_port=5432, local_port=15432))
            fid = await engine.add(ForwardSpec(target="svc/crashy", remote_port=80), start=False)
            engine.set(replace(engine.get(fid), state=ForwardState.ERROR, reason="no pod"))
        if edit:
            first = engine.snapshot()[0]
            engine.set(replace(first, spec=replace(first.spec, local_port=18080)))
        await session.save()
    finally:
        await session.close()


async def test_profile_save_keeps_a_free_port_free_and_skips_forwards_in_error(
    tmp_path: Path,
) -> None:
    env = private_env(tmp_path)
    state = tmp_path / "config" / "state.yaml"
    state.parent.mkdir(mode=0o700, exist_ok=True)
    await _run(state)
    saved = portfwd("profile", "save", "mine", "--state", str(state), env=env)
    assert saved.returncode == 0, saved.stderr
    assert saved.stderr == "skipped svc/crashy 80: in error (no pod)\n"
    mine = load_profiles(tmp_path / "config" / "profiles.yaml").profiles["mine"]
    assert [(f.target, f.ports) for f in mine.forwards] == [
        ("svc/web", (":8080",)),
        ("svc/db", ("15432:5432",)),
    ]
    await _run(state)  # restored on the port it got (40000 here), saved again
    assert "local_port: 40000" in state.read_text()  # a restore listens where it did
    again = portfwd("profile", "save", "mine", "--state", str(state), env=env)
    assert again.returncode == 0, again.stderr
    mine = load_profiles(tmp_path / "config" / "profiles.yaml").profiles["mine"]
    assert mine.forwards[0].ports == (":8080",)
    await _run(state, edit=True)  # the user picks a port: that one is saved
    again = portfwd("profile", "save", "mine", "--state", str(state), env=env)
    assert again.returncode == 0, again.stderr
    mine = load_profiles(tmp_path / "config" / "profiles.yaml").profiles["mine"]
    assert mine.forwards[0].ports == ("18080:8080",)
