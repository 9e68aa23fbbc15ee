"""Pasted and scripted `kubectl port-forward` lines -> forwards; what cannot be read is listed."""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfwd.engine.model import ForwardSpec
from portfwd.errors import InputError
from portfwd.transfer.kubectl_lines import parse_kubectl_lines, specs_from_command

DATA = Path(__file__).parent / "data"


def _one(text: str) -> ForwardSpec:
    result = parse_kubectl_lines(text)
    assert result.skipped == [], result.skipped
    assert len(result.specs) == 1, result.specs
    return result.specs[0]


def test_the_pasted_session_file() -> None:
    result = parse_kubectl_lines((DATA / "kubectl_session.txt").read_text(), "session.txt")
    got = {s.name: s for s in result.specs}
    assert list(got) == [
        "postgres-5432",
        "redis-6379",
        "payments-api-http",
        "payments-api-9090",
        "api-443",
        "debug-shell-7000",
        "grafana-80",
        "prometheus-9090",
        "ledger-https",
    ]
    assert got["postgres-5432"] == ForwardSpec(
        target="svc/postgres",
        remote_port=5432,
        local_port=5432,
        namespace="payments",
        context="prod-eu",
        addresses=("localhost",),
        name="postgres-5432",
    )
    assert got["redis-6379"].target == "sts/redis"
    assert got["redis-6379"].context == "prod-eu"
    api = got["payments-api-http"]
    assert (api.target, api.remote_port, api.local_port) == ("deploy/payments-api", "http", 8080)
    assert api.addresses == ("0.0.0.0", "::")
    assert api.namespace == "payments"
    assert got["payments-api-9090"].local_port == 0  # `:9090`: a free local port
    staging = got["api-443"]
    assert staging.protocol == "spdy"  # KUBECTL_PORT_FORWARD_WEBSOCKETS=false
    assert staging.kubeconfig == "~/.kube/staging"  # "$HOME/..." kept as the home directory
    assert got["debug-shell-7000"].kubeconfig == "/home/me/.kube/staging config"
    assert got["debug-shell-7000"].context == "staging"
    assert got["grafana-80"].namespace is None
    assert got["prometheus-9090"].namespace == "monitoring"
    assert got["ledger-https"].reconnect is False  # portfwd forward --no-reconnect

    skipped = {s.source: s for s in result.skipped}
    assert sorted(skipped) == [f"session.txt:{n}" for n in (22, 23, 24, 25, 26, 27, 28)]
    assert "no port given" in skipped["session.txt:22"].reason
    assert "8080:80:90" in skipped["session.txt:23"].reason
    assert "--cluster" in skipped["session.txt:24"].reason
    assert "daemonset" in skipped["session.txt:25"].reason
    assert "kubectl logs is not a port-forward" in skipped["session.txt:26"].reason
    assert "not a kubectl port-forward" in skipped["session.txt:27"].reason
    assert "$SERVICE" in skipped["session.txt:28"].reason
    assert skipped["session.txt:28"].entry == "kubectl port-forward svc/$SERVICE 8080:80"
    notes = [str(n) for n in result.notes]
    assert any("session.txt:16" in n and "--pod-running-timeout" in n for n in notes)


@pytest.mark.parametrize(
    "line",
    [
        "kubectl port-forward -n demo --context c svc/web 8080:80",
        "kubectl -n demo --context c port-forward svc/web 8080:80",
        "kubectl --context=c port-forward svc/web 8080:80 --namespace=demo",
        "kubectl --context c port-forward --namespace demo service/web 8080:80",
        "kubectl port-forward svc/web -ndemo 8080:80 --context=c",
        "nohup kubectl --context c port-forward -n demo svc/web 8080:80 > /dev/null 2>&1 &",
        "exec kubectl port-forward -n demo svc/web --context c 8080:80",
        "kubectl port-forward \\\n  -n demo \\\n  --context c \\\n  svc/web 8080:80",
        "kubectl port-forward 'svc/web' \"8080:80\" -n 'demo' --context \"c\"  # the web",
        "  kubectl  port-forward  -n demo --context c  Service/web  8080:80  ",
        "kubectl -v=6 --request-timeout 5s port-forward -n demo --context c svc/web 8080:80",
        "portfwd forward -n demo --context c svc/web 8080:80",
        "kubectl-portfwd --context c svc/web -n demo 8080:80",
        "kubectl port-forward -n demo --context c -- svc/web 8080:80",
        "kubectl port-forward -n demo --context c svc/web 8080:80 2>&1 | tee web.log",
        "while true; do kubectl port-forward -n demo --context c svc/web 8080:80; done",
        "$ kubectl port-forward -n demo --context c svc/web 8080:80",
    ],
)
def test_flag_orders_and_shell_forms_mean_the_same_forward(line: str) -> None:
    spec = _one(line)
    assert spec == ForwardSpec(
        target="svc/web",
        remote_port=80,
        local_port=8080,
        namespace="demo",
        context="c",
        addresses=("localhost",),
        name="web-80",
    )


