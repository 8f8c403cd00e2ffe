"""Filing a report decides who is told: the real service (EWS double, real directory lookups,
SQLite or PostgreSQL) with notifications queued in the filing transaction; no worker runs here."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from addin_service.db import Database
from addin_service.db.models import ReportRow
from addin_service.demo.ews_faults import ServerBusy
from addin_service.notify.cli import start_worker_thread
from addin_service.notify.models import OutboxRow
from addin_service.notify.worker import WITHHELD, WorkerConfig
from tests.fakes.smtp import (
    FALLBACK,
    INTERNAL_AFFAIRS,
    INVESTIGATIONS,
    SECURITY,
    SmtpServer,
    notifying_stack,
)
from tests.fakes.stack import COLLEAGUE, REPORTER, Stack

SUPERVISOR = "morgan@contoso.com"
SKIP_LEVEL = "sam@contoso.com"
NOTE = "He followed me to the car park on Tuesday."
BODY = "I know where you park your car."


def mime(sender: str, message_id: str = "<threat-1@example.net>", *, internal: bool = False) -> bytes:
    auth = (
        "X-MS-Exchange-Organization-AuthAs: Internal\r\n"
        if internal
        else "Authentication-Results: mail.contoso.com; spf=fail smtp.mailfrom=example.net; dmarc=fail\r\n"
    )
    return (
        "Received: from mx.example.net (192.0.2.7) by mail.contoso.com; Tue, 25 Nov 2026 09:00:00 +0000\r\n"
        f"{auth}"
        "Received: from [198.51.100.4] by mx.example.net; Tue, 25 Nov 2026 08:59:58 +0000\r\n"
        f"From: Someone <{sender}>\r\nTo: {REPORTER}\r\nSubject: You will regret this\r\n"
        f"Date: Tue, 25 Nov 2026 09:00:00 +0000\r\nMessage-ID: {message_id}\r\n\r\n{BODY}\r\n"
    ).encode()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def stack(tmp_path: Path, smtp: SmtpServer) -> Iterator[Stack]:
    with notifying_stack(tmp_path, smtp, worker=False) as running:
        running.ews.add_person(REPORTER, "Alex Wilber", manager=SUPERVISOR)
        running.ews.add_person(COLLEAGUE, "Riley Chen", manager=SUPERVISOR)
        running.ews.add_person(SUPERVISOR, "Morgan Lee", manager=SKIP_LEVEL)
        running.ews.add_person(SKIP_LEVEL, "Sam Okafor")
        yield running


def rows(stack: Stack) -> list[OutboxRow]:
    database: Database = stack.app.extensions["addin"].database
    with database.session(write=False) as session:
        return list(session.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def told(stack: Stack) -> dict[str, str]:
    return {row.role: row.recipient for row in rows(stack)}


def report(stack: Stack, sender: str = "dmercer@example.net", upn: str = REPORTER, **body: Any) -> Any:
    item = stack.add_message(mime(sender, **body.pop("mime", {})), mailbox=upn)
    response = stack.report(item, upn=upn, note=NOTE, **body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_an_outside_threat_tells_the_supervisor_investigations_security_and_the_reporter(stack: Stack) -> None:
    answer = report(stack)

    assert told(stack) == {
        "reporter": REPORTER,
        "supervisor": SUPERVISOR,
        "investigations": INVESTIGATIONS,
        "security": SECURITY,
    }
    assert answer["notifications"] == [
        {"role": role, "status": "queued", "urgent": False}
        for role in ("reporter", "supervisor", "investigations", "security")
    ]
    assert "@" not in json.dumps(answer["notifications"])


def test_nobody_is_sent_the_note_and_only_security_gets_the_message(stack: Stack) -> None:
    report(stack)

    for row in rows(stack):
        for text in (row.subject, row.body_text, row.body_html):
            assert NOTE not in text
            assert BODY not in text
            assert "You will regret this" not in text
        assert row.attach_message == (row.role == "security")


def test_a_report_from_the_supervisor_goes_to_the_skip_level_manager_and_internal_affairs(stack: Stack) -> None:
    report(stack, SUPERVISOR, mime={"internal": True})

    assert told(stack) == {
        "reporter": REPORTER,
        "skip-level": SKIP_LEVEL,
        "internal-affairs": INTERNAL_AFFAIRS,
        "security": SECURITY,
    }
    assert SUPERVISOR not in {row.recipient for row in rows(stack)}


def test_a_supervisor_writing_from_an_alias_is_still_recognised(stack: Stack) -> None:
    stack.ews.add_person(SUPERVISOR, "Morgan Lee", manager=SKIP_LEVEL, aliases=["m.lee@contoso.com"])

    report(stack, "m.lee@contoso.com", mime={"internal": True})

    assert SUPERVISOR not in {row.recipient for row in rows(stack)}
    assert told(stack)["skip-level"] == SKIP_LEVEL


def named_sender(message: bytes, sender: str) -> bytes:
    """``message`` with a Sender header naming ``sender`` (sent on their behalf, or forged so)."""
    return message.replace(b"\r\nTo: ", f"\r\nSender: {sender}\r\nTo: ".encode(), 1)


def report_mime(stack: Stack, message: bytes) -> Any:
    response = stack.report(stack.add_message(message), note=NOTE)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def case_path(row: OutboxRow) -> str:
    found = re.search(r"(/cases/[A-Za-z0-9-]+\?access=[A-Za-z0-9_.-]+)", row.body_text)
    assert found is not None
    return found.group(1)


def test_a_supervisor_named_in_one_message_of_a_case_is_not_told_of_its_next_message(stack: Stack) -> None:
    """The outsider writes on the supervisor's behalf once; the next message comes from the outsider
    alone. It joins the same case, which names the supervisor as a sender: they are still not told."""
    first = report_mime(stack, named_sender(mime("dmercer@example.net"), SUPERVISOR))
    second = report_mime(stack, mime("dmercer@example.net", "<threat-2@example.net>"))

    assert second["case_id"] == first["case_id"]
    assert SUPERVISOR not in {row.recipient for row in rows(stack)}
    latest = {row.role: row.recipient for row in rows(stack) if row.report_id == second["report_id"]}
    assert latest["skip-level"] == SKIP_LEVEL and latest["investigations"] == INVESTIGATIONS


def test_a_supervisor_told_before_a_later_message_named_them_can_no_longer_open_the_case(stack: Stack) -> None:
    first = report_mime(stack, mime("dmercer@example.net"))
    [told_first] = [row for row in rows(stack) if row.recipient == SUPERVISOR]
    security = next(row for row in rows(stack) if row.role == "security")
    assert stack.client.get(case_path(told_first)).status_code == 200

    second = report_mime(stack, named_sender(mime("dmercer@example.net", "<threat-2@example.net>"), SUPERVISOR))

    assert second["case_id"] == first["case_id"]
    page = stack.client.get(case_path(told_first))
    assert page.status_code == 404 and b"next manager" not in page.data
    assert stack.client.get(case_path(security)).status_code == 200  # the security team still follows it
    latest = {row.role: row.recipient for row in rows(stack) if row.report_id == second["report_id"]}
    assert latest["skip-level"] == SKIP_LEVEL


def ack_path(row: OutboxRow) -> str:
    found = re.search(r"(/ack/[A-Za-z0-9_.-]+)", row.body_text)
    assert found is not None
    return found.group(1)


def test_a_supervisor_named_after_being_told_can_no_longer_confirm_and_so_stop_the_escalation(
    stack: Stack,
) -> None:
    """Nobody else confirming is what escalates a report to the next level and the security team."""
    first = report_mime(stack, mime("dmercer@example.net"))
    [told_first] = [row for row in rows(stack) if row.recipient == SUPERVISOR]
    assert stack.client.get(ack_path(told_first)).status_code == 200

    report_mime(stack, named_sender(mime("dmercer@example.net", "<threat-2@example.net>"), SUPERVISOR))

    assert stack.client.get(ack_path(told_first)).status_code == 404
    assert stack.client.post(ack_path(told_first)).status_code == 404
    repository = stack.app.extensions["addin"].repository
    assert not [a for a in repository.list_audit(case_id=first["case_id"]) if a.action == "notification.acknowledged"]
    assert [row.acknowledged_at for row in rows(stack) if row.recipient == SUPERVISOR] == [None]


def test_a_supervisor_who_confirmed_before_a_later_message_named_them_no_longer_holds_off_the_escalation(
    stack: Stack,
) -> None:
    """An escalation audit: the supervisor confirmed, a later report named them as the sender, and
    their confirmation went on keeping the next manager up from ever being told."""
    first = report_mime(stack, mime("dmercer@example.net"))
    [told_first] = [row for row in rows(stack) if row.recipient == SUPERVISOR]
    assert stack.client.post(ack_path(told_first)).status_code == 200
    database: Database = stack.app.extensions["addin"].database
    with database.session() as session:  # sent an hour ago, as the worker would have
        session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == told_first.id)
            .values(state="sent", sent_at=datetime.now(UTC) - timedelta(hours=1))
        )
    outbox = stack.app.extensions["addin"].notifications.outbox
    assert outbox.due_escalations(60) == []

    report_mime(stack, named_sender(mime("dmercer@example.net", "<threat-2@example.net>"), SUPERVISOR))

    [due] = outbox.due_escalations(60)
    assert due.report_id == first["report_id"] and SUPERVISOR not in due.targets
    assert [row.acknowledged_at for row in rows(stack) if row.recipient == SUPERVISOR] == [None]
    repository = stack.app.extensions["addin"].repository
    audit = repository.list_audit(case_id=first["case_id"])
    [withdrawn] = [a for a in audit if a.action == "acknowledgement.withdrawn"]
    assert withdrawn.details["recipient"] == SUPERVISOR


def test_a_notification_still_queued_when_a_report_names_its_recipient_is_withheld(
    stack: Stack, smtp: SmtpServer
) -> None:
    """The outbox may hold it for a while (a backlog, retries, Exchange away): the worker checks again."""
    report_mime(stack, mime("dmercer@example.net"))
    report_mime(stack, named_sender(mime("dmercer@example.net", "<threat-2@example.net>"), SUPERVISOR))
    queued = len(rows(stack))
    notifications = stack.app.extensions["addin"].notifications

    stop = start_worker_thread(notifications, config=WorkerConfig(poll_interval=0.05))
    try:
        received = smtp.wait_for(queued - 1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(row.state in ("queued", "sending") for row in rows(stack)):
            time.sleep(0.05)
    finally:
        stop()

    assert SUPERVISOR not in {to for message in received for to in message.rcpt_tos}
    assert len(smtp.received) == queued - 1
    [withheld] = [row for row in rows(stack) if row.recipient == SUPERVISOR]
    assert withheld.state == "dead" and withheld.last_error == WITHHELD


def test_a_mailbox_written_into_a_later_display_name_is_neither_withheld_nor_skipped(
    stack: Stack, smtp: SmtpServer
) -> None:
    """A routing audit: an outsider named the mailboxes in a display name, and a later report of the
    campaign withheld the security team's copy already queued for the first report."""
    report_mime(stack, mime("dmercer@example.net"))
    forged = mime("dmercer@example.net").replace(
        b"From: Someone <", f'From: "{SECURITY} {INVESTIGATIONS}" <'.encode(), 1
    )
    report_mime(stack, forged)
    queued = len(rows(stack))
    notifications = stack.app.extensions["addin"].notifications

    stop = start_worker_thread(notifications, config=WorkerConfig(poll_interval=0.05))
    try:
        received = smtp.wait_for(queued)
    finally:
        stop()

    recipients = [to for message in received for to in message.rcpt_tos]
    assert recipients.count(SECURITY) == 1 and INVESTIGATIONS in recipients
    assert not [row for row in rows(stack) if row.last_error == WITHHELD]


