"""`portfwd import` / `portfwd export` as a user runs them: output, stderr, exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner, Result

from portfwd.cli import transfer as commands
from portfwd.cli.transfer import export_command, import_command
from portfwd.engine.model import ForwardSpec

DATA = Path(__file__).parent / "data"


def _import(*args: str, input: str | bytes | None = None) -> Result:
    return CliRunner().invoke(import_command, list(args), input=input)


def _export(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(export_command, list(args), input=input)


def test_all_imported_exits_0_with_yaml_on_stdout_and_the_table_on_stderr() -> None:
    res = _import("-", input="kubectl -n demo port-forward svc/web 8080:80 9090 &\n")
    assert res.exit_code == 0, res.stderr
    assert yaml.safe_load(res.stdout) == [
        {
            "name": "web-80",
            "namespace": "demo",
            "target": "svc/web",
            "ports": ["8080:80"],
            "address": "localhost",
            "reconnect": True,
        },
        {
            "name": "web-9090",
            "namespace": "demo",
            "target": "svc/web",
            "ports": ["9090"],
            "address": "localhost",
            "reconnect": True,
        },
    ]
    lines = res.stderr.splitlines()
    assert lines[0] == "found 2 forward(s) in stdin:"
    assert lines[1].split() == ["NAME", "CONTEXT", "NAMESPACE", "TARGET", "PORTS"]
    assert lines[2].split() == ["web-80", "-", "demo", "svc/web", "8080:80"]


def test_some_skipped_exits_1_and_lists_each_with_its_reason() -> None:
    res = _import(str(DATA / "kubectl_session.txt"))
    assert res.exit_code == 1
    assert len(yaml.safe_load(res.stdout)) == 9
    skipped = [line for line in res.stderr.splitlines() if ": skipped " in line]
    assert len(skipped) == 7
    assert all(line.startswith(f"{DATA / 'kubectl_session.txt'}:") for line in skipped)
    assert "7 entries skipped" in res.stderr


@pytest.mark.parametrize(("name", "count"), [("kftray_export.json", 4), ("krelay_targets.txt", 5)])
def test_formats_are_detected(name: str, count: int) -> None:
    res = _import(str(DATA / name))
    assert res.exit_code == 1  # both fixtures hold entries portfwd cannot take
    assert len(yaml.safe_load(res.stdout)) == count
    assert "note: read as" not in res.stderr


def test_an_ambiguous_input_says_how_it_was_read() -> None:
    res = _import("-", input="kubectl port-forward svc/a 80\nsvc/b 8080:80\n")
    assert "read as kubectl command lines; line(s) 2 look like krelay targets" in res.stderr
    assert [f["target"] for f in yaml.safe_load(res.stdout)] == ["svc/a"]
    res = _import("-", input="svc/b 8080:80\n")
    assert [f["target"] for f in yaml.safe_load(res.stdout)] == ["svc/b"]
    res = _import("--format", "krelay", "-", input="kubectl port-forward svc/a 80\nsvc/b 81\n")
    assert [f["target"] for f in yaml.safe_load(res.stdout)] == ["svc/b"]


def test_import_of_its_own_yaml_and_export_back(tmp_path: Path) -> None:
    first = _import(str(DATA / "kftray_export.json"))
    listed = tmp_path / "forwards.yaml"
    listed.write_text(first.stdout)
    again = _import(str(listed))
    assert again.exit_code == 0
    assert again.stdout == first.stdout


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "missing.txt: cannot read it: No such file or directory"),
        ("latin1", "bad.txt:2: not UTF-8 text"),
        ("json", "bad.json:1:3: not valid JSON"),
        ("dir", "cannot read it"),
    ],
)
def test_unreadable_input_is_one_error_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setup: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    if setup == "latin1":
        Path("bad.txt").write_bytes(b"kubectl port-forward svc/a 80\n# caf\xe9\n")
        arg = "bad.txt"
    elif setup == "json":
        Path("bad.json").write_text("[{oops}]")
        arg = "bad.json"
    elif setup == "dir":
        Path("d").mkdir()
        arg = "d"
    else:
        arg = "missing.txt"
    res = _import(arg)
    assert res.exit_code == 2
    assert res.stdout == ""
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: ")
    assert message in res.stderr


def test_two_forwards_on_one_local_port_are_pointed_out() -> None:
    res = _import(
        "-",
        input="kubectl port-forward svc/a 8080:80\n"
        "kubectl port-forward svc/b 8080:80 --address 0.0.0.0\n"
        "kubectl port-forward svc/c 8080:80 --address 10.1.2.3,::2\n"  # a clash with b (v4)
        "kubectl port-forward svc/d :80\nkubectl port-forward svc/e :80\n",
    )
    assert res.exit_code == 0  # imported: the note says what to change
    clashes = [line for line in res.stderr.splitlines() if "only one of them" in line]
    assert clashes == [
        "b-80: note: listens on local port 8080 as a-80 does: only one of them can run at a"
        " time; change one local port",
        "c-80: note: listens on local port 8080 as b-80 does: only one of them can run at a"
        " time; change one local port",
    ]


def test_nothing_found_is_exit_1() -> None:
    res = _import("-", input="# nothing here\n\n")
    assert res.exit_code == 1
    assert "no forwards found in stdin" in res.stderr


def test_cluster_options_need_from_cluster() -> None:
    res = _import("-n", "demo", "-", input="kubectl port-forward svc/a 80\n")
    assert res.exit_code == 2
    assert "go with --from-cluster" in res.stderr
    res = _import("--from-cluster", "some-file")
    assert res.exit_code == 2 and "give no FILE" in res.stderr
    res = _import("--from-cluster", "-n", "a", "-A")
    assert res.exit_code == 2 and "not both" in res.stderr
    res = _import("--from-cluster", "--format", "kftray")
    assert res.exit_code == 2 and "--format reads a FILE" in res.stderr


def test_into_a_profile_writes_the_profiles_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from portfwd.store.profiles import load_profiles

    config = tmp_path / "config"
    config.mkdir(mode=0o700)
    path = config / "profiles.yaml"
    path.write_text("# mine\nprofiles:\n  morning:  # keep\n    defaults: {namespace: demo}\n")
    path.chmod(0o600)
    monkeypatch.setenv("PORTFWD_CONFIG_DIR", str(config))
    res = _import("--into", "morning", "-", input="kubectl port-forward svc/a 8080:80 81\n")
    assert res.exit_code == 0, res.stderr
    assert f"wrote 2 forward(s) into profile morning in {path}" in res.stderr
    assert res.stdout == ""
    assert path.read_text().startswith("# mine\nprofiles:\n  morning:  # keep\n")
    morning = load_profiles(path).profiles["morning"]
    assert [(f.name, f.target, f.ports) for f in morning.forwards] == [
        ("a-80", "svc/a", ("8080:80",)),
        ("a-81", "svc/a", ("81",)),
    ]
    assert morning.defaults.namespace == "demo"
    again = _import("--into", "morning", "-", input="kubectl port-forward svc/a 8080:80\n")
    assert again.exit_code == 0
    assert "wrote 0 forward(s) (1 it already had) into profile morning" in again.stderr
    clash = _import("--into", "morning", "-", input="kubectl port-forward svc/b 8080:80\n")
    assert clash.exit_code == 1
    assert 'listens on 127.0.0.1:8080, as forward "a-80" does' in clash.stderr
    assert len(load_profiles(path).profiles["morning"].forwards) == 2


def test_into_calls_the_profile_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[tuple[str, list[ForwardSpec]]] = []

    def fake(name: str, specs: list[ForwardSpec]) -> str:
        written.append((name, specs))
        return f"wrote {len(specs)} forward(s) into profile {name}"

    monkeypatch.setattr(commands, "write_into_profile", fake)
    res = _import("--into", "morning", "-", input="kubectl port-forward svc/a 80 81\n")
    assert res.exit_code == 0
    assert [(n, [s.name for s in specs]) for n, specs in written] == [("morning", ["a-80", "a-81"])]
    assert "wrote 2 forward(s) into profile morning" in res.stderr
    written.clear()
    res = _import("--into", "morning", "--dry-run", "-", input="kubectl port-forward svc/a 80\n")
    assert res.exit_code == 0
    assert written == []
    assert "dry run: would write 1 forward(s) into 'morning'" in res.stderr
    assert yaml.safe_load(res.stdout)[0]["name"] == "a-80"


def test_hostile_text_never_reaches_the_terminal_raw() -> None:
    res = _import(
        "-", input="kubectl --context $'\\e' port-forward 'svc/\x1b[2Jx' 80\n\x1b]52;c;aGk=\x07\n"
    )
    assert "\x1b" not in res.stderr and "\x07" not in res.stderr
    res = _import("-", input='[{"service": "web", "remote_port": 80, "context": "x\\u001b[2Jy"}]')
    assert "\x1b" not in res.stdout and "\x1b" not in res.stderr
    # Not a context name: refused with the rule, and shown escaped.
    assert 'context "x\\x1b[2Jy" is not valid: a context name is' in res.stderr


def test_export_formats(tmp_path: Path) -> None:
    listed = tmp_path / "f.yaml"
    listed.write_text(
        "- {name: web, namespace: demo, target: svc/web, ports: ['8080:80'], address: localhost}\n"
        "- {name: api, namespace: demo, target: deploy/api, ports: ['8443:https']}\n"
    )
    script = _export(str(listed), "--format", "kubectl")
    assert script.exit_code == 0
    assert "kubectl -n demo port-forward svc/web 8080:80 &" in script.stdout
    assert "kubectl -n demo port-forward deploy/api 8443:https &" in script.stdout
    assert "kubectl: note: kubectl does not reconnect" in script.stderr
    kftray = _export(str(listed), "--format", "kftray-json")
    assert kftray.exit_code == 1  # deploy/api has no kftray form
    assert [e["alias"] for e in json.loads(kftray.stdout)] == ["web"]
    assert "api: skipped" in kftray.stderr
    plain = _export("--format", "yaml", input=listed.read_text())
    assert plain.exit_code == 0
    assert [f["name"] for f in yaml.safe_load(plain.stdout)] == ["web", "api"]


def test_export_of_a_bad_list_is_exit_2() -> None:
    res = _export("-", input="- {target: svc/web, ports: [80], namspace: x}\n")
    assert res.exit_code == 2
    assert res.stdout == ""
    assert "stdin: forward 1: unknown key 'namspace'" in res.stderr


def test_export_refuses_control_characters_in_a_forward() -> None:
    res = _export(
        "--format", "kubectl", input='- {target: svc/web, ports: [80], context: "a\\eb"}\n'
    )
    assert res.exit_code == 1
    assert "\x1b" not in res.stdout
    assert "holds control characters" in res.stderr


def test_the_main_group_names_both_commands() -> None:
    from portfwd.cli.root import cli

    with click.Context(cli) as ctx:
        assert cli.get_command(ctx, "import") is import_command
        assert cli.get_command(ctx, "export") is export_command


@pytest.fixture
def main_group() -> Iterator[click.Group]:
    from portfwd.cli.root import cli

    yield cli


def test_options_before_the_command_mean_the_same(main_group: click.Group) -> None:
    runner = CliRunner()
    res = runner.invoke(main_group, ["--context", "c", "import", "-"], input="svc/a 80\n")
    assert res.exit_code == 2  # --context goes with --from-cluster, before or after `import`
    assert "go with --from-cluster" in res.stderr
    res = runner.invoke(main_group, ["--context", "c", "export", "-"], input="[]\n")
    assert res.exit_code == 2
    assert "--context does not apply to" in res.stderr and "export'" in res.stderr
    res = runner.invoke(main_group, ["import", "-"], input="svc/a 80\n")
    assert res.exit_code == 0, res.stderr


def test_a_portfwd_forward_line_with_pod_running_timeout_imports(main_group: click.Group) -> None:
    line = "portfwd forward --pod-running-timeout 30s svc/web 8080:80\n"
    res = CliRunner().invoke(main_group, ["import", "-"], input=line)
    assert res.exit_code == 0, res.stderr
    (forward,) = yaml.safe_load(res.stdout)
    assert (forward["target"], forward["ports"]) == ("svc/web", ["8080:80"])
    assert "--pod-running-timeout ignored" in res.stderr


def test_every_flag_of_forward_is_known_to_import(main_group: click.Group) -> None:
    """The importer reads `forward`'s own options: none of them is an unknown flag."""
    with click.Context(main_group) as ctx:
        forward = main_group.get_command(ctx, "forward")
    assert forward is not None
    values = {
        "protocol": "spdy",
        "addresses": "127.0.0.1",
        "pod_running_timeout": "1m",
        "probe": "tcp",
        "probe_interval": "10s",
        "idle_after": "10m",
        "idle_stop": "30m",
    }
    for param in forward.params:
        if not isinstance(param, click.Option):
            continue
        for spelling in param.opts:
            words = [spelling] if param.is_flag else [spelling, values.get(param.name or "", "x")]
            line = " ".join(["portfwd", "forward", *words, "svc/web", "8080:80"]) + "\n"
            res = CliRunner().invoke(main_group, ["import", "-"], input=line)
            assert "unknown flag" not in res.stderr, (line, res.stderr)
            assert res.exit_code == 0, (line, res.stderr)


