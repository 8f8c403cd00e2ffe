"""Upgrading a deployment that already holds cases, and the admin commands around an upgrade."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from alembic import command
from click.testing import CliRunner
from sqlalchemy import Table, insert, select, text

from addin_service.cli import cli
from addin_service.db import Database, head_revision
from addin_service.db.database import alembic_config
from addin_service.db.models import AuditRow, CaseRow, CaseSenderRow
from addin_service.notify.models import OutboxRow
from addin_service.notify.outbox import is_named_sender

CASES = cast(Table, CaseRow.__table__)
AUDIT = cast(Table, AuditRow.__table__)
SENDERS = cast(Table, CaseSenderRow.__table__)
OUTBOX = cast(Table, OutboxRow.__table__)
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture
def database(empty_database: Database) -> Database:
    return empty_database


@pytest.fixture
def admin_env(empty_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in [n for n in os.environ if n.startswith("ADDIN_")]:
        monkeypatch.delenv(name)
    return {"ADDIN_DATABASE_URL": empty_url}


def at_revision(database: Database, revision: str) -> None:
    with database.engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


def add_case(database: Database, case_id: str, sender: str | None) -> None:
    with database.engine.begin() as connection:
        connection.execute(
            insert(CASES),
            {"id": case_id, "created_at": NOW, "updated_at": NOW, "status": "open", "reporter": "alex@contoso.com",
             "sender_address": sender, "origin": "external", "urgent": False, "campaign_message_id": None,
             "campaign_key": None},
        )


def add_filed(database: Database, case_id: str, details: Any) -> None:
    """An audit entry as versions before revision 0004 wrote it for a filed report."""
    with database.engine.begin() as connection:
        connection.execute(
            insert(AUDIT),
            {"at": NOW, "actor": "alex@contoso.com", "action": "report.filed", "case_id": case_id,
             "report_id": None, "details": details if isinstance(details, str) else json.dumps(details)},
        )


def add_acknowledged(database: Database, case_id: str, role: str, recipient: str) -> int:
    """A manager's notification, sent and confirmed "I have seen this"; its outbox id."""
    with database.engine.begin() as connection:
        row = connection.execute(
            insert(OUTBOX).returning(OUTBOX.c.id),
            {"created_at": NOW, "updated_at": NOW, "case_id": case_id, "report_id": None, "role": role,
             "template": role, "recipient": recipient, "message_id": f"<{role}.{recipient}@contoso.com>",
             "dedupe_key": f"{case_id}.{role}.{recipient}", "subject": "s", "body_text": "t", "body_html": "h",
             "urgent": False, "attach_message": False, "ack_required": True, "escalate_to": "sam@contoso.com",
             "state": "sent", "attempts": 1, "sent_check": False, "next_attempt_at": NOW, "lease_token": None,
             "sent_at": NOW, "acknowledged_at": NOW, "escalated_at": None, "last_error": None},
        ).one()
    return int(row.id)


def acknowledged(database: Database) -> set[int]:
    with database.engine.connect() as connection:
        return set(connection.execute(select(OUTBOX.c.id).where(OUTBOX.c.acknowledged_at.is_not(None))).scalars())


def routed(*decisions: str) -> dict[str, Any]:
    return {"adapter": "ews", "routing": {"decisions": list(decisions), "conflict_of_interest": True}}


def senders(database: Database) -> set[tuple[str, str]]:
    with database.engine.connect() as connection:
        return {(c, a) for c, a in connection.execute(select(SENDERS.c.case_id, SENDERS.c.address))}


def test_upgrading_fills_in_who_the_cases_filed_before_named(database: Database) -> None:
    """An upgrade audit: a supervisor named as the Sender of a case's message, filed before revision
    0004, was still emailed about the case's next report and could open and confirm it."""
    at_revision(database, "0005")
    add_case(database, "HR-2026-AAAAAAAA", "DMercer@mailbox.example.net")
    add_filed(database, "HR-2026-AAAAAAAA", routed(
        "Claimed sender address(es): dmercer@mailbox.example.net.",
        "The supervisor morgan@contoso.com is told (found in the directory).",
    ))
    add_filed(database, "HR-2026-AAAAAAAA", routed(
        "Claimed sender address(es): dmercer@mailbox.example.net, morgan@contoso.com.",
        "The claimed sender matches the reporter's supervisor (morgan@contoso.com): the supervisor is not told. "
        "The sender's identity was NOT authenticated: the message may have been forged to look as if it came "
        "from them.",
        "Higher manager(s) in the chain also match the claimed sender and are skipped too: sam@contoso.com, "
        "pat@contoso.com.",
        "The next manager up who is not the sender, lee@contoso.com, is told instead.",
    ))
    add_case(database, "HR-2026-BBBBBBBB", "riley@contoso.com")
    add_filed(database, "HR-2026-BBBBBBBB", routed(
        "Claimed sender address(es): riley@contoso.com.",
        "The claimed sender matches a higher manager in the reporter's chain (kim@contoso.com); they are never "
        "told, and the investigators are told as well.",
    ))
    add_filed(database, "HR-2026-BBBBBBBB", {"routing": {"notified": False, "why": "filed as a related message"}})
    add_filed(database, "HR-2026-BBBBBBBB", "not json")
    add_filed(database, "HR-2026-BBBBBBBB", routed('Claimed sender address(es): "doe, john"@contoso.com, X@Y.example.'))
    add_case(database, "HR-2026-CCCCCCCC", None)
    add_filed(database, "HR-2026-CCCCCCCC", routed("The message names no sender address; nobody can be excluded."))
    with database.engine.begin() as connection:  # a row a report wrote at 0005 stays as it is
        connection.execute(insert(SENDERS), {"case_id": "HR-2026-BBBBBBBB", "address": "riley@contoso.com"})
    named_later = add_acknowledged(database, "HR-2026-AAAAAAAA", "supervisor", "Morgan+HR@contoso.com")
    not_named = add_acknowledged(database, "HR-2026-AAAAAAAA", "skip-level", "lee@contoso.com")
    elsewhere = add_acknowledged(database, "HR-2026-CCCCCCCC", "supervisor", "morgan@contoso.com")

    database.upgrade()

    assert senders(database) == {
        ("HR-2026-AAAAAAAA", "dmercer@mailbox.example.net"),
        ("HR-2026-AAAAAAAA", "morgan@contoso.com"),
        ("HR-2026-AAAAAAAA", "sam@contoso.com"),
        ("HR-2026-AAAAAAAA", "pat@contoso.com"),
        ("HR-2026-BBBBBBBB", "riley@contoso.com"),
        ("HR-2026-BBBBBBBB", "kim@contoso.com"),
        ("HR-2026-BBBBBBBB", '"doe, john"@contoso.com'),
        ("HR-2026-BBBBBBBB", "x@y.example"),
    }
    with database.engine.connect() as connection:
        assert is_named_sender(connection, "HR-2026-AAAAAAAA", "supervisor", "Morgan@Contoso.com")
        assert not is_named_sender(connection, "HR-2026-AAAAAAAA", "skip-level", "lee@contoso.com")
        assert not is_named_sender(connection, "HR-2026-BBBBBBBB", "supervisor", "morgan@contoso.com")
    # Morgan's confirmation no longer holds off the escalation of case A; the others stand.
    assert named_later not in acknowledged(database)
    assert acknowledged(database) == {not_named, elsewhere}
    with database.engine.connect() as connection:
        [details] = connection.execute(
            select(AUDIT.c.details).where(AUDIT.c.action == "acknowledgement.withdrawn")
        ).scalars()
    assert json.loads(details)["outbox_id"] == named_later


