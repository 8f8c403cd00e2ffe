"""The EWS double in its own process for the mass-report burst: ``reporters`` mailboxes that all hold
the same message (one Message-ID), and a directory where every 20 reporters share a manager and
every 5 managers a director.

Reads ``{"reporters": [...], "message": "<base64 MIME>"}`` on stdin; prints
``{"url", "username", "password", "items": {upn: item_id}}``; serves until stdin closes.
"""

from __future__ import annotations

import base64
import json
import sys

from addin_service.demo.ews_server import EwsServer


def main() -> None:
    request = json.loads(sys.stdin.readline())
    mime = base64.b64decode(request["message"])
    server = EwsServer().start()
    items = {}
    for index, upn in enumerate(request["reporters"]):
        manager = f"manager{index // 20}@contoso.com"
        director = f"director{index // 100}@contoso.com"
        server.add_person(manager, manager=director)
        server.add_person(director)
        server.add_person(upn, manager=manager)
        items[upn] = server.add_message(upn, mime)
        server.item(items[upn])
    print(json.dumps({"url": server.url, "username": server.username, "password": server.password,
                      "items": items}), flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
