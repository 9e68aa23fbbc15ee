"""The HTTP request log in files: one per forward, 0600, rotated at its cap, never through a
symbolic link, and refused (one line saying how to fix it) in a directory others can write."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from portfwd.engine.events import LogLine
from portfwd.engine.httplog_files import HttpLogFiles
from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState, LogEntry, LogKind, LogLevel
from portfwd.sandbox.cluster import SandboxCluster
from tests.support.wait import eventually

pytestmark = pytest.mark.timeout(60)


def line(fid: str, text: str, kind: LogKind = LogKind.HTTP) -> LogLine:
    return LogLine(fid, LogEntry(1_780_000_000.0, LogLevel.INFO, text, kind))


def private_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "http-logs"
    directory.mkdir(mode=0o700)
    return directory


def test_each_forward_has_its_own_private_file_with_only_its_http_lines(tmp_path: Path) -> None:
    directory = private_dir(tmp_path)
    files = HttpLogFiles(directory, {"a": "web", "b": "b"}.get)
    assert files.start() == ""
    files.offer(line("a", "127.0.0.1:1 GET / -> 200, 5 B in 1 ms"))
    files.offer(line("a", "resolving svc/web", LogKind.RESOLVED))
    files.offer(line("b", "127.0.0.1:2 GET /x -> 404, 9 B in 2 ms"))
    files.offer(line("gone", "127.0.0.1:3 GET /y -> 200"))
    files.offer(LogLine(None, LogEntry(0.0, LogLevel.INFO, "app", LogKind.HTTP)))
    files.close()
    web = (directory / "web.http.log").read_text()
    assert web == "2026-05-28T20:26:40Z 127.0.0.1:1 GET / -> 200, 5 B in 1 ms\n"
    assert "GET /x -> 404" in (directory / "b.http.log").read_text()
    assert sorted(p.name for p in directory.iterdir()) == ["b.http.log", "web.http.log"]
    assert stat.S_IMODE(os.stat(directory / "web.http.log").st_mode) == 0o600


def test_a_file_is_rotated_at_its_cap_and_the_oldest_dropped(tmp_path: Path) -> None:
    directory = private_dir(tmp_path)
    files = HttpLogFiles(directory, lambda fid: "web", max_bytes=1000, backups=2)
    assert files.start() == ""
    for n in range(100):  # 100 lines of ~60 bytes: 6 KB through a 1 KB cap
        files.offer(line("a", f"127.0.0.1:1 GET /{n:04d} -> 200, 5 B in 1 ms"))
    files.close()
    names = sorted(p.name for p in directory.iterdir())
    assert names == ["web.http.log", "web.http.log.1", "web.http.log.2"]
    assert all((directory / n).stat().st_size <= 1000 for n in names)
    assert "GET /0099 " in (directory / "web.http.log").read_text()
    assert "GET /0000 " not in "".join((directory / n).read_text() for n in names)


def test_a_directory_others_can_write_is_refused_with_the_fix(tmp_path: Path) -> None:
    directory = private_dir(tmp_path)
    directory.chmod(0o777)
    files = HttpLogFiles(directory, lambda fid: "web")
    problem = files.start()
    assert "writable by group or others" in problem and "chmod go-w" in problem
    files.offer(line("a", "GET / -> 200"))
    files.close()
    assert list(directory.iterdir()) == []


def test_a_symbolic_link_in_place_of_the_file_is_not_followed(tmp_path: Path) -> None:
    directory = private_dir(tmp_path)
    target = tmp_path / "precious"
    target.write_text("mine\n")
    (directory / "web.http.log").symlink_to(target)
    files = HttpLogFiles(directory, lambda fid: "web")
    assert files.start() == ""
    files.offer(line("a", "GET / -> 200"))
    files.close()
    assert target.read_text() == "mine\n"


async def test_a_forward_with_the_http_log_writes_its_file(
    sandbox: SandboxCluster, tmp_path: Path
) -> None:
    directory = private_dir(tmp_path)
    manager = Manager(kubeconfig=str(sandbox.kubeconfig_path), http_log_dir=str(directory))
    try:
        spec = ForwardSpec(target="svc/web", remote_port=80, http_log=True, name="web")
        fid = await manager.add(spec)
        assert manager.get(fid).state is ForwardState.ACTIVE, manager.get(fid).reason
        reader, writer = await asyncio.open_connection("127.0.0.1", manager.get(fid).local_port)
        writer.write(b"GET /nope HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
        await asyncio.wait_for(reader.read(-1), 20)
        writer.close()
        path = directory / "web.http.log"
        await eventually(lambda: path.exists() and "GET /nope -> 404" in path.read_text(), 20)
    finally:
        await asyncio.wait_for(manager.shutdown(), 20)
