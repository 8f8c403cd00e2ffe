"""Database: engine settings per back end, units of work, and 503 when the database is away."""

from __future__ import annotations

import logging
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, event, func, select, text
from sqlalchemy.engine import make_url

from addin_service.db import Database
from addin_service.db.models import AuditRow
from addin_service.errors import DatabaseUnavailable


def closed_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def unreachable_postgres() -> Iterator[Database]:
    database = Database(f"postgresql+psycopg://postgres:s3cret@127.0.0.1:{closed_port()}/test",
                        connect_timeout=2)
    yield database
    database.dispose()


def audit_row(action: str) -> AuditRow:
    return AuditRow(at=datetime.now(UTC), actor="test", action=action, case_id=None, report_id=None,
                    details="{}")


def audit_count(database: Database) -> int:
    with database.session(write=False) as session:
        return int(session.scalar(select(func.count()).select_from(AuditRow)) or 0)


# -- database away -------------------------------------------------------------------------


def test_a_session_against_a_closed_port_raises_database_unavailable(unreachable_postgres: Database) -> None:
    with pytest.raises(DatabaseUnavailable) as raised, unreachable_postgres.session() as session:
        session.execute(text("SELECT 1"))

    assert raised.value.status == 503 and raised.value.retry_after >= 1
    assert "s3cret" not in raised.value.detail and "127.0.0.1" not in raised.value.detail


def test_check_against_a_closed_port_raises_database_unavailable(unreachable_postgres: Database) -> None:
    with pytest.raises(DatabaseUnavailable):
        unreachable_postgres.check()


def test_the_password_is_masked_wherever_the_url_is_shown(unreachable_postgres: Database) -> None:
    assert "s3cret" not in unreachable_postgres.url
    assert "s3cret" not in repr(unreachable_postgres)


