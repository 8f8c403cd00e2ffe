"""Run the EWS server double in its own process (so its memory is not the service's).

Reads a JSON request on stdin: {"reporter": ..., "messages": [[size, seed], ...]}; prints one JSON
line {"url", "username", "password", "items": [[size, seed, item_id], ...]}; serves until stdin closes.
"""

from __future__ import annotations

import json
import sys

from addin_service.demo.ews_server import EwsServer
from benchmarks._messages import make_message


def main() -> None:
    request = json.loads(sys.stdin.readline())
    server = EwsServer().start()
    server.add_mailbox(request["reporter"])
    items = []
    for size, seed in request["messages"]:
        mime = make_message(size, seed)
        item_id = server.add_message(request["reporter"], mime)
        server.item(item_id)  # the double caches what it serves on first use; warm it here
        items.append([size, seed, item_id])
    print(
        json.dumps({"url": server.url, "username": server.username, "password": server.password, "items": items}),
        flush=True,
    )
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
