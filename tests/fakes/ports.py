"""A loopback port for a server a test starts in another process (which must be told its port)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on right now. Another process could take it before the server does;
    on a test machine that window is small enough, and the server then fails loudly."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
