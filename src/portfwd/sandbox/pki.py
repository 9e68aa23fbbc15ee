"""A throwaway certificate authority for the sandbox API server.

EC P-256 keys: generating them takes well under a millisecond, so every sandbox gets its own
CA and nothing secret outlives the process's work directory.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class CertPair:
    cert_pem: bytes
    key_pem: bytes = field(repr=False)


@dataclass(frozen=True)
class SandboxPKI:
    ca: CertPair
    server: CertPair
    client: CertPair  # CN=admin, O=system:masters


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def generate_pki(
    hostnames: tuple[str, ...] = ("localhost",), cluster: str = "portfwd-sandbox"
) -> SandboxPKI:
    """Build a CA, a server certificate for the loopback names and an admin client cert.

    The CA is `<cluster>-ca` and the server `<cluster>-apiserver`: each cluster of a fleet
    shows its own name to whoever looks at its certificates."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    until = now + dt.timedelta(days=365)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{cluster}-ca")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(
        subject: x509.Name, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName] | None
    ) -> CertPair:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        return CertPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    sans: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    sans += [x509.DNSName(h) for h in hostnames]
    server = leaf(_name(f"{cluster}-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, sans)
    client = leaf(_name("admin", "system:masters"), ExtendedKeyUsageOID.CLIENT_AUTH, None)
    ca = CertPair(ca_cert.public_bytes(serialization.Encoding.PEM), _key_pem(ca_key))
    return SandboxPKI(ca=ca, server=server, client=client)


def server_ssl_context(pki: SandboxPKI, workdir: Path) -> ssl.SSLContext:
    """TLS for the API server; client certificates are optional so tokens work too.

    `load_cert_chain` only reads files, so the server pair is written (key mode 0600) into
    the sandbox's private work directory.
    """
    cert_path = workdir / "apiserver.crt"
    key_path = workdir / "apiserver.key"
    cert_path.write_bytes(pki.server.cert_pem)
    key_path.touch(mode=0o600)
    key_path.write_bytes(pki.server.key_pem)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert_path), str(key_path))
    ctx.load_verify_locations(cadata=pki.ca.cert_pem.decode())
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def backend_ssl_context(pki: SandboxPKI, workdir: Path) -> ssl.SSLContext:
    """TLS for the sandbox's "containers" on a port named `https`: the server certificate of
    the API server (localhost, 127.0.0.1, ::1; signed by the sandbox CA), no client
    certificates. `server_ssl_context` must have written the pair into `workdir` first."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(workdir / "apiserver.crt"), str(workdir / "apiserver.key"))
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