def test_the_importer_s_own_copy_of_forward_s_flags_is_forward_s(main_group: click.Group) -> None:
    """Quick add and the library read PORTFWD_FORWARD_FLAGS; `portfwd import` reads the
    command's options: they must be the same table."""
    from portfwd.transfer.kubectl_lines import PORTFWD_FORWARD_FLAGS, flags_of

    with click.Context(main_group) as ctx:
        forward = main_group.get_command(ctx, "forward")
    assert forward is not None
    assert flags_of([*main_group.params, *forward.params]) == PORTFWD_FORWARD_FLAGS


def test_a_portfwd_forward_line_with_lazy_flags_imports_them() -> None:
    from portfwd.transfer.kubectl_lines import specs_from_command

    (spec,) = specs_from_command("portfwd forward --idle-after 5m --idle-stop 1h svc/web 8080:80")
    assert spec.lazy and spec.idle_after == 300 and spec.idle_stop == 3600
    (plain,) = specs_from_command("portfwd forward --lazy svc/web 8080:80")
    assert plain.lazy and not plain.idle_stop


def test_a_portfwd_forward_line_with_spread_imports_spread() -> None:
    from portfwd.transfer.kubectl_lines import specs_from_command

    (spec,) = specs_from_command("portfwd forward --spread -n demo svc/web 8080:80")
    assert spec.spread and spec.target == "svc/web"
