"""A lean kubeconfig loader that follows kubectl's (client-go ``clientcmd``) rules.

* Which files: ``--kubeconfig`` (one file, must exist) beats ``KUBECONFIG`` (a list joined by
  ``os.pathsep``; missing files are skipped, duplicates ignored) beats ``~/.kube/config``. With
  none of them present but ``KUBERNETES_SERVICE_HOST``/``PORT`` set, the in-cluster service
  account is used.
* Merging: the first file that defines a cluster/context/user *name* wins the whole entry; the
  first file that sets ``current-context`` wins. Relative paths (certificate-authority,
  client-certificate, client-key, tokenFile, an exec command containing a ``/``) are resolved
  against the directory of the file that names them, before merging.
* Namespace: ``-n`` beats the context's ``namespace`` beats ``default``.

Deliberate deviations from kubectl, both toward a clear error instead of a silent surprise: a
context naming a missing cluster is an error (kubectl falls back to localhost:8080), and so is
one naming a missing user (kubectl goes on anonymously).

Everything here is synchronous file I/O: callers on the event loop use ``asyncio.to_thread``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from yarl import URL

from portfwd.errors import ConfigError
from portfwd.filecheck import FileTooLarge, read_capped
from portfwd.kube.auth import (
    AuthProvider,
    Credentials,
    ExecPlugin,
    UserAuth,
    WatchedFile,
    parse_exec_config,
)
from portfwd.kube.targets import printable, quote
from portfwd.kube.tls import build_ssl_context
from portfwd.safeyaml import YamlLimitError, load_yaml

DEFAULT_SERVICEACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
IN_CLUSTER = "in-cluster"
_SSL_CACHE_MAX = 4
# Big kubeconfigs (hundreds of clusters with inline certificates) are a few MiB. The node
# limit also bounds alias expansion: a 1.6 KB alias bomb under a cluster's extensions reached
# an exec plugin's cluster info as 387 million nodes.
KUBECONFIG_MAX_BYTES = 16 << 20
KUBECONFIG_MAX_NODES = 500_000


@dataclass(frozen=True)
class ContextInfo:
    name: str
    cluster: str
    user: str
    namespace: str | None


@dataclass(frozen=True)
class ClusterConnection:
    """Everything needed to reach one cluster as one user; credentials come from ``auth``."""

    context: str
    cluster: str
    user: str
    server: str  # base URL, no trailing slash
    namespace: str
    ca_pem: bytes | None = field(repr=False)
    insecure_skip_tls_verify: bool
    tls_server_name: str | None
    proxy_url: str | None = field(repr=False)  # may hold a password
    auth: AuthProvider
    # What this connection was made of, to tell a kubeconfig that changed under a running
    # forward (engine/clients.py): a digest of its context, cluster and user entries (never
    # shown: it covers tokens), and the other files read for it (a certificate-authority).
    fingerprint: str = field(default="", repr=False, compare=False)
    sources: tuple[Path, ...] = field(default=(), repr=False, compare=False)
    _ssl_cache: dict[tuple[bytes | None, bytes | None], ssl.SSLContext] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    @property
    def server_hostname(self) -> str | None:
        """The name to verify in the server's certificate (aiohttp ``server_hostname``)."""
        return self.tls_server_name

    def ssl_context(self, creds: Credentials) -> ssl.SSLContext | None:
        """TLS settings for ``creds`` (None for an ``http://`` server); cached per client cert."""
        if not self.server.lower().startswith("https://"):
            return None
        key = (creds.client_cert_pem, creds.client_key_pem)
        ctx = self._ssl_cache.get(key)
        if ctx is None:
            ctx = build_ssl_context(
                ca_pem=self.ca_pem,
                insecure_skip_tls_verify=self.insecure_skip_tls_verify,
                client_cert_pem=creds.client_cert_pem,
                client_key_pem=creds.client_key_pem,
                where=f'cluster "{self.cluster}", user "{self.user}"',
            )
            if len(self._ssl_cache) >= _SSL_CACHE_MAX:
                self._ssl_cache.clear()  # rotated certificates: old contexts are dead weight
            self._ssl_cache[key] = ctx
        return ctx


