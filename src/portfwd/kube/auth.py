"""Credentials for one kubeconfig user, kept fresh the way kubectl keeps them fresh.

A user may combine several sources (kubectl's precedence, client-go ``rest``/``transport``):

* bearer token: ``tokenFile`` (re-read whenever the file changes, so projected service-account
  tokens rotate) beats the inline ``token``, which beats an exec plugin's or ``oidc``'s token;
* client certificate: inline/file certificate beats one returned by an exec plugin;
* exec credential plugins run as asyncio subprocesses (never blocking the loop), cached until
  ``status.expirationTimestamp`` and re-run after :meth:`AuthProvider.invalidate` (a 401).

Secrets never reach a log line or a ``repr``: :class:`Credentials` shows only which parts are set.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from portfwd.errors import ConfigError
from portfwd.kube.targets import printable

log = logging.getLogger(__name__)

EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
INTERACTIVE_MODES = ("Never", "IfAvailable", "Always")
EXEC_TIMEOUT = 60.0
_RACY_NS = 2_000_000_000
_EXEC_OUTPUT_LIMIT = 4 * 1024 * 1024  # an ExecCredential is a few KiB; cap what we buffer


@dataclass(frozen=True)
class Credentials:
    """What goes on the wire: a bearer token and/or a client certificate + key (PEM)."""

    token: str | None = field(default=None, repr=False)
    client_cert_pem: bytes | None = field(default=None, repr=False)
    client_key_pem: bytes | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        def shown(value: object) -> str:
            return "<hidden>" if value is not None else "None"

        return (
            f"Credentials(token={shown(self.token)}, "
            f"client_cert_pem={shown(self.client_cert_pem)}, "
            f"client_key_pem={shown(self.client_key_pem)})"
        )

    __str__ = __repr__


@runtime_checkable
class AuthProvider(Protocol):
    """Source of fresh credentials for one kubeconfig user."""

    user: str

    async def get(self) -> Credentials: ...

    def invalidate(self) -> None: ...


class WatchedFile:
    """A small credential file re-read only when its stat changes (rotation-safe, cheap)."""

    def __init__(self, path: Path, *, what: str, owner: str) -> None:
        self.path = path
        self.what = what  # e.g. "tokenFile"
        self.owner = owner  # e.g. 'user "alice" in /home/a/.kube/config'
        self._stamp: tuple[int, int, int, int] | None = None
        self._data = b""
        self._lock = threading.Lock()

    def read(self, *, force: bool = False) -> bytes:
        """Return the file's bytes; blocking (call from a worker thread or at load time)."""
        with self._lock:
            try:
                st = os.stat(self.path)
                stamp = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
                # A same-size rewrite within one timestamp tick keeps the stat unchanged
                # ("racily clean", as git calls it): re-read while the file is that young.
                young = time.time_ns() - st.st_mtime_ns < _RACY_NS
                if force or young or stamp != self._stamp:
                    self._data = self.path.read_bytes()
                    self._stamp = stamp
            except FileNotFoundError:
                raise ConfigError(
                    f"{self.what} {self.path} (of {self.owner}) does not exist; "
                    "fix the path or recreate the file"
                ) from None
            except PermissionError:
                raise ConfigError(
                    f"{self.what} {self.path} (of {self.owner}) is not readable "
                    "(permission denied); fix its permissions"
                ) from None
            except IsADirectoryError:
                raise ConfigError(
                    f"{self.what} {self.path} (of {self.owner}) is a directory, not a file"
                ) from None
            except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                raise ConfigError(
                    f"{self.what} {self.path} (of {self.owner}) cannot be read: {reason}"
                ) from None
            return self._data

    @property
    def cached(self) -> bytes | None:
        """The bytes as last read (None before the first read); no I/O."""
        return self._data if self._stamp is not None else None


@dataclass(frozen=True)
class ExecConfig:
    """A validated ``users[].user.exec`` block."""

    api_version: str
    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    interactive_mode: str = "IfAvailable"
    install_hint: str | None = None
    provide_cluster_info: bool = False
    base_dir: Path | None = None  # directory of the kubeconfig that defines the user


