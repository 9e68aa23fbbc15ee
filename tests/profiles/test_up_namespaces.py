"""A profile's `namespaces:` entries: checked with file:line:col, and `portfwd up` forwards
every Service of them (as `portfwd ns` does) beside the profile's forwards."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

from portfwd.sandbox.cluster import SandboxCluster
from portfwd.store.profiles import load_profiles, load_text, profile_to_node
from portfwd.store.profiles_model import ProfileNamespace
from tests.support.cli import portfwd, private_env, write_private

from .test_profile_cli import SESSION
from .test_up import LINE_RE, echo

GOOD = """\
version: 1
profiles:
  p:
    defaults: {context: sandbox}
    namespaces:
      - namespace: demo
        exclude: [dns, toolbox]
      - {namespace: data, selector: app=postgres, context: sandbox-2, exclude: redis}
"""


def test_namespace_entries_are_read_with_the_defaults_applied() -> None:
    loaded = load_text(GOOD, "p.yaml")
    assert loaded.problems == []
    prof = loaded.profiles["p"]
    assert prof.namespace_runs(kubeconfig="/k") == [
        ProfileNamespace("demo", "sandbox", "/k", None, ("dns", "toolbox")),
        ProfileNamespace("data", "sandbox-2", "/k", "app=postgres", ("redis",)),
    ]
    node = profile_to_node(prof)  # a save keeps them
    assert dict(node["namespaces"][0]) == {
        "namespace": "demo",
        "exclude": ["dns", "toolbox"],
    }


def test_bad_namespace_entries_are_located() -> None:
    text = """\
version: 1
profiles:
  p:
    namespaces:
      - {namespace: demo}
      - {context: sandbox}
      - {namespace: Demo_1}
      - {namespace: data, exclude: [ok, "Not Ok"], selectr: a=b}
      - {namespace: demo}
      - just-a-name
"""
    problems = [str(p) for p in load_text(text, "p.yaml").problems]
    assert problems == [
        "p.yaml:6:9: this namespaces entry has no namespace",
        "p.yaml:7:21: invalid namespace \"Demo_1\": lowercase letters, digits and '-'",
        'p.yaml:8:41: exclude: "Not Ok" is not a Service name',
        'p.yaml:8:52: unknown key "selectr" (did you mean "selector"?)',
        'p.yaml:9:21: namespace "demo" is listed twice (also line 5); merge the two entries',
        "p.yaml:10:9: a namespaces entry must be a mapping (namespace, context, selector, "
        "exclude), not text",
    ]


def test_saving_the_session_over_a_profile_keeps_its_namespaces(tmp_path: Path) -> None:
    env = private_env(tmp_path)
    state = write_private(tmp_path / "state.yaml", SESSION)
    path = write_private(tmp_path / "config" / "profiles.yaml", GOOD)
    result = portfwd("profile", "save", "p", "--state", str(state), env=env)
    assert result.returncode == 0, result.stderr
    saved = load_profiles(path).profiles["p"]
    assert len(saved.forwards) == 2
    assert [n.namespace for n in saved.namespaces] == ["demo", "data"]
    assert "exclude: [dns, toolbox]" in path.read_text()  # as written


def test_dry_run_says_what_a_namespace_entry_would_forward(tmp_path: Path) -> None:
    env = private_env(tmp_path)
    write_private(tmp_path / "config" / "profiles.yaml", GOOD)
    result = portfwd("up", "p", "--dry-run", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "ns/demo: would forward every Service of namespace demo (context sandbox) except dns,"
        " toolbox",
        "ns/data: would forward every Service of namespace data (context sandbox-2) matching"
        " -l app=postgres except redis",
    ]


def seed_addresses(config: Path, names: list[str]) -> dict[str, str]:
    """Addresses of this test process's own (by pid), so parallel tests binding the same
    Services' native ports never meet on one hashed address."""
    pid = os.getpid()
    net = f"127.{200 + (pid >> 8) % 50}.{pid & 255}"
    table = {f"sandbox/demo/{n}": f"{net}.{i}" for i, n in enumerate(sorted(names), 101)}
    (config / "reach-addresses.json").write_text(json.dumps(table))
    return {n: table[f"sandbox/demo/{n}"] for n in names}


ROW_RE = re.compile(r"^ns/demo: ([\w-]+)\.demo\s+(127\.\d+\.\d+\.\d+):(\d+)\s+(\d+)")


async def test_up_forwards_a_whole_namespace_beside_a_forward(
    sandbox: SandboxCluster, tmp_path: Path
) -> None:
    env = private_env(tmp_path)
    seeded = seed_addresses(tmp_path / "config", ["api", "crashy", "dns", "echo", "web"])
    kubeconfig = sandbox.kubeconfig_path
    write_private(
        tmp_path / "config" / "profiles.yaml",
        f"""\
profiles:
  both:
    defaults: {{kubeconfig: "{kubeconfig}", context: sandbox, namespace: demo}}
    namespaces:
      - {{namespace: demo, exclude: [api]}}
    forwards:
      - {{name: echo, target: svc/echo, ports: [":80"], address: 127.0.0.1}}
""",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "portfwd",
        "up",
        "both",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    rows: dict[str, tuple[str, int]] = {}
    ports: dict[str, int] = {}
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        while "web" not in rows or "echo" not in ports:  # the table, and the forward's line
            try:
                async with asyncio.timeout(30):
                    raw = await proc.stdout.readline()
            except TimeoutError:
                raise AssertionError("\n".join(lines)) from None
            assert raw, f"portfwd up ended: {lines}"
            line = raw.decode().rstrip("\n")
            lines.append(line)
            if row := ROW_RE.match(line):
                rows[row.group(1)] = (row.group(2), int(row.group(3)))
            if fwd := LINE_RE.match(line):
                ports[fwd.group(1)] = int(fwd.group(2))
        assert "api" not in rows  # excluded
        address, port = rows["web"]
        assert address == seeded["web"]  # kept from the address table
        assert port == 80  # its native port (the tests run as root)
        reader, writer = await asyncio.open_connection(address, port)
        try:
            writer.write(b"GET /cluster HTTP/1.1\r\nHost: web.demo\r\nConnection: close\r\n\r\n")
            async with asyncio.timeout(20):
                answer = await reader.read()
        finally:
            writer.close()
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"sandbox\n")
        assert rows["echo"][0] != address  # a Service address each
        assert await echo(ports["echo"], b"the forward") == b"the forward"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(30):
                _, err = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert "daemon" not in err.decode()  # none runs: nothing to say about one


def test_export_says_it_leaves_the_namespaces_out(tmp_path: Path) -> None:
    env = private_env(tmp_path)
    text = GOOD + "    forwards:\n      - {name: web, target: svc/web, ports: ['8080:80']}\n"
    write_private(tmp_path / "config" / "profiles.yaml", text)
    result = portfwd("export", "p", "--format", "kubectl", env=env)
    assert result.returncode == 1  # some entries were not written
    assert "svc/web 8080:80" in result.stdout
    assert result.stderr.splitlines()[:2] == [
        "ns/demo: skipped namespace demo: a whole namespace, not a forward: run `portfwd up` "
        "or `portfwd ns demo --context sandbox`",
        "ns/data: skipped namespace data: a whole namespace, not a forward: run `portfwd up` "
        "or `portfwd ns data --context sandbox-2`",
    ]