def test_joined_commands_and_comments() -> None:
    text = (
        "kubectl port-forward svc/a 1:80; kubectl port-forward svc/b 2:80 && "
        "kubectl port-forward svc/c 3:80 || echo failed\n"
        "# kubectl port-forward svc/commented 4:80\n"
        "kubectl port-forward svc/d 5:80 & kubectl port-forward svc/e 6:80 &\n"
        "\n"
        "wait\n"
    )
    result = parse_kubectl_lines(text)
    assert [s.target for s in result.specs] == ["svc/a", "svc/b", "svc/c", "svc/d", "svc/e"]
    assert result.skipped == []


def test_a_pipe_into_a_forward_is_read_and_a_pipe_out_of_one_is_passed_over() -> None:
    result = parse_kubectl_lines(
        "yes | kubectl port-forward svc/a 80 | grep -v Handling | tee -a pf.log\n"
    )
    assert [s.target for s in result.specs] == ["svc/a"]
    # the pipe's consumers (grep, tee) are no entries; its producer is listed like any
    # other command that is not a port-forward
    assert [(s.entry, s.reason) for s in result.skipped] == [
        ("yes", "not a kubectl port-forward command")
    ]


def test_several_ports_and_addresses() -> None:
    result = parse_kubectl_lines(
        "kubectl port-forward pod/db --address localhost,10.0.0.5 5432 :5433 15432:5432"
    )
    assert [(s.local_port, s.remote_port) for s in result.specs] == [
        (5432, 5432),
        (0, 5433),
        (15432, 5432),
    ]
    assert {s.addresses for s in result.specs} == {("localhost", "10.0.0.5")}
    assert [s.name for s in result.specs] == ["db-5432", "db-5433", "db-5432-2"]  # unique


def test_a_shell_history_with_repeats_is_one_forward_each() -> None:
    history = (
        ": 1764633600:0;kubectl port-forward -n demo svc/web 8080:80\n"
        ": 1764633700:0;kubectl get pods -n demo\n"
        ": 1764637200:0;kubectl -n demo port-forward svc/web 8080:80\n"
        ": 1764637300:0;kubectl port-forward -n demo svc/web 8081:80\n"
    )
    result = parse_kubectl_lines(history, "h")
    assert [(s.name, s.local_port) for s in result.specs] == [("web-80", 8080), ("web-80-2", 8081)]
    assert any("h:3" in str(n) and "same forward as on h:1" in str(n) for n in result.notes)
    assert [s.source for s in result.skipped] == ["h:2"]  # kubectl get: listed, not dropped


def test_address_repeats_add_up_as_in_kubectl() -> None:
    spec = _one("kubectl port-forward svc/a 80 --address 127.0.0.1 --address=::1,10.0.0.1")
    assert spec.addresses == ("127.0.0.1", "::1", "10.0.0.1")


def test_a_bare_name_is_a_pod_and_crlf_lines_are_read() -> None:
    result = parse_kubectl_lines("kubectl port-forward my-pod 8080\r\nkubectl port-forward x 1\r\n")
    assert [s.target for s in result.specs] == ["pod/my-pod", "pod/x"]


