"""POST /api/v1/reports → outbox → worker → a real SMTP server: what each person receives, the
acknowledgement page, escalation, and the outbox on /metrics."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from addin_service.demo.ews_seed import sample_messages
from tests.fakes.smtp import INVESTIGATIONS, SECURITY, Received, SmtpServer, notifying_stack, raw_attachment
from tests.fakes.stack import REPORTER, Stack

SUPERVISOR = "morgan@contoso.com"
SKIP_LEVEL = "sam@contoso.com"
NOTE = "He waited outside my flat again."
THREAT = sample_messages()["01-external-threat"]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def people(stack: Stack) -> None:
    stack.ews.add_person(REPORTER, "Alex Wilber", manager=SUPERVISOR)
    stack.ews.add_person(SUPERVISOR, "Morgan Lee", manager=SKIP_LEVEL)
    stack.ews.add_person(SKIP_LEVEL, "Sam Okafor")


@pytest.fixture
def stack(tmp_path: Path, smtp: SmtpServer) -> Iterator[Stack]:
    with notifying_stack(tmp_path, smtp) as running:
        people(running)
        yield running


def by_recipient(received: list[Received]) -> dict[str, Received]:
    found: dict[str, Received] = {}
    for message in received:
        [to] = message.rcpt_tos
        assert to not in found, f"{to} received two messages"
        found[to] = message
    return found


def file_threat(stack: Stack, **body: Any) -> dict[str, Any]:
    response = stack.report(stack.add_message(THREAT), note=NOTE, **body)
    assert response.status_code == 201
    answer: dict[str, Any] = response.get_json()
    return answer


def text_of(message: Received) -> str:
    parsed = message.message()
    plain, html = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert plain is not None and html is not None
    return str(plain.get_content()) + str(html.get_content()) + str(parsed["Subject"])


def test_everyone_planned_receives_one_message(stack: Stack, smtp: SmtpServer) -> None:
    answer = file_threat(stack)

    received = by_recipient(smtp.wait_for(len(answer["notifications"])))

    assert set(received) == {REPORTER, SUPERVISOR, INVESTIGATIONS, SECURITY}
    assert all(m.mail_from == "report-harassment@contoso.com" for m in received.values())
    time.sleep(0.2)
    assert len(smtp.received) == 4


def test_the_supervisor_reads_the_case_but_not_the_message_or_the_note(stack: Stack, smtp: SmtpServer) -> None:
    answer = file_threat(stack)

    supervisor = by_recipient(smtp.wait_for(4))[SUPERVISOR]
    text = text_of(supervisor)

    assert answer["case_id"] in text and "Alex Wilber" in text
    assert NOTE not in text
    body = THREAT.split(b"\r\n\r\n", 1)[1].decode()
    assert not any(line.strip() and line.strip() in text for line in body.splitlines() if len(line.strip()) > 20)
    assert list(supervisor.message().iter_attachments()) == []
    assert NOTE.encode() not in supervisor.data


def test_the_security_team_receives_the_untouched_message(stack: Stack, smtp: SmtpServer) -> None:
    answer = file_threat(stack)

    security = by_recipient(smtp.wait_for(4))[SECURITY]

    [attached] = list(security.message().iter_attachments())
    assert attached.get_content_type() == "message/rfc822"
    assert raw_attachment(security.data) == THREAT
    stored = stack.evidence_root / answer["case_id"] / answer["report_id"] / "message.eml"
    assert raw_attachment(security.data) == stored.read_bytes()
    assert NOTE.encode() not in security.data


def test_a_security_email_too_large_for_the_relay_arrives_without_the_copy(tmp_path: Path) -> None:
    """The relay takes 20,000 bytes: every notification fits but the security team's, which carries
    the reported message. It still arrives, saying the copy is not attached and how to get it."""
    big = THREAT.replace(b"\r\n\r\n", b"\r\n\r\n" + b"Look at this.\r\n" * 2_000, 1)
    with SmtpServer(data_size_limit=20_000) as relay, notifying_stack(tmp_path, relay) as stack:
        people(stack)
        response = stack.report(stack.add_message(big), note=NOTE)
        assert response.status_code == 201
        answer = response.get_json()
        security = by_recipient(relay.wait_for(4))[SECURITY]

    assert list(security.message().iter_attachments()) == []
    text = text_of(security)
    assert "is not attached after all" in text
    assert f"addin-service evidence export {answer['case_id']}" in text
    assert answer["case_id"] in str(security.message()["Subject"])


def test_the_investigating_roles_hold_the_ledger_entry_that_verify_checks(stack: Stack, smtp: SmtpServer) -> None:
    answer = file_threat(stack)
    received = by_recipient(smtp.wait_for(4))
    entries = {
        to: set(re.findall(r"verify --expect (\d+:sha256:[0-9a-f]{64})", text_of(message)))
        for to, message in received.items()
    }
    [entry] = entries[SECURITY]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADDIN_")}
    env.update(ADDIN_DATABASE_URL=stack.settings.database_url, ADDIN_EVIDENCE_URL=stack.settings.evidence_url)

    def verify(expect: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(Path(sys.executable).parent / "addin-service"), "evidence", "verify", "--expect",
                               expect], env=env, capture_output=True, text=True, timeout=60)

    kept = verify(entry)
    forged = verify(entry[:-4] + ("0000" if not entry.endswith("0000") else "1111"))

    assert entries[INVESTIGATIONS] == {entry}
    assert entries[SUPERVISOR] == entries[REPORTER] == set()
    assert answer["sha256"] in text_of(received[SECURITY])
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert f"ledger head: {entry}" in kept.stdout
    assert forged.returncode == 1


def test_the_reporter_gets_a_receipt_with_the_guidance(stack: Stack, smtp: SmtpServer) -> None:
    answer = file_threat(stack, feels_unsafe=True)

    receipt = by_recipient(smtp.wait_for(4))[REPORTER]
    text = text_of(receipt)

    assert receipt.message()["Subject"] == f"[URGENT] Your report has been filed (case {answer['case_id']})"
    assert receipt.message()["Importance"] == "high"
    assert "reply once, civilly" in text and "Keep everything" in text
    assert "+1 555 0100" in text and "+1 555 0199" in text


def ack_url(message: Received) -> str:
    found = re.search(r"https://reports\.contoso\.com(/ack/[A-Za-z0-9_.-]+)", text_of(message))
    assert found is not None
    return found.group(1)


def test_opening_the_ack_link_does_not_acknowledge_pressing_the_button_does(stack: Stack, smtp: SmtpServer) -> None:
    answer = file_threat(stack)
    path = ack_url(by_recipient(smtp.wait_for(4))[SUPERVISOR])
    repository = stack.app.extensions["addin"].repository

    page = stack.client.get(path)  # what a link scanner does
    assert page.status_code == 200
    assert b"I have seen this" in page.data and answer["case_id"].encode() in page.data
    assert "form-action 'self'" in page.headers["Content-Security-Policy"]
    assert not [a for a in repository.list_audit(case_id=answer["case_id"]) if a.action == "notification.acknowledged"]

    confirmed = stack.client.post(path)
    again = stack.client.post(path)

    assert confirmed.status_code == 200 and b"Your confirmation was recorded" in confirmed.data
    assert b"Already confirmed" in again.data
    acks = [a for a in repository.list_audit(case_id=answer["case_id"]) if a.action == "notification.acknowledged"]
    assert [a.actor for a in acks] == [SUPERVISOR]


@pytest.mark.parametrize("path", ["/ack/v1.forged.1.x", "/ack/nonsense"])
def test_a_bad_ack_link_is_refused(stack: Stack, path: str) -> None:
    assert stack.client.get(path).status_code == 404
    assert stack.client.post(path).status_code == 404


def test_nobody_acknowledging_escalates_once_to_the_next_level_and_security(tmp_path: Path, smtp: SmtpServer) -> None:
    with notifying_stack(tmp_path, smtp, ADDIN_ESCALATE_AFTER="1") as stack:
        people(stack)
        answer = file_threat(stack)
        smtp.wait_for(4)

        received = smtp.wait_for(6, timeout=15)[4:]
        time.sleep(1.5)  # long enough for a second (wrong) escalation

        escalations = by_recipient(received)
        assert set(escalations) == {SKIP_LEVEL, SECURITY}
        for message in escalations.values():
            assert message.message()["Subject"] == f"Not yet acknowledged: harassment report {answer['case_id']}"
        assert len(smtp.received) == 6
        audit = stack.app.extensions["addin"].repository.list_audit(case_id=answer["case_id"])
        assert [a.action for a in audit].count("case.escalated") == 1


def test_an_acknowledged_report_is_not_escalated(tmp_path: Path, smtp: SmtpServer) -> None:
    with notifying_stack(tmp_path, smtp, ADDIN_ESCALATE_AFTER="1") as stack:
        people(stack)
        file_threat(stack)
        path = ack_url(by_recipient(smtp.wait_for(4))[SUPERVISOR])
        assert stack.client.post(path).status_code == 200

        time.sleep(1.5)

        assert len(smtp.received) == 4


def metric(stack: Stack, line_start: str) -> float:
    body = stack.client.get("/metrics").get_data(as_text=True)
    for line in body.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not on /metrics")


def test_a_notification_that_cannot_be_delivered_shows_as_dead_on_metrics(stack: Stack, smtp: SmtpServer) -> None:
    smtp.refuse("RCPT", "550 5.1.1 Mailbox unavailable", times=1)
    file_threat(stack)
    smtp.wait_for(3)

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (
        metric(stack, 'addin_outbox_messages{state="dead"}') != 1
        or metric(stack, 'addin_outbox_messages{state="sent"}') != 3
    ):
        time.sleep(0.05)  # the server has them; the worker records each a moment later

    [dead] = stack.app.extensions["addin"].notifications.outbox.entries("dead")
    assert metric(stack, 'addin_outbox_messages{state="dead"}') == 1
    assert metric(stack, 'addin_outbox_messages{state="sent"}') == 3
    assert metric(stack, "addin_outbox_up") == 1
    assert metric(stack, f'addin_outbox_dead_total{{role="{dead.role}"}}') == 1
    assert "550" in (dead.last_error or "")


def test_a_temporary_refusal_is_retried_until_it_is_delivered(stack: Stack, smtp: SmtpServer) -> None:
    notifications = stack.app.extensions["addin"].notifications
    smtp.refuse("DATA", "451 4.3.0 Try again later", times=1)
    file_threat(stack)
    smtp.wait_for(3)

    [waiting] = notifications.outbox.entries("queued")
    assert waiting.attempts == 1 and "451" in (waiting.last_error or "")
    assert notifications.outbox.retry(waiting.id) == 1  # what an operator's `outbox retry` does: try now

    assert len(by_recipient(smtp.wait_for(4))) == 4


def case_url(message: Received) -> str:
    found = re.search(r"https://reports\.contoso\.com(/cases/[A-Za-z0-9-]+\?access=[A-Za-z0-9_.-]+)", text_of(message))
    assert found is not None
    return found.group(1)


def test_the_case_link_shows_who_was_told_and_confirmed_but_nothing_confidential(
    stack: Stack, smtp: SmtpServer
) -> None:
    answer = file_threat(stack)
    received = by_recipient(smtp.wait_for(4))
    supervisor_link = case_url(received[SUPERVISOR])

    page = stack.client.get(supervisor_link)
    text = page.get_data(as_text=True)

    assert page.status_code == 200
    assert f"Case {answer['case_id']}" in text
    assert "You were told as: The reporter&#39;s supervisor." in text
    assert "Confirm that I have seen this" in text and "/ack/" in text
    assert "The security team" in text and "Reports in this case</th><td>1" in text
    assert NOTE not in text and "I know where you live" not in text
    for address in (SUPERVISOR, REPORTER, SECURITY, INVESTIGATIONS, "dmercer"):
        assert address not in text
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"

    stack.client.post(ack_url(received[SUPERVISOR]))
    after = stack.client.get(supervisor_link).get_data(as_text=True)
    assert "You confirmed that you have seen it" in after and "Confirm that I have seen this" not in after
    assert "1 of 1" in after

    security_page = stack.client.get(case_url(received[SECURITY])).get_data(as_text=True)
    assert "You were told as: The security team." in security_page
    assert "Confirm that I have seen this" not in security_page


@pytest.mark.parametrize("sample", ["01-external-threat", "06-spoofed-supervisor"])
def test_the_case_page_words_the_senders_origin_as_the_email_did(stack: Stack, smtp: SmtpServer, sample: str
                                                                  ) -> None:
    response = stack.report(stack.add_message(sample_messages()[sample]))
    assert response.status_code == 201
    security_email = by_recipient(smtp.wait_for(4))[SECURITY]

    came_from = re.search(r"Came from: +(.+)", text_of(security_email))
    assert came_from is not None
    page = stack.client.get(case_url(security_email)).get_data(as_text=True)

    assert f"Where the sender is</th><td>{came_from.group(1).strip().capitalize()}</td>" in page


def test_a_case_link_opens_only_its_own_case_and_cannot_acknowledge(stack: Stack, smtp: SmtpServer) -> None:
    first = file_threat(stack)
    link = case_url(by_recipient(smtp.wait_for(4))[SUPERVISOR])
    token = link.split("access=", 1)[1]
    other = stack.report(stack.add_message(sample_messages()["02-colleague-harassment"]), note=NOTE).get_json()
    assert other["case_id"] != first["case_id"]

    assert stack.client.get(f"/cases/{other['case_id']}?access={token}").status_code == 404
    assert stack.client.get(f"/cases/{first['case_id']}").status_code == 404
    assert stack.client.get(f"/cases/{first['case_id']}?access={token[:-2]}xx").status_code == 404
    assert stack.client.get(f"/cases/not-a-case?access={token}").status_code == 404
    assert stack.client.post(f"/ack/{token}").status_code == 404  # a case link is not an ack link
    assert stack.client.get(link).status_code == 200
