"""Watch streams: list, then watch, resume on resourceVersion, relist on 410 Gone.

The consumer sees one event stream per watch (see :meth:`KubeClient.watch`); dropped streams,
expired resourceVersions and a restarting API server are handled here, so an informer never
misses a deletion.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncGenerator, Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from portfwd.kube.backoff import Backoff
from portfwd.kube.errors import ApiError, ClusterUnreachable, Expired, fold_lines
from portfwd.kube.http import HttpCore

log = logging.getLogger(__name__)

# Synthetic watch event types (see KubeClient.watch).
SYNCED = "SYNCED"

WATCH_RETRIES = 6  # consecutive stream drops without progress before giving up (~6 s)
_WATCH_LINE_LIMIT = 16 * 1024 * 1024  # one watch event; a huge object is a few MiB at most
_TRANSIENT = ("refused", "timeout", "lost", "dns")


class ListRaw(Protocol):
    """KubeClient.list_raw: passed in, so this module sits below the client that uses it."""

    def __call__(
        self,
        resource: str,
        ns: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Awaitable[tuple[list[dict[str, Any]], str]]: ...


@dataclass(frozen=True)
class WatchEvent:
    """One watch event: ADDED, MODIFIED, DELETED, BOOKMARK, or the synthetic SYNCED."""

    type: str
    object: dict[str, Any]


async def watch_events(
    client: HttpCore,
    list_raw: ListRaw,
    resource: str,
    path: str,
    ns: str | None,
    label_selector: str | None,
    field_selector: str | None,
    retries: int,
) -> AsyncGenerator[WatchEvent, None]:
    """The event stream :meth:`KubeClient.watch` documents."""
    known: dict[tuple[str, str], dict[str, Any]] = {}
    rv: str | None = None
    failures = 0
    # Resuming a dropped stream: 0.2 s, 0.4, 0.8 ... at most 5 s, each jittered by half.
    resume = Backoff(initial=0.2, cap=5.0, jitter=0.5, reset_after=0)
    last_error: ClusterUnreachable | None = None
    while not client.closed:
        if rv is None:
            if known:
                log.debug("watch %s: resourceVersion expired, listing again", resource)
            items, rv = await list_raw(
                resource, ns, label_selector=label_selector, field_selector=field_selector
            )
            for event in _diff_relist(known, items):
                yield event
            yield WatchEvent(SYNCED, {"resourceVersion": rv})
        params = {
            "watch": "1",
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(client.watch_timeout),
        }
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        progressed = dropped = False
        stream = _watch_stream(client, path, params, ns, resource)
        try:
            async for raw in stream:
                etype = str(raw.get("type", ""))
                obj = raw.get("object")
                if not isinstance(obj, dict):
                    continue
                if etype == "ERROR":
                    code = obj.get("code")
                    if code == 410:
                        rv = None  # too old: relist
                        break
                    message = str(obj.get("message") or obj.get("reason") or "unknown error")
                    raise ApiError(
                        f"watch {resource} failed: {fold_lines(message)}",
                        status=code if isinstance(code, int) else 500,
                        reason=str(obj.get("reason") or ""),
                        api_message=message,
                    )
                meta = obj.get("metadata")
                new_rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
                if new_rv:
                    rv = str(new_rv)
                progressed = True
                if etype != "BOOKMARK":
                    key = _key(obj)
                    if etype == "DELETED":
                        known.pop(key, None)
                    else:
                        known[key] = obj
                yield WatchEvent(etype, obj)
        except Expired:
            rv = None
            continue
        except _StreamDropped:
            dropped = True
        except ClusterUnreachable as exc:
            # A restarting API server or a network blip: resume like a dropped stream.
            # TLS and proxy failures will not heal by themselves: raise them at once.
            if exc.cause not in _TRANSIENT:
                raise
            dropped, last_error = True, exc
        finally:
            # Close the HTTP response now, not when the generator is garbage collected.
            await stream.aclose()
        if not dropped:
            failures = 0
            resume.reset()
            continue
        if client.closed:
            return
        if progressed:
            failures = 0
            resume.reset()
        else:
            failures += 1
        log.debug("watch %s: stream dropped (attempt %d), resuming", resource, failures)
        if failures >= retries:
            raise last_error or ClusterUnreachable(
                f"the watch on {resource} at {client.where} keeps dropping — check the "
                "network or proxy",
                cause="lost",
            )
        await asyncio.sleep(resume.failure())


async def _watch_stream(
    client: HttpCore, path: str, params: dict[str, str], ns: str | None, resource: str
) -> AsyncGenerator[dict[str, Any], None]:
    """Yield decoded watch lines; raise _StreamDropped when the connection breaks."""
    session = client.http_session()
    url = client.url(path)
    scope = f' in namespace "{ns}"' if ns else ""
    what = f"watch {resource}{scope}"
    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=client.connect_timeout,
        sock_connect=client.connect_timeout,
        sock_read=client.watch_timeout + 30,
    )
    for attempt in (1, 2):
        options = await client.request_options()
        try:
            resp = await session.get(
                url,
                params=params,
                **options,
                timeout=timeout,
            )
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as exc:
            raise client.connection_error(exc, what) from None
        async with resp:
            if resp.status == 401 and attempt == 1:
                client.refresh_credentials()
                continue
            if resp.status >= 400:
                try:
                    body = await resp.read()
                except (aiohttp.ClientError, TimeoutError):
                    body = b""
                raise client.status_error(resp.status, body, what=what, ns=ns)
            buffer = bytearray()
            try:
                async for chunk in resp.content.iter_any():
                    # Search only the new bytes: a big object arrives in many chunks.
                    newline = chunk.find(b"\n")
                    if newline >= 0:
                        newline += len(buffer)
                    buffer += chunk
                    while newline >= 0:
                        line = bytes(buffer[:newline])
                        del buffer[: newline + 1]
                        newline = buffer.find(b"\n")
                        if line.strip():
                            event = _decode_event(line)
                            if event is not None:
                                yield event
                    if len(buffer) > _WATCH_LINE_LIMIT:
                        raise _StreamDropped("watch event too large")
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _StreamDropped(str(exc)) from None
            if buffer.strip():
                event = _decode_event(bytes(buffer))
                if event is not None:
                    yield event
            return


class _StreamDropped(Exception):
    """A watch stream broke after it was established (internal: the watch resumes)."""


def _decode_event(line: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise _StreamDropped("malformed watch event") from None
    return data if isinstance(data, dict) else None


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return "", ""
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _diff_relist(
    known: dict[tuple[str, str], dict[str, Any]], items: list[dict[str, Any]]
) -> list[WatchEvent]:
    """Events turning the consumer's view (`known`) into the new list; updates `known`."""
    events: list[WatchEvent] = []
    fresh: dict[tuple[str, str], dict[str, Any]] = {}
    for item in items:
        fresh[_key(item)] = item
    for key, old in list(known.items()):
        new = fresh.get(key)
        if new is None or _uid(new) != _uid(old):
            events.append(WatchEvent("DELETED", old))
            del known[key]
    for key, item in fresh.items():
        previous = known.get(key)
        if previous is None:
            events.append(WatchEvent("ADDED", item))
        elif _rv(previous) != _rv(item):
            events.append(WatchEvent("MODIFIED", item))
        known[key] = item
    return events


def _uid(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("uid") or "") if isinstance(meta, dict) else ""


def _rv(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("resourceVersion") or "") if isinstance(meta, dict) else ""