# --------------------------------------------------------------------------- files and merging


def _show(path: Path, home: Path | None) -> str:
    """A path as the user would type it (``~/.kube/config``)."""
    if home is not None:
        try:
            return "~/" + str(path.relative_to(home))
        except ValueError:
            pass
    return str(path)


@dataclass
class _Entry:
    name: str
    body: dict[str, Any]
    origin: Path  # the kubeconfig file that defined it


@dataclass
class _Merged:
    files: list[Path]
    home: Path | None
    clusters: dict[str, _Entry] = field(default_factory=dict)
    contexts: dict[str, _Entry] = field(default_factory=dict)
    users: dict[str, _Entry] = field(default_factory=dict)
    current_context: str | None = None
    current_context_origin: Path | None = None

    def where(self) -> str:
        return ", ".join(_show(p, self.home) for p in self.files)

    def show(self, path: Path) -> str:
        return _show(path, self.home)


def _home(env: Mapping[str, str]) -> Path | None:
    home = env.get("HOME")
    if home:
        return Path(home)
    try:
        return Path.home()
    except RuntimeError:
        return None


def _expand(raw: str, home: Path | None) -> Path:
    if home is not None and (raw == "~" or raw.startswith("~/")):
        return home / raw[2:]
    return Path(os.path.expanduser(raw))


def _locate(raw: str, home: Path | None) -> Path:
    """A kubeconfig path from the command line or KUBECONFIG: relative to the working dir."""
    return Path(os.path.abspath(_expand(raw, home)))


def _find_files(kubeconfig: str | None, env: Mapping[str, str]) -> tuple[list[Path], str]:
    """Kubeconfig files to merge, and how to say where we looked (for the not-found error)."""
    home = _home(env)
    if kubeconfig:
        path = _locate(kubeconfig, home)
        if not path.exists():
            raise ConfigError(
                f"kubeconfig {kubeconfig} (from --kubeconfig) does not exist; check the path"
            )
        return [path], kubeconfig
    listed = env.get("KUBECONFIG", "")
    if listed:
        seen: list[Path] = []
        for part in listed.split(os.pathsep):
            if not part:
                continue
            path = _locate(part, home)
            if path not in seen:
                seen.append(path)
        return [p for p in seen if p.exists()], f"KUBECONFIG={listed}"
    default = (home or Path("~")) / ".kube" / "config"
    return ([default] if default.exists() else []), _show(default, home)


def kubeconfig_paths(
    kubeconfig: str | None = None, *, environ: Mapping[str, str] | None = None
) -> tuple[Path, ...]:
    """Every file the kubeconfig is (or would be) merged from, present or not: what a
    forward follows. A file of KUBECONFIG that appears later counts, as for kubectl."""
    env = os.environ if environ is None else environ
    home = _home(env)
    if kubeconfig:
        return (_locate(kubeconfig, home),)
    listed = env.get("KUBECONFIG", "")
    if listed:
        paths: list[Path] = []
        for part in listed.split(os.pathsep):
            path = _locate(part, home) if part else None
            if path is not None and path not in paths:
                paths.append(path)
        return tuple(paths)
    return ((home or Path("~")) / ".kube" / "config",)


def _read_yaml(path: Path, home: Path | None) -> dict[str, Any]:
    shown = _show(path, home)
    try:
        # Not regular_only: `--kubeconfig <(...)` (a pipe) works with kubectl, and here.
        text = read_capped(path, KUBECONFIG_MAX_BYTES, regular_only=False).decode("utf-8")
        data = load_yaml(text, max_nodes=KUBECONFIG_MAX_NODES)
    except PermissionError:
        raise ConfigError(
            f"cannot read kubeconfig {shown}: permission denied; fix its permissions"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"kubeconfig {shown} is a directory, not a file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"kubeconfig {shown} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"cannot read kubeconfig {shown}: {exc.strerror or exc}") from None
    except FileTooLarge as exc:
        raise ConfigError(f"kubeconfig {shown} is refused: it {exc.problem}") from None
    except YamlLimitError as exc:
        raise ConfigError(f"kubeconfig {shown} is refused: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "syntax error"
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"kubeconfig {shown} is not valid YAML{at}: {problem}") from None
    if data is None:
        return {}  # kubectl treats an empty file as an empty config
    if not isinstance(data, dict):
        raise ConfigError(f"kubeconfig {shown} is not a kubeconfig (expected a YAML mapping)")
    return data


