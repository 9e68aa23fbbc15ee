"""`portfwd mcp --http 127.0.0.1:PORT`: the same server over streamable HTTP, on loopback only,
for agent clients that cannot spawn a process.

Every request must carry `Authorization: Bearer TOKEN`, TOKEN being $PORTFWD_MCP_TOKEN as the
server was started (the user puts the same in the client's config); without it the server
does not start. Other users of the machine can reach a loopback port, so the token is what
keeps them out; it is compared in constant time and never printed. The SDK's DNS-rebinding
protection (Host and Origin must be loopback) stays on.
"""

import hmac
import ipaddress
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

from portfwd.errors import InputError
from portfwd.kube.targets import printable

TOKEN_ENV = "PORTFWD_MCP_TOKEN"
MIN_TOKEN = 16  # characters: a guessable token is no lock

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]


def parse_listen(text: str) -> tuple[str, int]:
    """`127.0.0.1:8765`, `[::1]:8765`: a loopback address and a port (0 picks one)."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    try:
        number = int(port)
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        number, loopback = -1, False
    if not sep or not loopback or not 0 <= number <= 65535:
        raise InputError(
            f"--http {printable(text)}: expected a loopback HOST:PORT such as 127.0.0.1:8765 "
            "(the MCP server is not served beyond this machine)"
        )
    return host, number


def token_from(environ: MutableMapping[str, str]) -> str:
    token = environ.get(TOKEN_ENV, "")
    if len(token) < MIN_TOKEN:
        raise InputError(
            f"--http needs a token of at least {MIN_TOKEN} characters in ${TOKEN_ENV} (e.g. "
            f"export {TOKEN_ENV}=$(openssl rand -hex 24)); clients send it as "
            "'Authorization: Bearer TOKEN'"
        )
    return token


def bearer_only(app: ASGI, token: str) -> ASGI:
    """`app`, answering 401 to an HTTP request without the token."""
    expected = f"Bearer {token}".encode()

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, expected):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"text/plain"),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": b"a bearer token is needed\n"})
                return
        await app(scope, receive, send)

    return guarded


async def serve_http(app: ASGI, host: str, port: int) -> None:
    """Serve until interrupted; says where on stderr once listening (port 0: the chosen one)."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))

    async def started() -> None:
        sockets = [s for srv in server.servers for s in srv.sockets]
        bound = sockets[0].getsockname()[1] if sockets else port
        where = f"[{host}]" if ":" in host else host
        print(f"portfwd mcp: serving on http://{where}:{bound}/mcp", file=sys.stderr, flush=True)

    config_startup = server.startup

    async def startup(sockets: Any = None) -> None:
        await config_startup(sockets=sockets)
        await started()

    server.startup = startup  # type: ignore[method-assign]
    await server.serve()