def test_confirmations_beyond_one_statement_s_worth_are_all_withdrawn(database: Database) -> None:
    """PostgreSQL takes at most 65,535 parameters in a statement: the withdrawal goes in chunks."""
    at_revision(database, "0005")
    add_case(database, "HR-2026-AAAAAAAA", "morgan@contoso.com")
    add_acknowledged(database, "HR-2026-AAAAAAAA", "supervisor", "morgan@contoso.com")
    with database.engine.begin() as connection:
        [template] = connection.execute(select(OUTBOX)).mappings()
        copies = [{**template, "dedupe_key": f"copy-{n}"} for n in range(2500)]
        connection.execute(insert(OUTBOX), [{k: v for k, v in c.items() if k != "id"} for c in copies])

    database.upgrade()

    assert acknowledged(database) == set()


def test_a_schema_newer_than_this_version_is_left_alone(database: Database, admin_env: dict[str, str]) -> None:
    """An upgrade audit rolled a deployment back after a newer version's upgrade: every start on
    SQLite (which upgrades itself) and ``db upgrade`` ended in Alembic's "Can't locate revision"."""
    database.upgrade()
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))

    assert database.upgrade() == "9999"
    result = CliRunner().invoke(cli, ["db", "upgrade"], env=admin_env)

    assert result.exit_code == 0, result.output
    assert f"database is at revision 9999, newer than this version's {head_revision()}: nothing to upgrade" in (
        result.output
    )
    assert database.current_revision() == "9999"


def test_listing_the_outbox_does_not_upgrade_the_database(database: Database, admin_env: dict[str, str]) -> None:
    """An admin looking at the outbox before deciding to upgrade must not upgrade it."""
    at_revision(database, "0003")

    result = CliRunner().invoke(cli, ["outbox", "list"], env=admin_env)

    assert result.exit_code == 0, result.output
    assert "no notifications" in result.output
    assert database.current_revision() == "0003"


def test_listing_the_outbox_of_a_database_without_a_schema_says_what_to_run(
    database: Database, admin_env: dict[str, str]
) -> None:
    database.current_revision()  # the database exists, empty
    result = CliRunner().invoke(cli, ["outbox", "list"], env=admin_env)

    assert result.exit_code == 1
    assert "error: the database has no schema: run 'addin-service db upgrade'" in result.output
    assert "Traceback" not in result.output


@pytest.mark.postgres
def test_db_upgrade_says_why_the_database_cannot_be_used(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It said "cannot be reached right now. Please try again in a moment." for a database that
    does not exist, a wrong port or an unknown role alike."""
    for name in [n for n in os.environ if n.startswith("ADDIN_")]:
        monkeypatch.delenv(name)
    from sqlalchemy.engine import make_url

    missing = make_url(postgres_url).set(database="no_such_database_here").render_as_string(hide_password=False)

    result = CliRunner().invoke(cli, ["db", "upgrade"], env={"ADDIN_DATABASE_URL": missing})

    assert result.exit_code == 1
    assert "error: the case database cannot be used: " in result.output
    assert '"no_such_database_here" does not exist' in result.output


def test_listing_the_outbox_of_an_sqlite_file_that_is_not_there_leaves_none_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("ADDIN_")]:
        monkeypatch.delenv(name)
    missing = tmp_path / "typo.db"

    result = CliRunner().invoke(cli, ["outbox", "list"], env={"ADDIN_DATABASE_URL": f"sqlite:///{missing}"})

    assert result.exit_code == 1
    assert f"error: there is no database at {missing} (ADDIN_DATABASE_URL)" in result.output
    assert not missing.exists()