def _named_list(data: dict[str, Any], key: str, body_key: str, shown: str) -> list[_Entry]:
    raw = data.get(key)
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(f'kubeconfig {shown}: "{key}" must be a list')
    entries = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ConfigError(f'kubeconfig {shown}: every entry of "{key}" needs a name')
        body = item.get(body_key)
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise ConfigError(
                f'kubeconfig {shown}: {key} entry "{printable(item["name"])}" has a {body_key} '
                "that is not a mapping"
            )
        entries.append(_Entry(item["name"], body, Path()))
    return entries


def _merge(files: list[Path], home: Path | None) -> _Merged:
    merged = _Merged(files=files, home=home)
    for path in files:
        shown = _show(path, home)
        data = _read_yaml(path, home)
        for key, body_key, target in (
            ("clusters", "cluster", merged.clusters),
            ("contexts", "context", merged.contexts),
            ("users", "user", merged.users),
        ):
            for entry in _named_list(data, key, body_key, shown):
                if entry.name not in target:  # the first file to define a name wins
                    entry.origin = path
                    target[entry.name] = entry
        current = data.get("current-context")
        if merged.current_context is None and isinstance(current, str) and current:
            merged.current_context = current
            merged.current_context_origin = path
    return merged


# --------------------------------------------------------------------------- public API


def list_contexts(
    kubeconfig: str | None = None, *, environ: Mapping[str, str] | None = None
) -> tuple[list[ContextInfo], str | None]:
    """All contexts of the merged kubeconfig and its current-context (sync: file reads)."""
    env = os.environ if environ is None else environ
    files, looked = _find_files(kubeconfig, env)
    if not files:
        if _in_cluster_env(env):
            info = ContextInfo(IN_CLUSTER, IN_CLUSTER, "serviceaccount", None)
            return [info], IN_CLUSTER
        raise _not_found(looked, kubeconfig, env)
    merged = _merge(files, _home(env))
    infos = []
    for entry in merged.contexts.values():
        ns = entry.body.get("namespace")
        infos.append(
            ContextInfo(
                name=entry.name,
                cluster=str(entry.body.get("cluster") or ""),
                user=str(entry.body.get("user") or ""),
                namespace=ns if isinstance(ns, str) and ns else None,
            )
        )
    return infos, merged.current_context


@dataclass(frozen=True)
class KubeconfigSummary:
    """What the merged kubeconfig holds, for `portfwd doctor`."""

    files: tuple[Path, ...]  # the files merged, in order (the first one wins a name)
    shown: tuple[str, ...]  # the same, as the user would type them (~/.kube/config)
    source: str  # how they were chosen: "--kubeconfig", "KUBECONFIG" or "default"
    contexts: int
    clusters: int
    users: int
    current_context: str | None


def describe_kubeconfig(
    kubeconfig: str | None = None, *, environ: Mapping[str, str] | None = None
) -> KubeconfigSummary:
    """Find, read and merge the kubeconfig as :func:`load_connection` does (the same errors,
    ConfigError, for a missing or broken file) and say what it holds."""
    env = os.environ if environ is None else environ
    files, looked = _find_files(kubeconfig, env)
    if not files:
        raise _not_found(looked, kubeconfig, env)
    home = _home(env)
    merged = _merge(files, home)
    source = (
        "--kubeconfig" if kubeconfig else ("KUBECONFIG" if env.get("KUBECONFIG") else "default")
    )
    return KubeconfigSummary(
        files=tuple(files),
        shown=tuple(_show(p, home) for p in files),
        source=source,
        contexts=len(merged.contexts),
        clusters=len(merged.clusters),
        users=len(merged.users),
        current_context=merged.current_context,
    )


