"""The operator's view: `outbox list`, `outbox retry`, and the embedded worker thread."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

from addin_service.db import Database, ReportRepository
from addin_service.notify.backoff import Backoff
from addin_service.notify.bootstrap import build_notifications
from addin_service.notify.cli import outbox_cli, start_worker_thread, worker_command
from addin_service.notify.compose import NewNotification, dedupe_key
from addin_service.notify.outbox import Outbox
from tests.fakes.db import make_case, make_report
from tests.fakes.evidence import InMemoryEvidenceStore
from tests.fakes.notify_settings import notify_settings


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'addin.db'}"


@pytest.fixture
def outbox(database_url: str) -> Iterator[Outbox]:
    database = Database(database_url)
    database.upgrade()
    yield Outbox(database)
    database.dispose()


@pytest.fixture
def runner(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    for name in [n for n in os.environ if n.startswith("ADDIN_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ADDIN_DATABASE_URL", database_url)
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def queue(outbox: Outbox, *recipients: str) -> str:
    report = make_report()
    case = make_case()
    notifications = [
        NewNotification(
            role="supervisor", template="supervisor", recipient=to, subject="s", text="t", html="h", urgent=False,
            attach_message=False, ack_required=False, message_id=f"<m{i}@contoso.com>",
            dedupe_key=dedupe_key(report.id, to),
        )
        for i, to in enumerate(recipients)
    ]

    def write(session: Session) -> None:
        outbox.enqueue(session, case_id=case.id, report_id=report.id, notifications=notifications)

    ReportRepository(outbox.db).file(
        report, case, claim_token=None, idem_key=None, fingerprint=None, audit={}, extra=write
    )
    return case.id


def kill_all(outbox: Outbox, error: str) -> None:
    for row in outbox.claim(100, 60):
        outbox.mark_failed(row, error, permanent=True, backoff=Backoff(), retry_after=None)


def test_outbox_list_shows_states_recipients_and_the_last_error(runner: CliRunner, outbox: Outbox) -> None:
    case_id = queue(outbox, "morgan@contoso.com", "gone@contoso.com")
    kill_all(outbox, "The mail server refused: every recipient was refused (550).")

    everything = runner.invoke(outbox_cli, ["list"])
    dead = runner.invoke(outbox_cli, ["list", "--state", "dead"])
    sent = runner.invoke(outbox_cli, ["list", "--state", "sent"])

    assert everything.exit_code == 0, everything.output
    assert "queued: 0  sending: 0  sent: 0  dead: 2" in everything.output
    assert case_id in dead.output and "gone@contoso.com" in dead.output
    assert "last error: The mail server refused: every recipient was refused (550)." in dead.output
    assert "no notifications in state sent" in sent.output


def test_outbox_list_shows_how_a_sent_notification_went_when_there_is_a_note(
    runner: CliRunner, outbox: Outbox
) -> None:
    queue(outbox, "security@contoso.com", "morgan@contoso.com")
    with_note, plain = outbox.claim(100, 60)
    outbox.mark_sent(with_note, "Sent without the attached message, which was refused for its size: 552.")
    outbox.mark_sent(plain)

    sent = runner.invoke(outbox_cli, ["list", "--state", "sent"])

    assert sent.exit_code == 0, sent.output
    assert sent.output.count("note: ") == 1
    assert "note: Sent without the attached message, which was refused for its size: 552." in sent.output
    assert "last error" not in sent.output


def test_outbox_retry_queues_one_or_every_dead_notification(runner: CliRunner, outbox: Outbox) -> None:
    queue(outbox, "a@contoso.com", "b@contoso.com", "c@contoso.com")
    kill_all(outbox, "550")
    first_id = outbox.entries("dead")[-1].id

    one = runner.invoke(outbox_cli, ["retry", str(first_id)])
    rest = runner.invoke(outbox_cli, ["retry", "--all-dead"])

    assert one.exit_code == 0 and f"notification {first_id} queued again" in one.output
    assert "queued 2 dead notification(s) again" in rest.output
    assert outbox.counts()["queued"] == 3


def test_outbox_retry_refuses_what_it_cannot_do(runner: CliRunner, outbox: Outbox) -> None:
    queue(outbox, "a@contoso.com")
    row = outbox.claim(1, 60)[0]
    outbox.mark_sent(row)

    assert runner.invoke(outbox_cli, ["retry"]).exit_code == 2
    assert runner.invoke(outbox_cli, ["retry", "1", "--all-dead"]).exit_code == 2
    sent = runner.invoke(outbox_cli, ["retry", str(row.id)])
    missing = runner.invoke(outbox_cli, ["retry", "999"])
    assert sent.exit_code == 1 and "is sent" in sent.output
    assert missing.exit_code == 1 and "no notification 999" in missing.output


def test_the_worker_command_explains_its_options() -> None:
    result = CliRunner().invoke(worker_command, ["--help"])

    assert result.exit_code == 0
    for option in ("--threads", "--batch", "--lease", "--poll", "--max-attempts"):
        assert option in result.output


def test_the_worker_command_stops_on_a_configuration_error(runner: CliRunner) -> None:
    result = runner.invoke(worker_command, [])

    assert result.exit_code == 2
    assert "configuration error: ADDIN_" in result.output


def test_without_a_sender_no_worker_thread_starts_and_reports_stay_queued(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    settings = notify_settings(ADDIN_NOTIFY_FROM="")  # empty: the default, no sender
    assert settings.notify_from is None
    notifications = build_notifications(settings, outbox.db, InMemoryEvidenceStore())

    with caplog.at_level(logging.ERROR, logger="addin_service.notify.cli"):
        stop = start_worker_thread(notifications)
    stop()

    assert notifications.sender is None
    assert "no outbox worker started" in caplog.text and "ADDIN_NOTIFY_FROM" in caplog.text