def test_the_report_records_the_origin_in_the_evidence(stack: Stack) -> None:
    answer = report(stack)

    metadata = json.loads(
        (stack.evidence_root / answer["case_id"] / answer["report_id"] / "metadata.json").read_text()
    )
    assert metadata["origin"]["verdict"] == "external"
    assert metadata["origin"]["authenticated"] is False
    case = stack.app.extensions["addin"].repository.get_case(answer["case_id"])
    assert case.origin == "external"


@pytest.mark.parametrize(("configured", "verdict"), [("gw.vendor.net", "spoofed-internal"), ("", "internal")])
def test_a_configured_gateway_s_authentication_results_decide_the_verdict(
    tmp_path: Path, smtp: SmtpServer, configured: str, verdict: str
) -> None:
    message = (
        "Received: from gw.vendor.net (192.0.2.9) by mail.contoso.com; Tue, 25 Nov 2026 09:00:01 +0000\r\n"
        "Authentication-Results: gw.vendor.net; dmarc=fail header.from=contoso.com\r\n"
        "Received: from [198.51.100.4] by gw.vendor.net; Tue, 25 Nov 2026 09:00:00 +0000\r\n"
        f"From: The Boss <{SUPERVISOR}>\r\nTo: {REPORTER}\r\nSubject: Do as I say\r\n"
        f"Message-ID: <gateway@contoso.com>\r\n\r\n{BODY}\r\n"
    ).encode()
    with notifying_stack(tmp_path, smtp, worker=False, ADDIN_TRUSTED_AUTHSERV_IDS=configured) as stack:
        response = stack.report(stack.add_message(message, mailbox=REPORTER), upn=REPORTER)
        assert response.status_code == 201, response.get_json()
        answer = response.get_json()

        metadata = json.loads(
            (stack.evidence_root / answer["case_id"] / answer["report_id"] / "metadata.json").read_text()
        )
        assert metadata["origin"]["verdict"] == verdict