def load_connection(
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    serviceaccount_dir: Path | None = None,
) -> ClusterConnection:
    """Resolve server, TLS material, credentials and namespace like kubectl (sync: file reads).

    ``environ`` replaces ``os.environ`` (KUBECONFIG, HOME, in-cluster variables, and the base
    environment of exec plugins); ``serviceaccount_dir`` replaces the in-cluster secret mount.
    """
    env = os.environ if environ is None else environ
    files, looked = _find_files(kubeconfig, env)
    if not files:
        if context is None and _in_cluster_env(env):
            return _in_cluster(env, namespace, serviceaccount_dir or DEFAULT_SERVICEACCOUNT_DIR)
        raise _not_found(looked, kubeconfig, env)
    merged = _merge(files, _home(env))
    ctx_entry = _pick_context(merged, context)
    return _connection(merged, ctx_entry, namespace, env)


def _not_found(looked: str, kubeconfig: str | None, env: Mapping[str, str]) -> ConfigError:
    if env.get("KUBECONFIG") and not kubeconfig:
        return ConfigError(
            f"none of the files in {looked} exist; fix KUBECONFIG or pass --kubeconfig"
        )
    return ConfigError(f"no kubeconfig found at {looked}; set KUBECONFIG or pass --kubeconfig")


def _available(merged: _Merged) -> str:
    names = sorted(merged.contexts)
    return _names(names) if names else "none defined"


def _names(names: list[str]) -> str:
    return ", ".join(printable(n) for n in names)


def _pick_context(merged: _Merged, context: str | None) -> _Entry:
    if context:
        entry = merged.contexts.get(context)
        if entry is None:
            raise ConfigError(
                f'context "{printable(context)}" not found in {merged.where()}; '
                f"available: {_available(merged)}"
            )
        return entry
    current = merged.current_context
    if current is None:
        raise ConfigError(
            f"no current-context in {merged.where()}; pass --context "
            f"(available: {_available(merged)})"
        )
    entry = merged.contexts.get(current)
    if entry is None:
        origin = merged.show(merged.current_context_origin or merged.files[0])
        raise ConfigError(
            f'current-context "{printable(current)}" (set in {origin}) not found in '
            f"{merged.where()}; "
            f"pass --context (available: {_available(merged)})"
        )
    return entry


def _resolve(raw: str, origin: Path, home: Path | None) -> Path:
    path = _expand(raw, home)
    return path if path.is_absolute() else origin.parent / path


def _b64(value: Any, what: str, owner: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=False)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{what} of {owner} is not valid base64") from None


def _read_cred_file(path: Path, what: str, owner: str) -> bytes:
    return WatchedFile(path, what=what, owner=owner).read()