def test_a_named_port_without_local_port_is_imported_with_a_note() -> None:
    result = parse_kubectl_lines("kubectl port-forward svc/api https", "f")
    assert [(s.local_port, s.remote_port) for s in result.specs] == [(0, "https")]
    assert any("LOCAL:https" in str(n) for n in result.notes)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("kubectl port-forward", "needs a target"),
        ("kubectl port-forward svc/web", "no port given"),
        ("kubectl port-forward svc/web 99999", "ports are 1..65535"),
        ("kubectl port-forward svc/web 80 --bogus", "unknown flag --bogus"),
        ("kubectl port-forward svc/web 80 -n", "needs a value"),
        ("kubectl port-forward svc/web 80 --address nowhere", "invalid listen address"),
        ("kubectl port-forward --token s3cret svc/web 80", "--token"),
        ("kubectl port-forward --insecure-skip-tls-verify svc/web 80", "insecure"),
        ("kubectl port-forward -h", "help"),
        ("kubectl", "without a command"),
        ("kubectl get svc", "kubectl get is not a port-forward"),
        ("portfwd up demo", "portfwd up is not a forward"),
        ("kubectl port-forward svc/Web 80", "invalid name"),
        ("kubectl port-forward svc/web 'unterminated", "unterminated ' quote"),
        ("kubectl port-forward svc/web `cat port`", "needs the shell"),
        ("kubectl relay host/db.example.com 5432", "relay pod"),
        ("kubectl port-forward deploy/web 80 --protocol spdy", "unknown flag --protocol"),
        ("portfwd forward deploy/web 80 --protocol carrier-pigeon", "unknown protocol"),
    ],
)
def test_lines_that_cannot_be_imported_say_why(line: str, reason: str) -> None:
    result = parse_kubectl_lines(line + "\n", "in.txt")
    assert result.specs == []
    assert len(result.skipped) == 1
    skip = result.skipped[0]
    assert skip.source == "in.txt:1"
    assert reason in skip.reason


def test_a_token_is_not_repeated_in_the_skipped_entry() -> None:
    result = parse_kubectl_lines("kubectl port-forward --token=s3cret svc/web 80")
    assert "s3cret" not in str(result.skipped[0])


def test_control_characters_in_an_entry_are_escaped() -> None:
    result = parse_kubectl_lines("kubectl port-forward 'svc/\x1b]52;c;aGk=\x07' 80")
    text = str(result.skipped[0])
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b" in text


def test_the_line_of_a_continued_command_is_where_it_starts() -> None:
    text = "\n\n# c\nkubectl port-forward \\\n svc/web \\\n 80:80:80\nkubectl port-forward svc/x\n"
    result = parse_kubectl_lines(text, "s.sh")
    assert [s.source for s in result.skipped] == ["s.sh:4", "s.sh:7"]


def test_here_documents_are_data_not_commands() -> None:
    text = (
        "cat <<EOF | kubectl relay -f -\n"
        "svc/in-the-heredoc 80\n"
        "kubectl port-forward svc/also-data 81\n"
        "EOF\n"
        "kubectl port-forward svc/after 82\n"
    )
    result = parse_kubectl_lines(text, "s")
    assert [s.target for s in result.specs] == ["svc/after"]
    assert [(s.source, s.entry) for s in result.skipped] == [
        ("s:1", "cat <<EOF"),
        ("s:1", "kubectl relay -f -"),
    ]
    assert "import the targets with --format krelay" in result.skipped[1].reason


def test_shell_housekeeping_is_no_entry() -> None:
    text = "#!/bin/sh\nset -e\ntrap 'kill 0' INT\nsleep 1\necho hi\nexport A=1\nwait\n"
    result = parse_kubectl_lines(text)
    assert result.specs == [] and result.skipped == []


def test_quick_add_takes_one_command() -> None:
    specs = specs_from_command("kubectl port-forward -n demo svc/web 8080:80")
    assert [s.name for s in specs] == ["web-80"]
    with pytest.raises(InputError, match="no port given"):
        specs_from_command("kubectl port-forward svc/web")
    with pytest.raises(InputError, match="no port-forward found"):
        specs_from_command("   ")


# --- properties ------------------------------------------------------------------------------

