"""Migrations: upgrade is idempotent, safe when processes race, and matches the ORM models."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import Column, MetaData, String, Table, Text, inspect, text

from addin_service.cli import cli
from addin_service.db import Database, ReportRepository, head_revision
from addin_service.db.database import alembic_config
from addin_service.db.models import Base
from addin_service.errors import DatabaseUnavailable

TABLES = set(Base.metadata.tables) | {"alembic_version"}  # every revision's tables, this one's included


def differences(database: Database, metadata: MetaData) -> list[Any]:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def test_a_new_database_reports_no_revision(empty_database: Database) -> None:
    assert empty_database.current_revision() is None


def test_upgrade_creates_every_table_at_the_head_revision(empty_database: Database) -> None:
    empty_database.upgrade()

    assert set(inspect(empty_database.engine).get_table_names()) == TABLES
    assert {"cases", "reports", "idempotency_keys", "item_claims", "audit_log"} <= TABLES
    assert empty_database.current_revision() == head_revision()


def test_upgrading_twice_changes_nothing(empty_database: Database) -> None:
    empty_database.upgrade()
    empty_database.upgrade()

    assert empty_database.current_revision() == head_revision()
    assert differences(empty_database, Base.metadata) == []


def test_the_models_match_the_migrations(empty_database: Database) -> None:
    empty_database.upgrade()

    assert differences(empty_database, Base.metadata) == []


def test_the_comparison_notices_a_model_the_migrations_lack(empty_database: Database) -> None:
    """Guards the test above: a drifted model must show up as a difference."""
    empty_database.upgrade()
    drifted = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(drifted)
    Table("not_in_the_migrations", drifted, Column("id", String(32), primary_key=True))
    drifted.tables["reports"].append_column(Column("subject", String(200)))
    drifted.tables["cases"].c.status.type = Text()

    found = set()
    for diff in differences(empty_database, drifted):
        change = diff[0] if isinstance(diff, list) else diff  # column changes come wrapped in a list
        found.add(change[0])
        if change[0] == "add_table":
            found.add(change[1].name)
        elif change[0] in ("add_column", "modify_type"):
            found.add(f"{change[2]}.{change[3] if change[0] == 'modify_type' else change[3].name}")

    assert found == {
        "add_table", "not_in_the_migrations", "add_column", "reports.subject", "modify_type", "cases.status"
    }


UPGRADE_ON_GO = """
import sys
import alembic.command
from addin_service.db import Database
database = Database(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
database.upgrade()
print(database.current_revision())
database.dispose()
"""


def test_processes_starting_at_once_all_upgrade_cleanly(empty_url: str) -> None:
    """Two service processes start together on an empty database: the lock (advisory on
    PostgreSQL, BEGIN IMMEDIATE on SQLite) makes one migrate and the other find nothing to do."""
    children = [
        subprocess.Popen([sys.executable, "-c", UPGRADE_ON_GO, empty_url], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for child in children:  # every interpreter has imported the package and is waiting
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    results = [child.communicate(timeout=60) for child in children]

    assert [child.returncode for child in children] == [0, 0], [err for _, err in results]
    assert [out.strip() for out, _ in results] == [head_revision()] * 2


def test_downgrading_below_the_first_revision_is_refused(empty_database: Database) -> None:
    empty_database.upgrade()

    with pytest.raises(RuntimeError, match="Restore a database backup"), \
            empty_database.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")

    # Every revision ran in the one transaction that the refusal rolled back.
    assert empty_database.current_revision() == head_revision()
    assert differences(empty_database, Base.metadata) == []


# -- readiness against the schema -----------------------------------------------------------


def schema_reasons(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        getattr(r, "reason", "")
        for r in caplog.records
        if r.getMessage() == "database unavailable" and getattr(r, "error", "") == "schema"
    ]


def test_a_database_never_upgraded_is_not_ready_and_says_what_to_run(
    empty_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """An admin who forgot ``db upgrade`` on PostgreSQL got ok from /readyz, then 500 for every report."""
    with pytest.raises(DatabaseUnavailable):
        empty_database.check()

    [reason] = schema_reasons(caplog)
    assert "run 'addin-service db upgrade'" in reason and head_revision() in reason


def test_a_schema_an_upgrade_behind_is_not_ready_until_it_is_upgraded(
    empty_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    with empty_database.engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0003")

    with pytest.raises(DatabaseUnavailable):
        empty_database.check()
    empty_database.upgrade()
    empty_database.check()

    [reason] = schema_reasons(caplog)
    assert "the schema is at revision 0003" in reason


def test_a_schema_newer_than_this_version_still_serves_it(empty_database: Database) -> None:
    """Revisions only add: a deployment rolled back after an upgrade keeps working."""
    empty_database.upgrade()
    with empty_database.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))

    empty_database.check()


@pytest.mark.postgres
def test_a_missing_table_on_postgresql_is_unavailable_not_a_crash(
    empty_postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL says "relation does not exist" as a programming error, which would be a 500."""
    database = Database(empty_postgres_url)
    try:
        with pytest.raises(DatabaseUnavailable):
            ReportRepository(database).get_report("R-0123456789ABCDEF")
    finally:
        database.dispose()

    [reason] = schema_reasons(caplog)
    assert 'relation "reports" does not exist' in reason and "db upgrade" in reason


def test_db_upgrade_needs_only_the_database_url(empty_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Like ``evidence verify``: an admin upgrading the schema need not set Exchange's variables."""
    for name in [n for n in os.environ if n.startswith("ADDIN_")]:
        monkeypatch.delenv(name)

    result = CliRunner().invoke(cli, ["db", "upgrade"], env={"ADDIN_DATABASE_URL": empty_url})

    assert result.exit_code == 0, result.output
    assert "database is at the latest revision" in result.output
    database = Database(empty_url)
    try:
        assert database.current_revision() == head_revision()
    finally:
        database.dispose()
