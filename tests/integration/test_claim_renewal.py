"""A request's claim on an item is short and kept alive while it runs (``cases/claim_keeper.py``):
a retry that arrives after the first lease has run out still waits for the live request instead of
capturing the same message beside it. Real EWS double, real SQLite, the filing use case itself."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from addin_service.cases.claim_keeper import ClaimKeeper
from addin_service.cases.service import FiledReport, ReportCommand, ReportFiler
from addin_service.db import Database, ReportRepository
from addin_service.demo.ews_faults import Delay, ServerBusy
from addin_service.errors import DatabaseUnavailable, MailboxUnavailable
from tests.fakes.stack import running_stack

MIME = b"From: x@fabrikam.example\r\nSubject: s\r\nMessage-ID: <slow@fabrikam.example>\r\n\r\nbody\r\n"
LEASE = 1.0  # ten renewals: a busy machine may delay a few without the claim lapsing
CAPTURE_SECONDS = 3.5


def test_a_retry_after_the_first_lease_waits_for_the_live_request(tmp_path: Path) -> None:
    with running_stack(tmp_path, ADDIN_EWS_TIMEOUT="10", ADDIN_EXCHANGE_MAX_WAIT="10") as stack:
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
        time.sleep(2.5 * LEASE)  # the claim's first lease has run out; the capture is still going on
        report()  # the retry
        first.join()

        assert sorted(a.created for a in answers) == [False, True]
        assert len({a.body["report_id"] for a in answers}) == 1
        assert stack.ews.count("GetItem") == 1
        assert len(list(stack.evidence_root.glob("HR-*/R-*"))) == 1


class ReleaseFailsOnce(ReportRepository):
    """The database is away for the moment a failed request gives its claim up."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self.releases = 0

    def release(self, *args: Any, **kwargs: Any) -> None:
        self.releases += 1
        if self.releases == 1:
            raise DatabaseUnavailable("The database is not reachable.", retry_after=5)
        super().release(*args, **kwargs)


def test_a_claim_the_database_would_not_let_go_is_given_up_as_soon_as_it_is_back(tmp_path: Path) -> None:
    """Otherwise the retry would be told for a whole lease that the message is being filed."""
    with running_stack(tmp_path) as stack:
        container = stack.app.extensions["addin"]
        repository = ReleaseFailsOnce(container.database)
        keeper = ClaimKeeper(repository, max_hold_seconds=60, lease_seconds=30, renew_every=10)
        filer = ReportFiler(
            container.settings, repository, container.evidence, container.mailbox, claims=keeper,
            claim_wait_seconds=10,
        )
        caller = container.authenticate(f"Bearer {stack.token()}")
        item = stack.add_message(MIME)
        command = ReportCommand(item, "ews", None, "other", "", False, False)
        stack.ews.inject(ServerBusy(back_off_ms=600_000), operation="GetItem", times=1)

        with pytest.raises(MailboxUnavailable):  # what went wrong, not the failed release
            filer.file(caller, command, "key-1")
        retried = filer.file(caller, command, "key-1")  # waits at most claim_wait_seconds, < the lease

        assert retried.created
        assert repository.releases >= 2
