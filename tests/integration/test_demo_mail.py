"""The newcomer reads what the demo sent: ``start_demo``'s EWS mailbox, the real worker sending
through it, and ``/demo/mail`` showing each notification as its recipient would get it."""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import urlsplit

from addin_service.demo.runner import start_demo
from addin_service.notify.cli import start_worker_thread


def test_the_notifications_of_a_demo_report_can_be_read_and_their_case_link_followed(tmp_path: Path) -> None:
    handle = start_demo(tmp_path / "demo")
    stop_worker = start_worker_thread(handle.app.extensions["addin"])
    try:
        backend = handle.app.extensions["addin_demo"]
        client = handle.app.test_client()
        message = next(m for m in backend.messages() if m.subject == "You were warned")
        filed = client.post(
            "/api/v1/reports",
            json={"item_id": message.item_id, "category": "threat-or-violence"},
            headers={"Authorization": f"Bearer {backend.token_for(backend.user)}"},
        )
        assert filed.status_code == 201
        case_id = filed.get_json()["case_id"]
        deadline = time.monotonic() + 20
        while len(backend.sent_mail()) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)

        listing = client.get("/demo/mail").get_data(as_text=True)
        sent = backend.sent_mail()
        assert {to for mail in sent for to in mail.to} >= {backend.user, "security@contoso.com"}
        assert all(case_id in mail.subject for mail in sent) and case_id in listing
        receipt = next(i for i, mail in enumerate(sent) if backend.user in mail.to)
        body = client.get(f"/demo/mail/{receipt}").get_data(as_text=True)
        assert case_id in body
        security = next(mail for mail in sent if "security@contoso.com" in mail.to)
        assert security.attachments  # the untouched message, for the SOC's tools
        [case_link] = set(re.findall(r'href="([^"]*/cases/[^"]*)"', security.html))
        target = urlsplit(case_link.replace("&amp;", "&"))
        case_page = client.get(f"{target.path}?{target.query}")
        assert case_page.status_code == 200 and case_id in case_page.get_data(as_text=True)
    finally:
        stop_worker()
        handle.app.extensions["addin"].close()
        handle.stop()
