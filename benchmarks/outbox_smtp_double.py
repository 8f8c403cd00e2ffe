"""The SMTP double (aiosmtpd) in its own process, so it does not share a GIL with the workers.

Prints ``{"port": N}``; then answers each ``count`` line on stdin with
``{"received": n, "distinct": d}`` (distinct Message-IDs); exits when stdin closes.
"""

from __future__ import annotations

import json
import sys

from tests.fakes.smtp import SmtpServer


def main() -> None:
    with SmtpServer() as smtp:
        print(json.dumps({"port": smtp.port}), flush=True)
        for line in sys.stdin:
            if line.strip() == "count":
                received = smtp.received
                ids = {r.message_id for r in received}
                print(json.dumps({"received": len(received), "distinct": len(ids)}), flush=True)


if __name__ == "__main__":
    main()