def test_the_audit_entry_holds_the_routing_decisions_but_never_the_note(stack: Stack) -> None:
    answer = report(stack)

    [entry] = stack.app.extensions["addin"].repository.list_audit(report_id=answer["report_id"])
    routing = entry.details["routing"]
    assert routing["supervisor_source"] == "directory"
    assert entry.details["origin"]["reasons"] and entry.details["origin"]["verdict"] == "external"
    assert any(SUPERVISOR in decision for decision in routing["decisions"])
    assert {q["role"] for q in routing["queued"]} == {"reporter", "supervisor", "investigations", "security"}
    assert NOTE not in json.dumps(entry.details) and BODY not in json.dumps(entry.details)


def test_a_directory_that_is_down_falls_back_to_the_mapping_file(tmp_path: Path, smtp: SmtpServer) -> None:
    mapping = tmp_path / "supervisors.csv"
    mapping.write_text(f"reporter,supervisor\n{REPORTER},mapped.boss@contoso.com\n")
    with notifying_stack(tmp_path, smtp, worker=False, ADDIN_SUPERVISOR_MAP=str(mapping)) as stack:
        stack.ews.inject(ServerBusy(back_off_ms=50), operation="ResolveNames", times=None)

        answer = report(stack)

        assert told(stack)["supervisor"] == "mapped.boss@contoso.com"
        [entry] = stack.app.extensions["addin"].repository.list_audit(report_id=answer["report_id"])
        assert entry.details["routing"]["supervisor_source"] == "map"
        assert entry.details["routing"]["directory_available"] is False
        assert "could not be asked" in " ".join(entry.details["routing"]["directory_decisions"])


