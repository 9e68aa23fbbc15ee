"""The MCP server: tools.py's tools on the official MCP Python SDK (`pip install
'portfwd[mcp]'`), over stdio.

Argument types are checked by the SDK against each tool's schema; a wrong type, an unknown
forward, a refused address or a failed start is a tool error (`isError`, one line), never a
crash of the server. When the client goes away (stdin closes) the server ends: forwards it ran
in this process stop with it, the daemon's stay.
"""

import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError

from portfwd import version
from portfwd.cli.engines import engine
from portfwd.errors import PortfwdError
from portfwd.mcp.http import bearer_only, serve_http
from portfwd.mcp.tools import Settings, Tools

INSTRUCTIONS = """\
portfwd runs Kubernetes port-forwards. list_services shows what a namespace offers; add_forward
starts a forward (target svc/NAME, pod/NAME, deploy/NAME; ports like ":80" for a free local
port or "8080:80") and answers with the local host and port to connect to once it works.
list_forwards shows every forward with its state; forward_logs says why one failed.
Forwards listen on loopback only."""


def _failed(exc: Exception) -> ToolError:
    if isinstance(exc, KeyError):
        return ToolError(str(exc.args[0]) if exc.args else "no such forward")
    return ToolError(str(exc))


EXPECTED = (PortfwdError, KeyError, ValueError)


@contextlib.contextmanager
def _tool_errors() -> Iterator[None]:
    """What a tool's call may fail with, as the client's one-line tool error."""
    try:
        yield
    except EXPECTED as exc:
        raise _failed(exc) from None


def build(tools: Tools) -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer(name="portfwd", version=version(), instructions=INSTRUCTIONS)

    @server.tool()
    def list_forwards() -> dict[str, Any]:
        """Every forward: name, id, state, ready, host/port/address to connect to, target,
        context, namespace, pod, last error (reason), connections and bytes."""
        return tools.list_forwards()

    @server.tool()
    async def add_forward(
        target: str,
        ports: list[str],
        namespace: str | None = None,
        context: str | None = None,
        name: str | None = None,
        address: str = "127.0.0.1",
        start: bool = True,
        spread: bool = False,
        lazy: bool = False,
    ) -> dict[str, Any]:
        """Add a forward (one per port) and start it, as `portfwd add` does: TARGET is
        svc/NAME, pod/NAME, deploy/NAME, sts/NAME; PORTS are [LOCAL:]REMOTE (":80" picks a
        free local port). Answers with where each listens once it is active; a forward that
        cannot start is not added and the error says why. LAZY: bind now, open the tunnel on
        the first connection, close it when idle (state idle, ready all the same)."""
        with _tool_errors():
            return await tools.add_forward(
                target,
                ports,
                namespace=namespace,
                context=context,
                name=name,
                address=address,
                start=start,
                spread=spread,
                lazy=lazy,
            )

    @server.tool()
    async def start_forward(forward: str) -> dict[str, Any]:
        """Start a stopped forward (by name or id)."""
        with _tool_errors():
            return await tools.start_forward(forward)

    @server.tool()
    async def stop_forward(forward: str) -> dict[str, Any]:
        """Stop a forward (by name or id): its port is closed, it can be started again."""
        with _tool_errors():
            return await tools.stop_forward(forward)

    @server.tool()
    async def remove_forward(forward: str) -> dict[str, Any]:
        """Stop and forget a forward (by name or id)."""
        with _tool_errors():
            return await tools.remove_forward(forward)

    @server.tool()
    def forward_logs(forward: str, lines: int = 100) -> dict[str, Any]:
        """A forward's recent log lines (which pod, which port, reconnects, errors)."""
        with _tool_errors():
            return tools.forward_logs(forward, lines)

    @server.tool()
    async def start_profile(profile: str, groups: list[str] | None = None) -> dict[str, Any]:
        """Start a saved profile's forwards (only its GROUPS when given), as `portfwd up`."""
        with _tool_errors():
            return await tools.start_profile(profile, groups or [])

    @server.tool()
    async def stop_profile(profile: str, groups: list[str] | None = None) -> dict[str, Any]:
        """Stop the forwards of a saved profile (only its GROUPS when given)."""
        with _tool_errors():
            return await tools.stop_profile(profile, groups or [])

    @server.tool()
    async def list_services(
        namespace: str | None = None, context: str | None = None
    ) -> dict[str, Any]:
        """A namespace's Services and their ports (what add_forward can target)."""
        with _tool_errors():
            return await tools.list_services(namespace, context)

    @server.tool()
    async def doctor(context: str | None = None, namespace: str | None = None) -> dict[str, Any]:
        """Check the kubeconfig, credentials, API server, RBAC and local ports; each check
        with its status and, when it failed, what to do."""
        with _tool_errors():
            return await tools.doctor(context, namespace)

    @server.resource("portfwd://profiles", name="profiles", mime_type="application/json")
    def profiles() -> str:
        """The saved profiles: their forwards, groups and namespaces."""
        try:
            return json.dumps(tools.profiles(), indent=2)
        except PortfwdError as exc:
            raise ResourceError(str(exc)) from None

    return server


async def serve(
    settings: Settings, *, here: bool, http: tuple[str, int] | None = None, token: str = ""
) -> None:
    """Serve on stdio until the client closes it; with `http` (a loopback host and port),
    over streamable HTTP with the bearer `token` until interrupted (http.py)."""
    logging.getLogger("mcp").setLevel(logging.WARNING)  # its INFO lines are not the user's
    async with engine(
        client="mcp", here=here, kubeconfig=settings.kubeconfig, ping_interval=30.0, keep=True,
        logs=200,
    ) as used:  # fmt: skip
        tools = Tools(used, settings)
        server = build(tools)
        try:
            if http is None:
                await server.run_stdio_async()
            else:
                host, port = http
                app = server.streamable_http_app(host=host)
                await serve_http(bearer_only(app, token), host, port)
        finally:
            await tools.close()
