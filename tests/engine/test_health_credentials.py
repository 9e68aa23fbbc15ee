"""Credentials per layer (issue 19 §1): an exec plugin's short-lived token shows its expiry
(the countdown in the detail pane's health block) and is fetched again before it runs out;
a client certificate's notAfter and a JWT's `exp` are read without a secret being shown."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from portfwd.engine.facts import HealthWatch
from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState, LogKind, LogLevel
from portfwd.kube import expiry
from portfwd.kube.auth import UserAuth
from portfwd.kube.config import load_connection
from portfwd.sandbox.cluster import SandboxCluster
from portfwd.tui.widgets.health_block import health_block
from tests.kube.test_config_kit import b64, write
from tests.support.wait import eventually

LIFETIME = 8.0

PLUGIN = textwrap.dedent(
    """\
    import datetime, json, sys, time
    runs, token, lifetime = sys.argv[1], sys.argv[2], float(sys.argv[3])
    now = time.time()
    expires = now + lifetime
    with open(runs, "a") as f:
        f.write(f"{now} {expires}\\n")
    stamp = datetime.datetime.fromtimestamp(expires, datetime.UTC).isoformat()
    print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1",
                      "kind": "ExecCredential",
                      "status": {"token": token, "expirationTimestamp": stamp}}))
    """
)


async def _exec_kubeconfig(sandbox: SandboxCluster, tmp_path: Path) -> tuple[Path, Path]:
    admin = await asyncio.to_thread(load_connection, str(sandbox.kubeconfig_path), "sandbox")
    token = (await admin.auth.get()).token
    assert token is not None and admin.ca_pem is not None
    plugin = write(tmp_path / "plugin.py", PLUGIN)
    runs = tmp_path / "runs"
    kubeconfig = write(
        tmp_path / "kubeconfig",
        f"""apiVersion: v1
kind: Config
current-context: short
clusters:
- name: s
  cluster: {{server: "{admin.server}", certificate-authority-data: {b64(admin.ca_pem)}}}
contexts:
- {{name: short, context: {{cluster: s, user: e, namespace: demo}}}}
users:
- name: e
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: {sys.executable}
      args: [{plugin}, {runs}, "{token}", "{LIFETIME}"]
      interactiveMode: Never
""",
    )
    kubeconfig.chmod(0o600)
    return kubeconfig, runs


def _runs(path: Path) -> list[tuple[float, float]]:
    if not path.exists():
        return []
    return [
        (float(a), float(b))
        for a, b in (line.split() for line in path.read_text().split("\n") if line)
    ]


async def test_short_lived_exec_token_counts_down_and_is_refreshed_before_expiry(
    sandbox: SandboxCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Half the life as the margin (a quarter in use): the refresh has seconds to spare even on
    # a loaded machine, and the test lasts one credential's life.
    monkeypatch.setattr(expiry, "refresh_margin", lambda lifetime: lifetime / 2)
    kubeconfig, runs = await _exec_kubeconfig(sandbox, tmp_path)
    mgr = Manager(kubeconfig=str(kubeconfig), detect_wake=False)
    try:
        fid = await mgr.add(ForwardSpec("svc/echo", "tcp"))
        snap = mgr.get(fid)
        assert snap.state is ForwardState.ACTIVE, snap.reason
        facts = snap.health
        (first,) = _runs(runs)
        assert facts.credential == "exec plugin token"
        assert facts.credential_expires_at == pytest.approx(first[1], abs=1e-3)
        block = health_block(snap, time.time()).plain
        assert "credentials ✓ exec plugin token, expires in " in block

        await eventually(lambda: len(_runs(runs)) >= 2, limit=30)
        second = _runs(runs)[1]
        assert second[0] < first[1]  # fetched again while the first was still valid

        def refreshed() -> bool:
            return mgr.get(fid).health.credential_expires_at == pytest.approx(second[1], abs=1e-3)

        await eventually(refreshed)
        lines = [e.message for e in mgr.logs(fid)]
        assert any(m.startswith("credentials refreshed before they ran out") for m in lines)
        assert mgr.get(fid).state is ForwardState.ACTIVE
    finally:
        await asyncio.wait_for(mgr.shutdown(), 10)


def test_jwt_expiry_is_read_and_other_tokens_are_not() -> None:
    claims = base64.urlsafe_b64encode(json.dumps({"exp": 1_900_000_000}).encode()).rstrip(b"=")
    assert expiry.jwt_expiry(f"eyJhbGciOiJub25lIn0.{claims.decode()}.sig") == 1_900_000_000.0
    assert expiry.jwt_expiry("not-a-jwt") is None
    assert expiry.jwt_expiry("a.!!!.c") is None
    assert expiry.jwt_expiry("a.bnVsbA.c") is None  # "null": no claims


def test_refresh_margin_is_a_quarter_of_the_life_within_bounds() -> None:
    assert expiry.refresh_margin(3600) == 300.0  # at most five minutes
    assert expiry.refresh_margin(400) == 100.0
    assert expiry.refresh_margin(2) == 1.0  # at least a second


def _certificate(not_after: datetime.datetime) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(not_after - datetime.timedelta(days=1))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_a_client_certificate_shows_its_not_after_and_is_not_refreshable() -> None:
    not_after = datetime.datetime(2031, 5, 4, 3, 2, 1, tzinfo=datetime.UTC)
    auth = UserAuth("alice", client_cert_pem=_certificate(not_after), client_key_pem=b"k")
    facts = expiry.credential_facts(auth)
    assert facts is not None
    assert (facts.kind, facts.expires_at) == ("client certificate", not_after.timestamp())
    assert not facts.refreshable and expiry.refresh_due_at(auth) is None
    assert "BEGIN" not in repr(facts)  # no secret in what is shown


def test_a_static_token_that_is_not_a_jwt_has_no_known_expiry() -> None:
    facts = expiry.credential_facts(UserAuth("bob", token="opaque-token"))
    assert facts is not None and (facts.kind, facts.expires_at) == ("token", None)
    assert expiry.credential_facts(UserAuth("nobody")) is None


class _Owner:
    """The least a HealthWatch needs, to see what it says about credentials."""

    serving = False

    def __init__(self, auth: UserAuth) -> None:
        self._auth = auth
        self.lines: list[str] = []

    def last_ping(self) -> None:
        return None

    def last_bytes(self) -> tuple[None, None]:
        return None, None

    def auth(self) -> UserAuth:
        return self._auth

    async def open_probe_stream(self) -> Any:
        raise AssertionError("no probe here")

    def probe_changed(self, fault: str | None) -> None:
        pass

    def facts_changed(self) -> None:
        pass

    def add_log(self, level: LogLevel, message: str, kind: LogKind = LogKind.NOTE) -> None:
        self.lines.append(f"{level.name} {message}")


def test_a_certificate_about_to_expire_is_said_once() -> None:
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5, seconds=30)
    owner = _Owner(UserAuth("alice", client_cert_pem=_certificate(soon), client_key_pem=b"k"))
    watch = HealthWatch(owner)
    watch._warn_expiry(owner.auth())
    watch._warn_expiry(owner.auth())
    (line,) = owner.lines
    assert line.startswith("WARNING the credentials (client certificate) run out in 5 min (")
    assert line.endswith("); renew them in the kubeconfig")
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=2)
    quiet = _Owner(UserAuth("bob", client_cert_pem=_certificate(later), client_key_pem=b"k"))
    HealthWatch(quiet)._warn_expiry(quiet.auth())
    assert quiet.lines == []