def _connection(
    merged: _Merged, ctx_entry: _Entry, namespace: str | None, env: Mapping[str, str]
) -> ClusterConnection:
    home = merged.home
    ctx_name = ctx_entry.name
    ctx_owner = f'context "{printable(ctx_name)}" in {merged.show(ctx_entry.origin)}'
    cluster_name = ctx_entry.body.get("cluster")
    if not isinstance(cluster_name, str) or not cluster_name:
        raise ConfigError(f"{ctx_owner} names no cluster; set contexts[].context.cluster")
    cluster_entry = merged.clusters.get(cluster_name)
    if cluster_entry is None:
        raise ConfigError(
            f'context "{printable(ctx_name)}" refers to cluster "{printable(cluster_name)}", '
            f"which is not defined in {merged.where()}; "
            f"available clusters: {_names(sorted(merged.clusters)) or '-'}"
        )
    user_name = ctx_entry.body.get("user")
    user_name = user_name if isinstance(user_name, str) else ""
    user_entry = merged.users.get(user_name) if user_name else None
    if user_name and user_entry is None:
        raise ConfigError(
            f'context "{printable(ctx_name)}" refers to user "{printable(user_name)}", '
            f"which is not defined in {merged.where()}; "
            f"available users: {_names(sorted(merged.users)) or '-'}"
        )

    c = cluster_entry.body
    c_owner = f'cluster "{printable(cluster_name)}" in {merged.show(cluster_entry.origin)}'
    server = c.get("server")
    if not isinstance(server, str) or not server.strip():
        raise ConfigError(f"{c_owner} has no server; set clusters[].cluster.server")
    insecure = c.get("insecure-skip-tls-verify") is True
    ca_pem: bytes | None = None
    ca_data, ca_file = c.get("certificate-authority-data"), c.get("certificate-authority")
    if ca_data and ca_file:
        raise ConfigError(
            f"{c_owner} sets both certificate-authority and certificate-authority-data; "
            "keep one (kubectl refuses this too)"
        )
    if ca_data:
        ca_pem = _b64(ca_data, "certificate-authority-data", c_owner)
    elif ca_file:
        ca_pem = _read_cred_file(
            _resolve(str(ca_file), cluster_entry.origin, home), "certificate-authority", c_owner
        )

    if insecure and ca_pem is not None:
        raise ConfigError(
            f"{c_owner} sets insecure-skip-tls-verify together with a certificate authority; "
            "remove one (kubectl refuses this too)"
        )

    auth: UserAuth
    has_client_cert = False
    if user_entry is None:
        auth = UserAuth(user_name)
    else:
        auth, has_client_cert = _user_auth(
            merged,
            user_entry,
            env,
            cluster_info=_cluster_info(c, server, ca_pem),
            context=ctx_name,
        )

    server = server.strip().rstrip("/")
    if "://" not in server:
        # client-go picks https when any TLS setting is present, http otherwise.
        tls = ca_pem is not None or insecure or has_client_cert
        server = ("https://" if tls else "http://") + server
    _check_server(server, c_owner)

    ns_ctx = ctx_entry.body.get("namespace")
    resolved_ns = namespace or (ns_ctx if isinstance(ns_ctx, str) and ns_ctx else "default")
    tls_name = c.get("tls-server-name")
    proxy = c.get("proxy-url")
    entries = [ctx_entry, cluster_entry, *([user_entry] if user_entry is not None else [])]
    return ClusterConnection(
        context=ctx_name,
        cluster=cluster_name,
        user=user_name,
        server=server,
        namespace=resolved_ns,
        ca_pem=ca_pem,
        insecure_skip_tls_verify=insecure,
        tls_server_name=tls_name if isinstance(tls_name, str) and tls_name else None,
        proxy_url=proxy if isinstance(proxy, str) and proxy else None,
        auth=auth,
        fingerprint=_fingerprint(
            [(e.name, str(e.origin), e.body) for e in entries], ca_pem, resolved_ns
        ),
        sources=(_resolve(str(ca_file), cluster_entry.origin, home),) if ca_file else (),
    )


