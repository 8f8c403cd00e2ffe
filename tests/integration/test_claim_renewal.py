"""A request's claim on an item is short and kept alive while it runs (``cases/claim_keeper.py``):
a retry that arrives after the first lease has run out still waits for the live request instead of
capturing the same message beside it. Real EWS double, real SQLite, the filing use case itself."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from addin_service.cases.claim_keeper import ClaimKeeper
from addin_service.cases.service import FiledReport, ReportCommand, ReportFiler
from addin_service.demo.ews_faults import Delay
from tests.fakes.stack import running_stack

MIME = b"From: x@fabrikam.example\r\nSubject: s\r\nMessage-ID: <slow@fabrikam.example>\r\n\r\nbody\r\n"
LEASE = 0.4
CAPTURE_SECONDS = 1.5  # more than three leases


def test_a_retry_after_the_first_lease_waits_for_the_live_request(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        container = stack.app.extensions["addin"]
        keeper = ClaimKeeper(container.repository, max_hold_seconds=30, lease_seconds=LEASE, renew_every=0.1)
        filer = ReportFiler(
            container.settings, container.repository, container.evidence, container.mailbox, claims=keeper
        )
        caller = container.authenticate(f"Bearer {stack.token()}")
        item = stack.add_message(MIME)
        command = ReportCommand(item, "ews", None, "other", "", False, False)
        stack.ews.inject(Delay(CAPTURE_SECONDS), operation="GetItem", times=1)
        answers: list[FiledReport] = []

        def report() -> None:
            answers.append(filer.file(caller, command, None))

        first = threading.Thread(target=report)
        first.start()
        time.sleep(3 * LEASE)  # the claim's first lease has run out; the capture is still going on
        report()  # the retry
        first.join()

        assert sorted(a.created for a in answers) == [False, True]
        assert len({a.body["report_id"] for a in answers}) == 1
        assert stack.ews.count("GetItem") == 1
        assert len(list(stack.evidence_root.glob("HR-*/R-*"))) == 1