def test_nobody_known_anywhere_tells_the_fallback_mailbox(stack: Stack) -> None:
    stack.ews.add_mailbox("new.starter@contoso.com")

    report(stack, upn="new.starter@contoso.com")

    assert told(stack)["fallback"] == FALLBACK
    assert "supervisor" not in told(stack)


def test_feeling_unsafe_makes_every_notification_urgent(stack: Stack) -> None:
    answer = report(stack, feels_unsafe=True)

    assert all(n["urgent"] for n in answer["notifications"])
    assert all(row.urgent and row.subject.startswith("[URGENT] ") for row in rows(stack))


def test_the_same_message_from_two_reporters_is_one_campaign_case_and_security_is_told_once(stack: Stack) -> None:
    first = report(stack)
    second = report(stack, upn=COLLEAGUE)

    assert second["case_id"] == first["case_id"]
    assert second["report_id"] != first["report_id"]
    recipients = [row.recipient for row in rows(stack)]
    assert recipients.count(SECURITY) == 1 and recipients.count(INVESTIGATIONS) == 1
    assert recipients.count(SUPERVISOR) == 2  # each reporter's supervisor hears of their own report
    assert {n["role"] for n in second["notifications"]} == {"reporter", "supervisor"}
    assert len(stack.app.extensions["addin"].repository.list_reports(first["case_id"])) == 2
    receipt = next(row for row in rows(stack) if row.recipient == COLLEAGUE)
    assert "The security team" in receipt.body_text and "Office of Investigations" in receipt.body_text


def test_a_later_reporter_who_feels_unsafe_reaches_the_campaign_s_investigators_urgently_once(stack: Stack) -> None:
    report(stack)
    report(stack, upn=COLLEAGUE, feels_unsafe=True)
    stack.ews.add_person("third@contoso.com", "Third Person", manager=SUPERVISOR)
    report(stack, upn="third@contoso.com", feels_unsafe=True)

    told = [(row.recipient, row.urgent) for row in rows(stack) if row.recipient in (SECURITY, INVESTIGATIONS)]
    assert sorted(told) == sorted((who, urgent) for who in (SECURITY, INVESTIGATIONS) for urgent in (False, True))


def test_a_different_message_with_the_same_message_id_is_still_filed_as_its_own_evidence(stack: Stack) -> None:
    first = report(stack)
    forged = report(stack, "someone.else@example.org")  # same Message-ID, different message

    assert forged["report_id"] != first["report_id"]
    assert forged["sha256"] != first["sha256"]
    assert forged["case_id"] == first["case_id"]


