"""Run the Graph double (lenient tokens) in its own process, seeded with messages of given sizes.

stdin: {"reporter": ..., "messages": [[size, seed], ...]}; stdout: one JSON line
{"graph_url", "items": [[size, seed, ews_id, rest_id], ...]}; serves until stdin closes.
"""

from __future__ import annotations

import json
import sys

from addin_service.demo.graph_server import GraphServer
from benchmarks._messages import make_message


def main() -> None:
    request = json.loads(sys.stdin.readline())
    server = GraphServer(lenient=True).start()
    server.state.add_user(request["reporter"], "Alex Wilber")
    items = []
    for size, seed in request["messages"]:
        message = server.state.add_message(request["reporter"], make_message(size, seed))
        items.append([size, seed, message.ews_id, message.rest_id])
    print(json.dumps({"graph_url": server.graph_url, "items": items}), flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
