"""Storage pieces that need no database server: keys, UTC timestamps, engine settings."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from addin_service.db import Database, ReportRepository, head_revision, item_key, message_id_key
from addin_service.db.database import MIGRATIONS_DIR, unavailable_reason
from addin_service.db.models import UTCDateTime
from tests.fakes.db import make_case, make_report

# -- keys ----------------------------------------------------------------------------------


def test_an_item_key_is_the_sha256_of_mailbox_nul_item_id() -> None:
    expected = hashlib.sha256(b"alex@contoso.com\0AAMkAGI2/TG93+AAA=").hexdigest()

    assert item_key("alex@contoso.com", "AAMkAGI2/TG93+AAA=") == expected


def test_an_item_key_ignores_the_case_of_the_mailbox_but_not_of_the_id() -> None:
    assert item_key("Alex@Contoso.COM", "AAMk") == item_key("alex@contoso.com", "AAMk")
    assert item_key("alex@contoso.com", "AAMk") != item_key("alex@contoso.com", "aamk")


def test_one_item_id_in_two_mailboxes_has_two_keys() -> None:
    assert item_key("alex@contoso.com", "AAMk") != item_key("shared@contoso.com", "AAMk")


def test_a_message_id_key_ignores_surrounding_whitespace_only() -> None:
    assert message_id_key(" <a@b.example>\r\n") == message_id_key("<a@b.example>")
    assert message_id_key("<A@b.example>") != message_id_key("<a@b.example>")


# -- UTC timestamps ------------------------------------------------------------------------


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().process_bind_param(datetime(2026, 3, 1, 9, 30), postgresql.dialect())


def test_times_are_stored_in_utc() -> None:
    paris = datetime(2026, 3, 1, 10, 30, tzinfo=timezone(timedelta(hours=1)))

    stored = UTCDateTime().process_bind_param(paris, postgresql.dialect())

    assert stored == datetime(2026, 3, 1, 9, 30, tzinfo=UTC) and stored is not None
    assert stored.utcoffset() == timedelta(0)


def test_sqlite_stores_naive_utc_and_reads_back_aware_utc() -> None:
    value = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)

    stored = UTCDateTime().process_bind_param(value, sqlite.dialect())
    read = UTCDateTime().process_result_value(stored, sqlite.dialect())

    assert stored == datetime(2026, 3, 1, 9, 30)
    assert read == value and read is not None and read.tzinfo == UTC


def test_postgres_times_read_back_in_utc() -> None:
    other_zone = datetime(2026, 3, 1, 4, 30, tzinfo=timezone(timedelta(hours=-5)))

    read = UTCDateTime().process_result_value(other_zone, postgresql.dialect())

    assert read is not None and read.tzinfo == UTC and read.hour == 9


# -- engine settings -----------------------------------------------------------------------


def test_postgres_uses_psycopg3_read_committed_with_pre_ping_and_no_parameters_in_errors() -> None:
    database = Database("postgresql://addin@db.internal/addin")
    try:
        engine = database.engine
        assert engine.url.drivername == "postgresql+psycopg"
        assert engine.dialect._on_connect_isolation_level == "READ COMMITTED"
        assert engine.pool._pre_ping is True
        assert engine.hide_parameters is True
    finally:
        database.dispose()


def test_the_migrations_ship_inside_the_package() -> None:
    assert MIGRATIONS_DIR.parent.name == "addin_service"
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "versions" / "0001_initial.py").is_file()
    assert head_revision()  # the newest revision is found in the package


def test_an_in_memory_database_works_for_single_threaded_tests() -> None:
    database = Database("sqlite://")
    try:
        database.upgrade()
        repo = ReportRepository(database)
        report = make_report()
        repo.file(report, make_case(), claim_token=None, idem_key=None, fingerprint=None, audit={})

        assert repo.get_report(report.id) is not None
    finally:
        database.dispose()


def test_an_unavailable_reason_is_the_sqlstate_and_the_servers_primary_message() -> None:
    class Diag:
        message_primary = "terminating connection due to administrator command"

    class AdminShutdown(Exception):
        sqlstate = "57P01"
        diag = Diag()

    assert unavailable_reason(AdminShutdown("long text\nwith a second line")) == (
        "57P01: terminating connection due to administrator command"
    )
    assert unavailable_reason(OSError("disk I/O error\nmore")) == "disk I/O error"
    assert unavailable_reason(OSError("x" * 1000)) == "x" * 300
    assert unavailable_reason(None) == ""
