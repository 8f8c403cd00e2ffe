"""An HTTP/1.1 server on loopback that answers every request with scripted bytes, paced as told.

For what a well-behaved double never does on purpose: a body cut short behind a correct frame, a
server that sends one byte at a time, a compressed body that stops before its end.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from types import TracebackType


class ScriptedHttpServer:
    """Answers each connection with ``pieces``, sleeping ``pause`` seconds before each piece, then
    closes it. ``url`` is where it listens."""

    def __init__(self, pieces: Sequence[bytes], pause: float = 0.0) -> None:
        self._pieces = list(pieces)
        self._pause = pause
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="scripted-http", daemon=True)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/"

    def __enter__(self) -> ScriptedHttpServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._read_request(connection)
                try:
                    for piece in self._pieces:
                        if self._stop.wait(self._pause):
                            return
                        connection.sendall(piece)
                except OSError:
                    pass  # the client gave up: what is being tested

    @staticmethod
    def _read_request(connection: socket.socket) -> None:
        connection.settimeout(5)
        received = b""
        deadline = time.monotonic() + 5
        while b"\r\n\r\n" not in received and time.monotonic() < deadline:
            chunk = connection.recv(65536)
            if not chunk:
                return
            received += chunk


def response_head(*headers: str, status: str = "200 OK") -> bytes:
    """A status line and header block, ready to send before the body."""
    lines = [f"HTTP/1.1 {status}", *headers, "Connection: close", "", ""]
    return "\r\n".join(lines).encode("ascii")
