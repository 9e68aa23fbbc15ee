"""The per-user background engine: a Manager and its Session behind a unix socket.

`server.py` serves the engine API (`protocol.py`) to clients of the same user;
`client.py` is the other end (`RemoteEngine`, an `EngineAPI`); `service.py` runs, detaches,
stops and reports on the daemon; `units.py` installs it as a systemd user unit or a launchd
agent. Layering: the daemon sits on the engine and the store, below the front ends.
"""
