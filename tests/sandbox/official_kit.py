"""Driving the official `kubernetes` client's port-forward (synchronous) from tests."""

from __future__ import annotations

import socket
import threading
from typing import Any

STEP = 20.0  # bound for one blocking step in a worker thread, not a performance threshold


def echo_through(pf: Any, port: int, payload: bytes) -> bytes:
    """Send payload on the forward's socket while reading the echo back (blocking, bounded)."""
    sock: socket.socket = pf.socket(port)
    sock.settimeout(STEP)
    sender = threading.Thread(target=sock.sendall, args=(payload,), daemon=True)
    sender.start()
    received = bytearray()
    try:
        while len(received) < len(payload):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    finally:
        sender.join(STEP)
    return bytes(received)