_names = st.from_regex(r"[a-z][a-z0-9]{0,8}(-[a-z0-9]{1,5})?", fullmatch=True)
_kinds = st.sampled_from(["svc", "service", "pod", "deploy", "deployment", "sts", "rs", "po"])
_text_values = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp", "Cf")),
    min_size=1,
    max_size=12,
).filter(lambda s: not s.startswith("-") and s.strip() == s and "$" not in s)
_ports = st.integers(min_value=1, max_value=65535)
# What an import accepts as a context (`transfer/scope.py`); others are refused with the rule.
_contexts = st.from_regex(r"[A-Za-z0-9._:/@+-]{1,12}", fullmatch=True).filter(
    lambda s: not s.startswith("-")
)


@st.composite
def _command(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    kind, name = draw(_kinds), draw(_names)
    namespace = draw(st.none() | _names)
    context = draw(st.none() | _contexts)
    kubeconfig = draw(st.none() | _text_values.filter(lambda s: not s.startswith("~")))
    addresses = draw(st.none() | st.sampled_from(["0.0.0.0", "127.0.0.1,::1", "localhost"]))
    remote = draw(_ports | st.sampled_from(["http", "https", "grpc-web"]))
    local = draw(st.sampled_from([None, 0]) | _ports)
    if local is None and not isinstance(remote, int):
        local = 0
    port = str(remote) if local is None else f"{local or ''}:{remote}"
    globals_: list[list[str]] = []
    locals_: list[list[str]] = []
    for flag, value in (("namespace", namespace), ("context", context)):
        if value is None:
            continue
        form = draw(st.sampled_from(["long", "eq", "short"]))
        if form == "short" and flag == "namespace":
            words = [f"-n{value}"] if draw(st.booleans()) else ["-n", value]
        elif form == "eq":
            words = [f"--{flag}={value}"]
        else:
            words = [f"--{flag}", value]
        (globals_ if draw(st.booleans()) else locals_).append(words)
    if kubeconfig is not None:
        globals_.append(["--kubeconfig", kubeconfig])
    if addresses is not None:
        locals_.append(["--address", addresses])
    positionals = [f"{kind}/{name}", port]
    after: list[str] = []
    for words in draw(st.permutations([*locals_, positionals])):
        after += words
    argv = ["kubectl"] + [w for ws in globals_ for w in ws] + ["port-forward"] + after
    quote = draw(st.sampled_from(["shlex", "double"]))
    if quote == "shlex":
        line = " ".join(shlex.quote(w) for w in argv)
    else:
        line = " ".join(
            '"' + w.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`") + '"'
            for w in argv
        )
    prefix = draw(st.sampled_from(["", "nohup ", "  ", "exec "]))
    suffix = draw(st.sampled_from(["", " &", " # note", " > /tmp/x.log 2>&1 &", ";"]))
    expected = {
        "kind": kind,
        "name": name,
        "namespace": namespace,
        "context": context,
        "kubeconfig": kubeconfig,
        "addresses": tuple(addresses.split(",")) if addresses else ("localhost",),
        "remote": remote,
        "local": remote if local is None else local,
    }
    return prefix + line + suffix, expected


@settings(max_examples=150, deadline=None)
@given(_command())
def test_any_valid_command_in_any_flag_order_parses_to_its_forward(
    case: tuple[str, dict[str, object]],
) -> None:
    line, want = case
    result = parse_kubectl_lines(line)
    assert result.skipped == [], (line, result.skipped)
    (spec,) = result.specs
    assert spec.target.split("/")[1] == want["name"]
    assert spec.namespace == want["namespace"]
    assert spec.context == want["context"]
    assert spec.kubeconfig == want["kubeconfig"]
    assert spec.addresses == want["addresses"]
    assert spec.remote_port == want["remote"]
    assert spec.local_port == want["local"]


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_read_without_an_exception_and_nothing_is_dropped(text: str) -> None:
    result = parse_kubectl_lines(text, "t")
    for skip in result.skipped:
        assert skip.source.startswith("t:")
        assert skip.reason
    for spec in result.specs:
        assert replace(spec) == spec  # a valid spec