def _fingerprint(parts: Any, ca_pem: bytes | None, namespace: str) -> str:
    """A digest of what a connection is made of: equal digests, nothing to reload."""
    text = json.dumps([parts, (ca_pem or b"").hex(), namespace], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _check_server(server: str, owner: str) -> None:
    """Refuse a server URL no connection could be made to, in one line naming the entry
    (a malformed one used to surface later as a ValueError traceback)."""
    problem = _server_problem(server)
    if problem:
        raise ConfigError(
            f"{owner} has an invalid server {quote(_without_userinfo(server))}: {problem}; "
            "fix clusters[].cluster.server (e.g. https://host:6443)"
        )


def _without_userinfo(server: str) -> str:
    """The URL as it may be shown: a password in it is never printed."""
    scheme, sep, rest = server.partition("://")
    netloc_end = min(
        (i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest)
    )
    netloc = rest[:netloc_end]
    if not sep or "@" not in netloc:
        return server
    return f"{scheme}://***@{netloc.rpartition('@')[2]}{rest[netloc_end:]}"


def _server_problem(server: str) -> str:
    try:
        parts = urlsplit(server)
    except ValueError as exc:
        if "[" in server or "]" in server:
            return "Invalid IPv6 URL"  # an unclosed bracket or no IPv6 address inside
        return printable(str(exc))
    if parts.scheme.lower() not in ("https", "http"):
        return f"the scheme {quote(parts.scheme)} is not https or http"
    if "@" in parts.netloc:
        # aiohttp refuses a URL with credentials beside a token or certificate (a ValueError
        # traceback), and a password in a URL ends up in logs: users[] holds credentials.
        return "it holds a user name or password (user@host); put credentials in users[]"
    hostport = parts.netloc
    if hostport.startswith("["):
        host, _, after = hostport[1:].partition("]")
        try:
            ipaddress.IPv6Address(host.partition("%")[0])
        except ValueError:
            return "Invalid IPv6 URL"
        if after and not after.startswith(":"):
            return f"{quote(after)} after the IPv6 address is not a port"
        port = after[1:]
    else:
        host, _, port = hostport.partition(":")
    if not host:
        return "it names no host"
    if any(c.isspace() or not c.isprintable() for c in host):
        return f"{quote(host)} is not a host name"
    if port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        return f"port {quote(port)} is not a number from 1 to 65535"
    if not hostport.startswith("[") and not _encodable_host(host):
        return (
            f"{quote(host)} is not a valid host name (each dot-separated label has 1 to 63"
            " characters)"
        )
    try:  # what aiohttp will make of it (host name encoding, characters RFC 3986 forbids)
        url = URL(server)
        url.raw_host  # noqa: B018 (it raises when the host cannot be encoded)
        url.host  # noqa: B018 (...or decoded back: some hosts encode and do not decode back)
    except (ValueError, UnicodeError) as exc:
        return printable(str(exc)) or "it is not a valid URL"
    return ""


def _encodable_host(host: str) -> bool:
    """What the resolver will make of it: IDNA, labels of 1-63 characters (a longer one was
    a UnicodeError traceback from getaddrinfo)."""
    try:
        host.removesuffix(".").encode("idna")
    except UnicodeError:
        return False
    return True


def _cluster_info(c: dict[str, Any], server: str, ca_pem: bytes | None) -> dict[str, Any]:
    """The ``spec.cluster`` an exec plugin with provideClusterInfo receives."""
    info: dict[str, Any] = {"server": server.strip()}
    if ca_pem is not None:
        info["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    for key in ("tls-server-name", "insecure-skip-tls-verify", "proxy-url"):
        if c.get(key):
            info[key] = c[key]
    extensions = c.get("extensions")
    for ext in extensions if isinstance(extensions, list) else []:
        if isinstance(ext, dict) and ext.get("name") == "client.authentication.k8s.io/exec":
            info["config"] = ext.get("extension")
    return info


def _user_auth(
    merged: _Merged,
    entry: _Entry,
    env: Mapping[str, str],
    *,
    cluster_info: dict[str, Any],
    context: str = "",
) -> tuple[UserAuth, bool]:
    home = merged.home
    u = entry.body
    name = entry.name
    owner = f'user "{printable(name)}" in {merged.show(entry.origin)}'

    def file_of(key: str) -> WatchedFile | None:
        raw = u.get(key)
        if not raw:
            return None
        return WatchedFile(_resolve(str(raw), entry.origin, home), what=key, owner=owner)

    cert_pem = key_pem = None
    cert_file = key_file = None
    for data_key, file_key in (
        ("client-certificate-data", "client-certificate"),
        ("client-key-data", "client-key"),
    ):
        if u.get(data_key) and u.get(file_key):
            raise ConfigError(
                f"{owner} sets both {file_key} and {data_key}; keep one (kubectl refuses this too)"
            )
    if u.get("client-certificate-data"):
        cert_pem = _b64(u["client-certificate-data"], "client-certificate-data", owner)
    cert_file = file_of("client-certificate")
    if u.get("client-key-data"):
        key_pem = _b64(u["client-key-data"], "client-key-data", owner)
    key_file = file_of("client-key")
    has_cert = cert_pem is not None or cert_file is not None
    has_key = key_pem is not None or key_file is not None
    if has_cert != has_key:
        missing = "client-key" if has_cert else "client-certificate"
        raise ConfigError(f"{owner} has no {missing}; a client certificate needs both")

    token = u.get("token")
    token = token if isinstance(token, str) and token else None
    token_file = file_of("tokenFile")

    exec_raw, provider = u.get("exec"), u.get("auth-provider")
    if exec_raw and provider:
        raise ConfigError(f"{owner} sets both exec and auth-provider; keep one")
    exec_plugin = None
    if exec_raw:
        exec_cfg = parse_exec_config(exec_raw, owner=owner, base_dir=entry.origin.parent)
        exec_plugin = ExecPlugin(
            exec_cfg, user=name, environ=env, cluster_info=cluster_info, context=context
        )
    if provider:
        token = token or _auth_provider_token(provider, owner)

    if (
        u.get("username")
        and token is None
        and token_file is None
        and not has_cert
        and exec_plugin is None
    ):
        raise ConfigError(
            f"{owner} uses username/password (basic auth), which portfwd does not support; "
            "use a token, client certificate or exec plugin"
        )
    auth = UserAuth(
        name,
        token=token,
        token_file=token_file,
        client_cert_pem=cert_pem,
        client_key_pem=key_pem,
        client_cert_file=cert_file,
        client_key_file=key_file,
        exec_plugin=exec_plugin,
    )
    auth.read_files_now()  # a missing file is a load error, as with kubectl
    return auth, has_cert


def _auth_provider_token(provider: Any, owner: str) -> str:
    if not isinstance(provider, dict):
        raise ConfigError(f"auth-provider of {owner} must be a mapping")
    pname = provider.get("name")
    if pname != "oidc":
        raise ConfigError(
            f'auth-provider "{printable(str(pname))}" of {owner} is not supported '
            "(kubectl dropped it too); "
            "switch the user to its exec plugin (e.g. gke-gcloud-auth-plugin, kubelogin)"
        )
    pconfig = provider.get("config") or {}
    id_token = pconfig.get("id-token") if isinstance(pconfig, dict) else None
    if not isinstance(id_token, str) or not id_token:
        raise ConfigError(
            f"auth-provider oidc of {owner} has no id-token; portfwd does not run the OIDC "
            "refresh flow: log in with your OIDC tool (e.g. kubectl oidc-login) first"
        )
    return id_token


# --------------------------------------------------------------------------- in-cluster


def _in_cluster_env(env: Mapping[str, str]) -> bool:
    return bool(env.get("KUBERNETES_SERVICE_HOST") and env.get("KUBERNETES_SERVICE_PORT"))


def _in_cluster(env: Mapping[str, str], namespace: str | None, sa_dir: Path) -> ClusterConnection:
    host = env["KUBERNETES_SERVICE_HOST"]
    port = env["KUBERNETES_SERVICE_PORT"]
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    owner = f"the in-cluster service account ({sa_dir})"
    ca_pem = _read_cred_file(sa_dir / "ca.crt", "ca.crt", owner)
    token_file = WatchedFile(sa_dir / "token", what="token", owner=owner)
    auth = UserAuth("serviceaccount", token_file=token_file)
    auth.read_files_now()
    ns = namespace or env.get("POD_NAMESPACE") or None
    if ns is None:
        try:
            ns = (sa_dir / "namespace").read_text(encoding="utf-8").strip() or None
        except OSError:
            ns = None
    return ClusterConnection(
        context=IN_CLUSTER,
        cluster=IN_CLUSTER,
        user="serviceaccount",
        server=f"https://{host}:{port}",
        namespace=ns or "default",
        ca_pem=ca_pem,
        insecure_skip_tls_verify=False,
        tls_server_name=None,
        proxy_url=None,
        auth=auth,
        fingerprint=_fingerprint([host, port], ca_pem, ns or "default"),
        sources=(sa_dir / "ca.crt",),
    )
