"""`portfwd mcp`: an MCP server for coding agents, a front end like the CLI and the dashboard.

tools.py holds what each tool does, over the engine API (the daemon's when one runs, else one
in this process) and with the CLI's own validation and messages; server.py puts it on the
official MCP Python SDK (imported only here: `portfwd ls` never loads it). Nothing an agent
passes reaches a shell; forwards listen on loopback unless the user started the server with
`--allow-non-loopback`.
"""