def test_the_log_says_why_the_database_is_unavailable_without_the_password(
    unreachable_postgres: Database, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(DatabaseUnavailable):
        unreachable_postgres.check()

    reasons = [getattr(r, "reason", "") for r in caplog.records if r.getMessage() == "database unavailable"]
    assert reasons and "refused" in reasons[0].lower()
    assert "s3cret" not in caplog.text


def test_the_log_tells_a_database_that_does_not_exist_from_a_server_that_is_away(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    database = Database(postgres_url.rsplit("/", 1)[0] + "/no_such_database_here")
    try:
        with pytest.raises(DatabaseUnavailable):
            database.check()
    finally:
        database.dispose()

    reasons = [getattr(r, "reason", "") for r in caplog.records if r.getMessage() == "database unavailable"]
    assert len(reasons) == 1 and 'database "no_such_database_here" does not exist' in reasons[0]


def test_an_sqlite_path_that_cannot_be_opened_is_database_unavailable(tmp_path: Path) -> None:
    (tmp_path / "addin.db").mkdir()  # a directory where the file should be
    database = Database(f"sqlite:///{tmp_path / 'addin.db'}")
    try:
        with pytest.raises(DatabaseUnavailable):
            database.check()
    finally:
        database.dispose()


def test_check_fails_on_a_postgresql_database_that_refuses_writes(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """What a standby promoted away from, or a read-only default, looks like: reads answer, every
    report would be captured and sealed and then fail to be recorded."""
    database = Database(f"{postgres_url}?options=-c%20default_transaction_read_only%3Don")
    try:
        with pytest.raises(DatabaseUnavailable) as raised:
            database.check()
    finally:
        database.dispose()

    assert "read-only" in raised.value.detail
    reasons = [getattr(r, "reason", "") for r in caplog.records if r.getMessage() == "database unavailable"]
    assert reasons == ["transaction_read_only is on"]


def test_a_write_refused_by_a_read_only_postgresql_session_is_unavailable_not_a_crash(
    migrated_postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A standby after a failover answers writes with read_only_sql_transaction, an internal error
    to the driver: every report was a 500."""
    url = make_url(migrated_postgres_url)
    options = f"{url.query.get('options', '')} -c default_transaction_read_only=on".strip()
    database = Database(url.update_query_dict({"options": options}).render_as_string(hide_password=False))
    try:
        with pytest.raises(DatabaseUnavailable) as raised, database.connection() as connection:
            insert_audit(connection, "refused")
    finally:
        database.dispose()

    assert "read-only" in raised.value.detail and raised.value.retry_after == 30
    reasons = [getattr(r, "reason", "") for r in caplog.records if r.getMessage() == "database unavailable"]
    assert reasons and reasons[0].startswith("25006")


@contextmanager
def immutable(path: Path) -> Iterator[None]:
    """``chattr +i``: not even root may open it for writing (unlike a mode of 0444)."""
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not possible here (needs CAP_LINUX_IMMUTABLE and an ext4-like filesystem)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.parametrize("which", ["addin.db", "addin.db-wal"])
def test_check_fails_on_an_sqlite_file_that_cannot_be_opened_for_writing(
    sqlite_database: Database, tmp_path: Path, which: str, caplog: pytest.LogCaptureFixture
) -> None:
    with sqlite_database.connection() as connection:
        insert_audit(connection, "the WAL file exists now")
    sqlite_database.check()
    # The service keeps running with its pooled connections while its files turn unwritable (a
    # remount read-only, chattr): reads still answer.
    with immutable(tmp_path / which), pytest.raises(DatabaseUnavailable) as raised:
        sqlite_database.check()

    assert "read-only" in raised.value.detail
    reasons = [getattr(r, "reason", "") for r in caplog.records if r.getMessage() == "database unavailable"]
    assert reasons == [f"{which} cannot be opened for writing"]


def test_checking_never_drops_sqlites_locks_so_another_process_cannot_delete_the_wal(
    sqlite_database: Database, tmp_path: Path
) -> None:
    """Closing any descriptor of a file drops every POSIX lock the process holds on it. Had the check
    opened the files, the next connection to close elsewhere (``outbox list``, ``evidence verify``,
    a worker stopping) would think itself the last, and delete the WAL under the pool: committed
    reports gone."""
    with sqlite_database.connection() as connection:
        insert_audit(connection, "committed before the check")
    held = sqlite_database.engine.raw_connection()  # a pooled connection the service keeps open
    held.cursor().execute("SELECT 1").fetchall()
    sqlite_database.check()
    Database(f"sqlite:///{tmp_path / 'addin.db'}").dispose()  # what another command's start does
    other = subprocess.run(
        [sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
         "c.execute('SELECT count(*) FROM audit_log').fetchall(); c.close()", str(tmp_path / "addin.db")],
        capture_output=True, text=True, check=True,
    )
    try:
        assert (tmp_path / "addin.db-wal").exists(), other.stderr
        with sqlite_database.connection() as connection:
            insert_audit(connection, "committed after the check")
    finally:
        held.close()
    assert audit_count(sqlite_database) == 2


def test_an_exhausted_pool_is_database_unavailable_not_a_hang(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'addin.db'}", pool_size=1, max_overflow=0, pool_timeout=0.1)
    try:
        with database.session(write=False) as held:
            held.execute(text("SELECT 1"))
            with pytest.raises(DatabaseUnavailable) as raised, database.session(write=False) as second:
                second.execute(text("SELECT 1"))
        assert raised.value.retry_after == 2
    finally:
        database.dispose()


# -- units of work -------------------------------------------------------------------------


def test_a_session_commits_when_the_block_ends(any_database: Database) -> None:
    with any_database.session() as session:
        session.add(audit_row("kept"))

    assert audit_count(any_database) == 1


def test_a_session_rolls_back_when_the_block_raises(any_database: Database) -> None:
    with pytest.raises(RuntimeError), any_database.session() as session:
        session.add(audit_row("dropped"))
        session.flush()
        raise RuntimeError("capture failed")

    assert audit_count(any_database) == 0


def insert_audit(connection: Connection, action: str) -> None:
    connection.execute(AuditRow.__table__.insert(), {"at": datetime.now(UTC), "actor": "test", "action": action,
                                                     "case_id": None, "report_id": None, "details": "{}"})


def test_a_core_unit_of_work_commits_when_the_block_ends(any_database: Database) -> None:
    with any_database.connection() as connection:
        insert_audit(connection, "kept")

    assert audit_count(any_database) == 1


def test_a_core_unit_of_work_rolls_back_when_the_block_raises(any_database: Database) -> None:
    with pytest.raises(RuntimeError), any_database.connection() as connection:
        insert_audit(connection, "dropped")
        raise RuntimeError("capture failed")

    assert audit_count(any_database) == 0


def test_a_core_unit_of_work_may_roll_itself_back(any_database: Database) -> None:
    with any_database.connection(durable=False) as connection:
        insert_audit(connection, "dropped")
        connection.rollback()

    with any_database.connection() as connection:  # the pooled connection is clean again
        insert_audit(connection, "kept")
    assert audit_count(any_database) == 1


def test_check_answers_on_a_healthy_database(any_database: Database) -> None:
    any_database.check()


def test_check_logs_nothing_when_all_is_well(sqlite_database: Database, caplog: pytest.LogCaptureFixture) -> None:
    """Readiness is probed every few seconds: alembic's MigrationContext logged two lines each time."""
    caplog.set_level(logging.DEBUG)

    sqlite_database.check()

    assert caplog.records == []


# -- SQLite ---------------------------------------------------------------------------------


def test_sqlite_connections_are_durable_wal_with_foreign_keys(sqlite_database: Database) -> None:
    with sqlite_database.engine.connect() as connection:
        pragma = {name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                  for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")}

    assert pragma == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 10_000}


def test_a_new_sqlite_file_is_private_to_the_service(tmp_path: Path) -> None:
    path = tmp_path / "var" / "nested" / "addin.db"
    database = Database(f"sqlite:///{path}")
    try:
        database.upgrade()
    finally:
        database.dispose()

    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_concurrent_read_then_write_transactions_queue_instead_of_failing(sqlite_database: Database) -> None:
    """Each writer reads the count and then inserts; BEGIN IMMEDIATE makes them take turns, so
    none fails with "database is locked" and none works from a stale read."""
    start = threading.Barrier(8)

    def read_then_write(_: int) -> int:
        start.wait(timeout=10)
        with sqlite_database.session() as session:
            seen = int(session.scalar(select(func.count()).select_from(AuditRow)) or 0)
            time.sleep(0.02)
            session.add(audit_row(f"after-{seen}"))
        return seen

    with ThreadPoolExecutor(max_workers=8) as pool:
        seen = list(pool.map(read_then_write, range(8)))

    assert sorted(seen) == list(range(8))


def test_readers_do_not_wait_for_a_writer(sqlite_database: Database) -> None:
    with sqlite_database.session() as writer:
        writer.add(audit_row("in flight"))
        writer.flush()
        started = time.monotonic()
        assert audit_count(sqlite_database) == 0  # a reader sees the last commit at once
        assert time.monotonic() - started < 1


@contextmanager
def write_lock_held(database: Database) -> Iterator[None]:
    """``database``'s SQLite write lock, held by another thread until the block ends."""
    holding = threading.Event()
    done = threading.Event()

    def hold_the_write_lock() -> None:
        with database.session() as session:
            session.add(audit_row("slow"))
            session.flush()
            holding.set()
            done.wait(timeout=10)

    holder = threading.Thread(target=hold_the_write_lock, name="holder")
    holder.start()
    try:
        assert holding.wait(timeout=10)
        yield
    finally:
        done.set()
        holder.join()


@pytest.mark.parametrize("blocked_by", ["this process", "another process"])
def test_a_writer_locked_out_beyond_the_busy_timeout_gets_database_unavailable(tmp_path: Path, blocked_by: str
                                                                                ) -> None:
    """Writers of one process queue in the process; another process's writer (here: another
    Database on the same file) is waited for by SQLite's busy handler. Both give up alike."""
    url = f"sqlite:///{tmp_path / 'addin.db'}"
    database = Database(url, busy_timeout=0.2)
    database.upgrade()
    other = Database(url, busy_timeout=0.2) if blocked_by == "another process" else database
    try:
        with write_lock_held(other), pytest.raises(DatabaseUnavailable) as raised, database.session() as session:
            session.add(audit_row("blocked"))
        assert raised.value.retry_after == 2
        assert audit_count(database) == 1  # the holder's row; nothing of the blocked writer
    finally:
        other.dispose()
        database.dispose()


def test_writers_of_one_process_wait_their_turn_before_asking_sqlite(sqlite_database: Database) -> None:
    """A second writer does not start its transaction (and sleep in SQLite's busy handler, 1 to
    100 ms at a time) while the first holds the lock; it begins once the first has committed."""
    begun: list[str] = []

    @event.listens_for(sqlite_database.engine, "before_cursor_execute")
    def record_begin(connection: Connection, cursor: object, statement: str, *args: object) -> None:
        if statement.startswith("BEGIN IMMEDIATE"):
            begun.append(threading.current_thread().name)

    finished = threading.Event()

    def second_writer() -> None:
        with sqlite_database.session() as session:
            session.add(audit_row("second"))
        finished.set()

    with write_lock_held(sqlite_database):
        waiter = threading.Thread(target=second_writer, name="second writer")
        waiter.start()
        assert not finished.wait(timeout=0.3)
        assert begun == ["holder"]
    waiter.join(timeout=10)
    assert finished.is_set()
    assert begun == ["holder", "second writer"]
    assert audit_count(sqlite_database) == 2


# -- PostgreSQL -----------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_sessions_run_read_committed(postgres_database: Database) -> None:
    with postgres_database.session() as session:
        level = session.execute(text("SHOW transaction_isolation")).scalar()

    assert level == "read committed"


def test_a_url_that_is_neither_sqlite_nor_postgres_is_refused() -> None:
    with pytest.raises(ValueError, match="sqlite"):
        Database("mysql://root@localhost/addin")


@pytest.mark.postgres
def test_postgres_lock_waits_are_bounded_and_url_options_are_kept(postgres_database: Database) -> None:
    with postgres_database.session() as session:
        lock_timeout = session.execute(text("SHOW lock_timeout")).scalar()
        idle_timeout = session.execute(text("SHOW idle_in_transaction_session_timeout")).scalar()
        schema = session.execute(text("SELECT current_schema()")).scalar()

    assert (lock_timeout, idle_timeout) == ("10s", "1min")
    assert str(schema).startswith("test_")  # the fixture's search_path option survived


@pytest.mark.postgres
def test_a_row_lock_held_too_long_elsewhere_is_database_unavailable(migrated_postgres_url: str) -> None:
    database = Database(migrated_postgres_url)
    other = Database(migrated_postgres_url)
    try:
        with other.session() as holder:
            holder.execute(text("LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE"))
            with pytest.raises(DatabaseUnavailable), database.session() as session:
                session.execute(text("SET LOCAL lock_timeout = '200ms'"))  # not the default 10 s
                session.execute(select(func.count()).select_from(AuditRow))
    finally:
        database.dispose()
        other.dispose()


def test_switching_a_new_file_to_wal_waits_for_another_process_writing_it(tmp_path: Path) -> None:
    """Two processes starting on a new file: one is already writing when the other connects."""
    path = tmp_path / "addin.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # rollback-journal mode
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE started (at TEXT)")
    finisher = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    finisher.start()
    database = Database(f"sqlite:///{path}")
    try:
        with database.connection(write=False) as connection:  # the first connection switches to WAL
            connection.execute(text("SELECT 1"))
        with database.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        finisher.join()
        other.close()
        database.dispose()
