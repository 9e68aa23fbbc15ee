"""Building the client-side TLS context from kubeconfig material held in memory.

Python's :mod:`ssl` loads a client certificate only from a file path, while kubeconfig and exec
plugins hand us PEM bytes. We write them to a private temporary file (mode 0600, in a 0700
directory), load it and delete it at once, so key material never lingers on disk.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile

from portfwd.errors import ConfigError


def build_ssl_context(
    *,
    ca_pem: bytes | None,
    insecure_skip_tls_verify: bool,
    client_cert_pem: bytes | None,
    client_key_pem: bytes | None,
    where: str,
) -> ssl.SSLContext:
    """Return a context that verifies like kubectl: the cluster's CA, else the system roots.

    ``where`` names the kubeconfig entries for error messages (e.g. ``cluster "x", user "y"``).
    """
    if insecure_skip_tls_verify:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif ca_pem is None:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)  # the system roots
    else:
        # Only the cluster's CA is trusted, as in client-go (and loading no system roots
        # makes this ~10x cheaper).
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        try:
            ctx.load_verify_locations(cadata=ca_pem.decode("ascii", errors="replace"))
        except (ssl.SSLError, ValueError) as exc:
            raise ConfigError(
                f"the certificate authority of {where} is not a valid PEM certificate "
                f"({_ssl_reason(exc)}); fix certificate-authority(-data) in the kubeconfig"
            ) from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_cert_pem is not None or client_key_pem is not None:
        if client_cert_pem is None or client_key_pem is None:
            raise ConfigError(
                f"{where} has a client certificate without its key (or a key without its "
                "certificate); set both client-certificate and client-key"
            )
        load_client_cert(ctx, client_cert_pem, client_key_pem, where=where)
    return ctx


def load_client_cert(ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes, *, where: str) -> None:
    """Load a PEM certificate + key held in memory into ``ctx`` via a short-lived private file."""
    tmpdir = tempfile.mkdtemp(prefix="portfwd-tls-")  # mode 0700
    path = os.path.join(tmpdir, "client.pem")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(cert_pem.rstrip(b"\n") + b"\n" + key_pem.rstrip(b"\n") + b"\n")
        try:
            ctx.load_cert_chain(certfile=path)
        except ssl.SSLError as exc:
            raise ConfigError(
                f"the client certificate/key of {where} could not be loaded "
                f"({_ssl_reason(exc)}); check client-certificate and client-key"
            ) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        with contextlib.suppress(OSError):
            os.rmdir(tmpdir)


def _ssl_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    text = str(reason) if reason else str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
