"""One log line per bad request to the sandbox, and nothing more.

aiohttp logs a request it cannot parse (a malformed header, a line too long, garbage instead
of HTTP) with a full traceback, and the sandbox answers API requests it rejects (400) without
a word. A sandbox user debugging a client wants one line for each: who, what, why. So:

- :class:`ServerLog` is given to aiohttp as its server logger: an HTTP parse error becomes one
  WARNING line; anything else (a bug in the sandbox) keeps its traceback.
- :func:`bad_request_middleware` logs one WARNING line for every 400 answer, with its message.

Request text is the client's: control characters are escaped and it is shortened.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from portfwd.safetext import escape_controls  # a pure codec, shared with the client

__all__ = ["ServerLog", "bad_request_middleware", "log"]

log = logging.getLogger("portfwd.sandbox.http")

_SHOWN = 200  # characters of a path or message in one line


def _short(text: str) -> str:
    text = escape_controls(" ".join(text.split()))
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


class ServerLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger (`AppRunner(..., logger=ServerLog())`)."""

    def __init__(self) -> None:
        super().__init__(log, {})

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            # "Error handling request from %s" with the peer as its argument.
            peer = args[0] if args else "?"
            self.logger.warning(
                "bad request from %s: %s %s", peer, exc.code, _short(str(exc.message))
            )
            return
        super().log(level, msg, *args, **kwargs)

    def process(
        self, msg: object, kwargs: MutableMapping[str, Any]
    ) -> tuple[object, MutableMapping[str, Any]]:
        return msg, kwargs


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _message(response: web.StreamResponse) -> str:
    body = response.body if isinstance(response, web.Response) else None
    if not isinstance(body, bytes):
        return ""
    try:
        status = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")  # the kubelet's plain-text errors
    message = status.get("message") if isinstance(status, dict) else None
    return message if isinstance(message, str) else ""


@web.middleware
async def bad_request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPBadRequest as exc:
        _log_bad(request, exc.text or exc.reason)
        raise
    except ConnectionResetError:
        # The client went away while its answer was written (a watch or a stream closed
        # as the client shut down): nothing to answer and nothing wrong, where aiohttp
        # would log a traceback. The answer below goes nowhere, quietly.
        return web.Response(status=499)
    if response.status == 400:
        _log_bad(request, _message(response))
    return response


def _log_bad(request: web.Request, message: str) -> None:
    log.warning(
        "bad request from %s: %s %s: 400 %s",
        request.remote or "?",
        request.method,
        _short(request.path_qs),
        _short(message),
    )
