"""An app served by ``addin_service.cli.waitress_server`` on loopback, as ``run`` and ``demo`` serve it.

What waitress itself does (deleting proxy headers, refusing request bodies) is only seen through it:
the werkzeug server in ``tests/fakes/stack.py`` hands everything on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from addin_service.cli import waitress_server


@contextmanager
def served_by_waitress(app: Any) -> Iterator[str]:
    """Serve ``app`` on a free loopback port for the block; yields its base URL."""
    server = waitress_server(app, host="127.0.0.1", port=0, threads=4, ident="addin-service-test")
    closing = threading.Event()

    def serve() -> None:
        try:
            server.run()
        except (OSError, ValueError):
            # Closing the listening socket under the loop's select() can end it with EBADF.
            if not closing.is_set():
                raise

    thread = threading.Thread(target=serve, name="waitress-under-test", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        closing.set()
        server.close()
        thread.join(timeout=10)