def test_a_retry_of_the_same_report_queues_nothing_more(stack: Stack) -> None:
    item = stack.add_message(mime("dmercer@example.net"))
    assert stack.report(item, key="k-1").status_code == 201
    count = len(rows(stack))

    assert stack.report(item, key="k-1").status_code == 200
    assert len(rows(stack)) == count


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_stack(request: pytest.FixtureRequest, tmp_path: Path, smtp: SmtpServer) -> Iterator[Stack]:
    env = {}
    if request.param == "postgres":
        request.getfixturevalue("postgres_database")  # emptied tables
        env["ADDIN_DATABASE_URL"] = request.getfixturevalue("migrated_postgres_url")
    with notifying_stack(tmp_path, smtp, worker=False, **env) as running:
        yield running


def test_concurrent_first_reports_of_one_message_share_one_case(any_stack: Stack) -> None:
    stack = any_stack
    reporters = [f"person{index}@contoso.com" for index in range(6)]
    items = {}
    for upn in reporters:
        stack.ews.add_mailbox(upn)
        items[upn] = stack.add_message(mime("dmercer@example.net", "<burst@example.net>"), mailbox=upn)
    start = threading.Barrier(len(reporters))
    answers: list[Any] = []

    def file(upn: str) -> None:
        client = stack.app.test_client()
        headers = stack.auth(upn)
        start.wait()
        answers.append(client.post("/api/v1/reports", json={"item_id": items[upn], "category": "other"},
                                   headers=headers))

    threads = [threading.Thread(target=file, args=(upn,)) for upn in reporters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [a.status_code for a in answers] == [201] * len(reporters)
    assert len({a.get_json()["case_id"] for a in answers}) == 1
    assert [row.recipient for row in rows(stack)].count(SECURITY) == 1
    stored = {a.get_json()["report_id"]: a.get_json() for a in answers}
    database: Database = stack.app.extensions["addin"].database
    with database.session(write=False) as session:
        for report_row in session.scalars(select(ReportRow)):
            # What a retry would replay is what was answered, the security team's copy included or not.
            assert json.loads(report_row.response_json)["notifications"] == stored[report_row.id]["notifications"]


class _SealTogether:
    """An evidence store whose packages seal only once ``parties`` reports are ready to seal: so every
    report has chosen its case before any is committed (the narrowest race for a campaign case)."""

    def __init__(self, inner: Any, parties: int) -> None:
        self._inner = inner
        self._barrier = threading.Barrier(parties, timeout=10)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def open_package(self, report_id: str, max_message_bytes: int) -> Any:
        package = self._inner.open_package(report_id, max_message_bytes)
        barrier = self._barrier
        original = package.seal

        def seal(*args: Any, **kwargs: Any) -> Any:
            barrier.wait()
            return original(*args, **kwargs)

        package.seal = seal
        return package


def test_first_reports_that_both_open_the_campaign_case_end_in_it_together(any_stack: Stack) -> None:
    stack = any_stack
    container = stack.app.extensions["addin"]
    container.filer._evidence = _SealTogether(container.evidence, 2)
    items = {}
    for upn in (REPORTER, COLLEAGUE):
        items[upn] = stack.add_message(mime("dmercer@example.net", "<race@example.net>"), mailbox=upn)
    answers: list[Any] = []

    def file(upn: str) -> None:
        answers.append(stack.app.test_client().post(
            "/api/v1/reports", json={"item_id": items[upn], "category": "other"}, headers=stack.auth(upn)
        ))

    threads = [threading.Thread(target=file, args=(upn,)) for upn in (REPORTER, COLLEAGUE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [a.status_code for a in answers] == [201, 201]
    [case_id] = {a.get_json()["case_id"] for a in answers}
    assert len(container.repository.list_reports(case_id)) == 2
    assert [row.recipient for row in rows(stack)].count(SECURITY) == 1


def test_a_related_message_is_filed_without_telling_anyone_again(stack: Stack) -> None:
    from addin_service.auth.caller import Caller
    from addin_service.cases.service import ReportCommand

    container = stack.app.extensions["addin"]
    item = stack.add_message(mime("dmercer@example.net", "<earlier@example.net>"))
    caller = Caller(upn=REPORTER, object_id="oid", tenant_id="tid", name="Alex", scopes=("access_as_user",),
                    token="not-used")
    command = ReportCommand(item_id=item, id_format="ews", mailbox=None, category="other", note="",
                            feels_unsafe=False, include_related=False)

    filed = container.filer.file(caller, command, None, notify=False)

    assert filed.created and filed.body["notifications"] == []
    assert rows(stack) == []
    [entry] = container.repository.list_audit(report_id=filed.body["report_id"])
    assert entry.details["routing"]["notified"] is False


def test_the_directory_is_asked_while_the_message_is_still_being_captured(stack: Stack) -> None:
    from addin_service.demo.ews_faults import Delay

    item = stack.add_message(mime("dmercer@example.net"))
    stack.ews.inject(Delay(1.5), operation="GetItem")
    answers: list[Any] = []
    filing = threading.Thread(target=lambda: answers.append(stack.report(item, note=NOTE)))
    filing.start()
    asked = threading.Event()
    for _ in range(100):  # up to 1 s, while GetItem is held back for 1.5 s
        if stack.ews.count("ResolveNames"):
            asked.set()
            break
        threading.Event().wait(0.01)
    still_capturing = filing.is_alive()
    filing.join(timeout=60)

    assert asked.is_set() and still_capturing
    assert answers[0].status_code == 201
    assert told(stack)["supervisor"] == SUPERVISOR


def test_a_sender_in_the_security_team_is_never_told_through_the_security_mailbox(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    analyst = "analyst@contoso.com"
    with notifying_stack(tmp_path, smtp, worker=False, ADDIN_SECURITY_TEAM=f"someone@contoso.com, {analyst}") as stack:
        stack.ews.add_person(REPORTER, "Alex Wilber", manager=SUPERVISOR)

        report(stack, analyst, mime={"internal": True})

        recipients = told(stack)
        assert SECURITY not in recipients.values()
        assert recipients["fallback"] == FALLBACK
        supervisor_row = next(row for row in rows(stack) if row.role == "supervisor")
        assert SECURITY not in (supervisor_row.escalate_to or "")


def many_from(*addresses: str) -> bytes:
    """A message whose From header lists several addresses (the last one the one that matters)."""
    listed = ", ".join(addresses)
    return (
        "Received: from mail.contoso.com (10.0.0.5) by mail.contoso.com; Tue, 25 Nov 2026 09:00:00 +0000\r\n"
        "X-MS-Exchange-Organization-AuthAs: Internal\r\n"
        f"From: {listed}\r\nTo: {REPORTER}\r\nSubject: Hello\r\n"
        "Date: Tue, 25 Nov 2026 09:00:00 +0000\r\nMessage-ID: <many-1@contoso.com>\r\n\r\nhi\r\n"
    ).encode()


def test_a_mapped_supervisor_writing_from_an_alias_behind_other_senders_is_never_told(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    mapping = tmp_path / "supervisors.csv"
    mapping.write_text(f"reporter,supervisor\n{REPORTER},{SUPERVISOR}\n")
    with notifying_stack(tmp_path, smtp, worker=False, ADDIN_SUPERVISOR_MAP=str(mapping)) as stack:
        stack.ews.add_person(REPORTER, "Alex Wilber")  # no manager in the directory: the map names Morgan
        stack.ews.add_person(SUPERVISOR, "Morgan Lee", aliases=["m.lee@contoso.com"])
        decoys = [f"a{n}@contoso.com" for n in range(1, 4)]
        item = stack.add_message(many_from(*decoys, "m.lee@contoso.com"))

        assert stack.report(item, note=NOTE).status_code == 201

        assert SUPERVISOR not in {row.recipient for row in rows(stack)}
        assert told(stack)["fallback"] == FALLBACK  # nobody above Morgan is known


def test_a_security_team_member_writing_from_an_alias_behind_other_senders_is_recognised(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    with notifying_stack(tmp_path, smtp, worker=False, ADDIN_SECURITY_TEAM="jsmith@contoso.com") as stack:
        stack.ews.add_person(REPORTER, "Alex Wilber", manager=SUPERVISOR)
        stack.ews.add_person(SUPERVISOR, "Morgan Lee")
        stack.ews.add_person("jsmith@contoso.com", "J Smith", aliases=["j.smith@contoso.com"])
        decoys = [f"a{n}@example.net" for n in range(1, 4)]
        item = stack.add_message(many_from(*decoys, "j.smith@contoso.com"))

        assert stack.report(item, note=NOTE).status_code == 201

        recipients = told(stack)
        assert SECURITY not in recipients.values()
        assert recipients["fallback"] == FALLBACK