def parse_exec_config(raw: Any, *, owner: str, base_dir: Path | None) -> ExecConfig:
    """Validate an exec block with client-go's rules; ``owner`` names it in errors."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"exec of {owner} must be a mapping")
    api_version = raw.get("apiVersion")
    if api_version not in EXEC_API_VERSIONS:
        raise ConfigError(
            f"exec of {owner} has apiVersion {api_version!r}; supported: "
            + ", ".join(EXEC_API_VERSIONS)
        )
    command = raw.get("command")
    if not isinstance(command, str) or not command:
        raise ConfigError(f"exec of {owner} has no command")
    args_raw = raw.get("args") or []
    if not isinstance(args_raw, list) or not all(isinstance(a, str) for a in args_raw):
        raise ConfigError(f"exec.args of {owner} must be a list of strings")
    env: list[tuple[str, str]] = []
    for item in raw.get("env") or []:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise ConfigError(f"exec.env of {owner} must be a list of {{name, value}}")
        value = item.get("value", "")
        env.append((item["name"], "" if value is None else str(value)))
    mode = raw.get("interactiveMode")
    if mode is None or mode == "":
        if api_version.endswith("/v1"):
            raise ConfigError(
                f"exec of {owner} must set interactiveMode (Never, IfAvailable or Always) "
                "for apiVersion client.authentication.k8s.io/v1"
            )
        mode = "IfAvailable"
    if mode not in INTERACTIVE_MODES:
        raise ConfigError(
            f"exec of {owner} has interactiveMode {mode!r}; use Never, IfAvailable or Always"
        )
    hint = raw.get("installHint")
    return ExecConfig(
        api_version=api_version,
        command=command,
        args=tuple(args_raw),
        env=tuple(env),
        interactive_mode=mode,
        install_hint=hint if isinstance(hint, str) and hint.strip() else None,
        provide_cluster_info=bool(raw.get("provideClusterInfo", False)),
        base_dir=base_dir,
    )


def _one_line(text: str, limit: int = 200) -> str:
    """First non-empty line, shortened: plugin output may be long (and must stay one line)."""
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 3] + "..."
    return ""


async def _read_capped(stream: asyncio.StreamReader | None, limit: int) -> tuple[bytes, bool]:
    """Drain ``stream`` to EOF keeping at most ``limit`` bytes (the child never blocks)."""
    if stream is None:
        return b"", False
    kept = bytearray()
    overflow = False
    while chunk := await stream.read(65536):
        room = limit - len(kept)
        if len(chunk) > room:
            overflow = True
            kept += chunk[: max(room, 0)]
        else:
            kept += chunk
    return bytes(kept), overflow


@dataclass(frozen=True)
class _ExecResult:
    token: str | None
    cert_pem: bytes | None
    key_pem: bytes | None
    expires: datetime | None


class ExecPlugin:
    """Runs one client-go exec credential plugin, caching its answer until it expires."""

    def __init__(
        self,
        config: ExecConfig,
        *,
        user: str,
        environ: Mapping[str, str],
        cluster_info: Mapping[str, Any] | None = None,
        timeout: float = EXEC_TIMEOUT,
        context: str = "",
    ) -> None:
        self.config = config
        self.user = user
        self.context = context
        self._environ = environ  # read at each run, like kubectl's os.Environ()
        self._cluster_info = dict(cluster_info) if cluster_info else None
        self.timeout = timeout
        self._cached: _ExecResult | None = None
        self._lock = asyncio.Lock()
        self.runs = 0  # how many times the plugin was started (for tests and diagnostics)
        self.fetched_at: float | None = None  # wall clock of the last good run
        self.refresh_error: str | None = None  # why the last early refresh failed

    @property
    def _name(self) -> str:
        return f'exec plugin "{self.config.command}" for user "{self.user}"'

    @property
    def _login_hint(self) -> str:
        """portfwd never gives a plugin a terminal (a daemon has none; a dashboard owns its
        own): a plugin that wanted to prompt fails or times out instead. Say how to log in."""
        if self.config.interactive_mode == "Never":
            return ""
        where = f" --context {shlex.quote(printable(self.context))}" if self.context else ""
        return (
            f"; if it needs an interactive login, run `kubectl get ns{where}` in a terminal,"
            " then retry (r in the dashboard, `portfwd restart` for a daemon's forward)"
        )

    def invalidate(self) -> None:
        self._cached = None

    def _fresh(self) -> _ExecResult | None:
        cached = self._cached
        if cached is None:
            return None
        if cached.expires is not None and datetime.now(UTC) >= cached.expires:
            return None
        return cached

    async def get(self) -> _ExecResult:
        if (cached := self._fresh()) is not None:
            return cached
        async with self._lock:  # concurrent callers share one run
            if (cached := self._fresh()) is not None:
                return cached
            result = await self._run()
            self._cached, self.fetched_at = result, time.time()
            return result

    @property
    def expires(self) -> datetime | None:
        """When the cached credential runs out (None: none cached, or no expiry given)."""
        return self._cached.expires if self._cached is not None else None

    @property
    def cached_cert(self) -> bytes | None:
        return self._cached.cert_pem if self._cached is not None else None

    async def refresh(self, due: Callable[[], bool]) -> bool:
        """Run the plugin again ahead of expiry, once for all callers (`due`, checked under
        the lock, says whether it is still needed); the old credential stays in use until
        the new one is there, and a failure leaves it (refresh_error says why)."""
        async with self._lock:
            if not due():
                return False
            try:
                result = await self._run()
            except ConfigError as exc:
                self.refresh_error = str(exc)
                return False
            self._cached, self.fetched_at, self.refresh_error = result, time.time(), None
            return True

    def _command_path(self) -> str:
        command = self.config.command
        if os.sep in command and not os.path.isabs(command) and self.config.base_dir is not None:
            # kubectl resolves a relative command path against the kubeconfig's directory.
            return str(self.config.base_dir / command)
        return command

    def _exec_info(self) -> str:
        spec: dict[str, Any] = {"interactive": False}
        if self.config.provide_cluster_info and self._cluster_info is not None:
            spec["cluster"] = self._cluster_info
        return json.dumps(
            {"apiVersion": self.config.api_version, "kind": "ExecCredential", "spec": spec},
            default=str,  # YAML may hold timestamps
        )

    async def _run(self) -> _ExecResult:
        cfg = self.config
        if cfg.interactive_mode == "Always":
            where = f" --context {shlex.quote(printable(self.context))}" if self.context else ""
            raise ConfigError(
                f"{self._name} needs an interactive terminal (interactiveMode: Always), which "
                f"portfwd cannot give it; log in first (`kubectl get ns{where}` in a terminal),"
                " or set interactiveMode to IfAvailable or Never"
            )
        env = dict(self._environ)
        env.update(dict(cfg.env))
        env["KUBERNETES_EXEC_INFO"] = self._exec_info()
        self.runs += 1
        log.debug("running %s", self._name)
        try:
            proc = await asyncio.create_subprocess_exec(
                self._command_path(),
                *cfg.args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
        except FileNotFoundError:
            hint = " ".join(cfg.install_hint.split()) if cfg.install_hint else None
            raise ConfigError(
                f"{self._name} was not found"
                + (f"; {hint}" if hint else "; install it or fix exec.command in the kubeconfig")
            ) from None
        except PermissionError:
            raise ConfigError(
                f"{self._name} is not executable (permission denied); check the file's mode"
            ) from None
        except OSError as exc:
            raise ConfigError(f"{self._name} could not be started: {exc.strerror or exc}") from None
        try:
            async with asyncio.timeout(self.timeout):
                (out, out_over), (err, _) = await asyncio.gather(
                    _read_capped(proc.stdout, _EXEC_OUTPUT_LIMIT),
                    _read_capped(proc.stderr, 64 * 1024),
                )
                code = await proc.wait()
        except TimeoutError:
            raise ConfigError(
                f"{self._name} did not finish within {self.timeout:g} s; run it in a terminal "
                "to see what it waits for" + self._login_hint
            ) from None
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if code != 0:
            first = _one_line(err.decode("utf-8", "replace"))
            raise ConfigError(
                f"{self._name} failed with exit code {code}"
                + (f": {first}" if first else "")
                + self._login_hint
            )
        if out_over:
            raise ConfigError(f"{self._name} printed more than 4 MiB; expected an ExecCredential")
        return self._parse(out)

    def _parse(self, out: bytes) -> _ExecResult:
        bad = f"{self._name} printed an invalid ExecCredential"
        try:
            data = json.loads(out.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
            where = (
                f" at line {exc.lineno} column {exc.colno}"
                if isinstance(exc, json.JSONDecodeError)
                else ""
            )
            raise ConfigError(f"{bad}: not JSON ({detail}{where})") from None
        except RecursionError:  # "[[[[..." within the 4 MiB cap
            raise ConfigError(f"{bad}: its JSON is nested too deeply") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{bad}: expected a JSON object")
        if data.get("kind") != "ExecCredential":
            raise ConfigError(f"{bad}: kind is {data.get('kind')!r}, expected ExecCredential")
        if data.get("apiVersion") != self.config.api_version:
            raise ConfigError(
                f"{bad}: apiVersion {data.get('apiVersion')!r} does not match the "
                f"kubeconfig's {self.config.api_version}"
            )
        status = data.get("status")
        if not isinstance(status, dict):
            raise ConfigError(f"{bad}: no status")
        token = status.get("token") or None
        cert = status.get("clientCertificateData") or None
        key = status.get("clientKeyData") or None
        if not all(isinstance(v, str) or v is None for v in (token, cert, key)):
            raise ConfigError(f"{bad}: token, clientCertificateData and clientKeyData are strings")
        if (cert is None) != (key is None):
            raise ConfigError(f"{bad}: it returned only a certificate or only a key, not both")
        if token is None and cert is None:
            raise ConfigError(f"{bad}: it returned neither a token nor a certificate/key pair")
        expires: datetime | None = None
        stamp = status.get("expirationTimestamp")
        if stamp:
            try:
                expires = datetime.fromisoformat(str(stamp))
            except ValueError:
                raise ConfigError(
                    f"{bad}: expirationTimestamp {stamp!r} is not an RFC 3339 time"
                ) from None
            if expires.tzinfo is None:
                expires = expires.replace(tzinfo=UTC)
        return _ExecResult(
            token=token,
            cert_pem=cert.encode() if cert else None,
            key_pem=key.encode() if key else None,
            expires=expires,
        )


class UserAuth:
    """The :class:`AuthProvider` for a kubeconfig user (or the in-cluster service account)."""

    def __init__(
        self,
        user: str,
        *,
        token: str | None = None,
        token_file: WatchedFile | None = None,
        client_cert_pem: bytes | None = None,
        client_key_pem: bytes | None = None,
        client_cert_file: WatchedFile | None = None,
        client_key_file: WatchedFile | None = None,
        exec_plugin: ExecPlugin | None = None,
    ) -> None:
        self.user = user
        self._token = token
        self._token_file = token_file
        self._cert = client_cert_pem
        self._key = client_key_pem
        self._cert_file = client_cert_file
        self._key_file = client_key_file
        self.exec_plugin = exec_plugin
        self._force_reread = False

    def __repr__(self) -> str:
        return f"UserAuth(user={self.user!r}, sources={self.sources()})"

    def sources(self) -> list[str]:
        """Which kinds of credential the kubeconfig names (never their values): "token",
        "tokenFile", "client-certificate", "exec"."""
        return [
            name
            for name, present in (
                ("token", self._token is not None),
                ("tokenFile", self._token_file is not None),
                ("client-certificate", self._cert is not None or self._cert_file is not None),
                ("exec", self.exec_plugin is not None),
            )
            if present
        ]

    @property
    def token_file(self) -> Path | None:
        """The tokenFile's path, if the user names one."""
        return self._token_file.path if self._token_file is not None else None

    @property
    def static_cert(self) -> bytes | None:
        """The client certificate the kubeconfig names (inline, or the file as last read)."""
        if self._cert_file is not None and self._cert_file.cached is not None:
            return self._cert_file.cached
        return self._cert

    @property
    def static_token(self) -> str | None:
        """The bearer token the kubeconfig names (tokenFile as last read, else inline)."""
        if self._token_file is not None and self._token_file.cached is not None:
            text = self._token_file.cached.decode("utf-8", "replace").strip()
            if text:
                return text
        return self._token

    @property
    def _files(self) -> list[WatchedFile]:
        return [f for f in (self._token_file, self._cert_file, self._key_file) if f is not None]

    def read_files_now(self) -> None:
        """Read every named file once (blocking): surfaces a missing file at load time."""
        for f in self._files:
            f.read()

    def _read_files(self, force: bool) -> tuple[str | None, bytes | None, bytes | None]:
        token = self._token_file.read(force=force) if self._token_file else None
        cert = self._cert_file.read(force=force) if self._cert_file else None
        key = self._key_file.read(force=force) if self._key_file else None
        # client-go trims the token file's whitespace (a trailing newline is the norm).
        token_text = token.decode("utf-8", "replace").strip() if token is not None else None
        return token_text or None, cert, key

    async def get(self) -> Credentials:
        token = self._token
        cert, key = self._cert, self._key
        if self._files:
            force, self._force_reread = self._force_reread, False
            file_token, file_cert, file_key = await asyncio.to_thread(self._read_files, force)
            token = file_token or token
            cert = file_cert if file_cert is not None else cert
            key = file_key if file_key is not None else key
        if self.exec_plugin is not None and token is None and cert is None:
            # client-go skips the plugin when the kubeconfig already names a token or cert.
            result = await self.exec_plugin.get()
            token = result.token
            cert, key = result.cert_pem, result.key_pem
        return Credentials(token=token, client_cert_pem=cert, client_key_pem=key)

    def invalidate(self) -> None:
        self._force_reread = True
        if self.exec_plugin is not None:
            self.exec_plugin.invalidate()
