"""The database connection: engine set-up per back end, units of work, migrations, readiness.

Two back ends, one behaviour:

* **SQLite** (the embedded default): WAL journal so readers never block the writer,
  ``synchronous=FULL`` so a committed report survives a power cut, ``foreign_keys=ON``, a busy
  timeout, and ``BEGIN IMMEDIATE`` for write transactions. The last one matters: a deferred
  transaction that reads and then writes cannot wait for the lock when another connection
  committed in between, and fails at once with "database is locked"; taking the write lock up
  front makes concurrent writers queue behind each other for up to the busy timeout instead.
  Within one process they queue on a lock rather than in SQLite's sleeping busy handler.
* **PostgreSQL** through psycopg 3: ``READ COMMITTED``, pre-ping on checkout, a bounded pool,
  and server-side ``lock_timeout`` / ``idle_in_transaction_session_timeout`` so no request waits
  forever behind a stuck transaction.

A unit of work is an ORM session (:meth:`Database.session`) or, on hot paths that run a few
prepared Core statements, a connection (:meth:`Database.connection`); both start and end their
transactions the same way.

Every SQLAlchemy connectivity error is translated into
:class:`~addin_service.errors.DatabaseUnavailable` at this boundary, so the API answers 503 with
``Retry-After`` and no driver message ever reaches a user or a log line with parameters in it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, column, create_engine, event, inspect, select, table, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from addin_service.errors import DatabaseUnavailable

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

SQLITE_BUSY_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 5
LOCK_TIMEOUT_MS = 10_000
IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000
MIGRATION_LOCK_TIMEOUT = "5min"  # a migration may wait for the running service's row locks
UNAVAILABLE_DETAIL = "The case database cannot be reached right now. Please try again in a moment."
BUSY_DETAIL = "The case database is busy right now. Please try again in a moment."
SCHEMA_DETAIL = (
    "The case database has not been upgraded for this version of the service: an administrator must run "
    "'addin-service db upgrade'."
)
READ_ONLY_DETAIL = "The case database is read-only right now, so no report could be recorded."

# The PostgreSQL advisory lock that serialises concurrent `db upgrade` runs, derived from a
# fixed name so every process (and every version of this code) uses the same number.
MIGRATION_LOCK_ID = int.from_bytes(
    hashlib.sha256(b"addin_service.migrations").digest()[:8], "big", signed=True
)

_SQLITE_BEGIN_OPTION = "addin_sqlite_begin"
_DURABLE_OPTION = "addin_durable"
_SYNCHRONOUS_INFO = "addin_sqlite_synchronous"


class Database:
    """One database, one engine, one pool. Create it in ``create_app()`` or a CLI command.

    Nothing connects in the constructor except, for a file-based SQLite database, making sure
    its directory and an owner-only file exist (notes are stored in it).

    :raises ValueError: ``url`` is neither SQLite nor PostgreSQL.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 5,
        max_overflow: int = 10,
        pool_timeout: float = 10.0,
        connect_timeout: int = CONNECT_TIMEOUT_SECONDS,
        busy_timeout: float = SQLITE_BUSY_TIMEOUT_SECONDS,
    ) -> None:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            self.engine = _sqlite_engine(parsed, busy_timeout, pool_size, max_overflow, pool_timeout)
        elif backend == "postgresql":
            self.engine = _postgres_engine(parsed, connect_timeout, pool_size, max_overflow, pool_timeout)
        else:
            raise ValueError("database URL must be sqlite:///path or postgresql+psycopg://...")
        self.dialect: str = backend
        self._busy_timeout = busy_timeout
        # SQLite has one writer at a time; its busy handler makes the others sleep and retry
        # (1, 2, 5, 10 … 100 ms), which under a burst leaves the lock free while everyone sleeps.
        # Writers of this process queue here instead and are woken the moment it is free; the busy
        # handler is left to arbitrate between processes only.
        self._sqlite_writer = threading.RLock() if backend == "sqlite" else None
        self._read_engine = self.engine.execution_options(**{_SQLITE_BEGIN_OPTION: "DEFERRED"})
        self._ephemeral_engine = self.engine.execution_options(**{_DURABLE_OPTION: False})
        self._write_sessions = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(bind=self._read_engine, expire_on_commit=False)
        self._ephemeral_sessions = sessionmaker(bind=self._ephemeral_engine, expire_on_commit=False)

    @property
    def url(self) -> str:
        """The URL with any password masked, for logs and diagnostics."""
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def __repr__(self) -> str:
        return f"Database({self.url!r})"

    @contextmanager
    def session(self, *, write: bool = True, durable: bool = True) -> Iterator[Session]:
        """A unit of work: commit when the block ends normally, roll back when it raises.

        ``write=False`` is for read-only work: on SQLite it starts a deferred transaction that
        does not queue behind writers; on PostgreSQL it changes nothing.

        ``durable=False`` is for rows that may be lost in a crash without harm (in-flight claims):
        the commit does not wait for the disk (SQLite ``synchronous=NORMAL`` in WAL mode,
        PostgreSQL ``synchronous_commit=off``), yet stays atomic and is never reordered after a
        later durable commit.

        :raises DatabaseUnavailable: the database cannot be reached, dropped the connection, is
            locked for longer than the busy timeout, or the pool is exhausted.
        """
        factory = self._write_sessions if write else self._read_sessions
        if write and not durable:
            factory = self._ephemeral_sessions
        with self._write_turn(write), translate_errors(), factory() as session:
            try:
                if factory is self._ephemeral_sessions and not self.is_sqlite:
                    session.execute(text("SET LOCAL synchronous_commit = off"))
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def connection(self, *, write: bool = True, durable: bool = True) -> Iterator[Connection]:
        """The same unit of work as :meth:`session`, as a Core connection: for hot paths that run a
        few prepared statements and need no ORM (a session costs more than the statements).

        The block may call ``connection.rollback()`` to end the transaction without writing.

        :raises DatabaseUnavailable: as :meth:`session`.
        """
        engine = self.engine if write else self._read_engine
        if write and not durable:
            engine = self._ephemeral_engine
        with self._write_turn(write), translate_errors(), engine.connect() as connection:
            connection.begin()
            try:
                if engine is self._ephemeral_engine and not self.is_sqlite:
                    connection.exec_driver_sql("SET LOCAL synchronous_commit = off")
                yield connection
            except BaseException:
                connection.rollback()
                raise
            connection.commit()  # nothing to do if the block rolled back

    @contextmanager
    def _write_turn(self, write: bool) -> Iterator[None]:
        """This process's turn to write to SQLite (nothing to wait for on PostgreSQL or to read).

        :raises DatabaseUnavailable: other writers held it for longer than the busy timeout.
        """
        writer = self._sqlite_writer
        if writer is None or not write:
            yield
            return
        if not writer.acquire(timeout=self._busy_timeout):
            log.warning("database busy", extra={"error": "writer queue"})
            raise DatabaseUnavailable(BUSY_DETAIL, retry_after=2)
        try:
            yield
        finally:
            writer.release()

    def check(self) -> None:
        """Readiness probe: one round trip, and whether reports could be written.

        A database that answers reads but refuses writes (a PostgreSQL standby after a failover,
        ``default_transaction_read_only``; an SQLite file on a filesystem remounted read-only, or
        made immutable) would let every report be captured and sealed, then fail to record it.
        Nothing is written to find out: on PostgreSQL the session says so; for SQLite the kernel
        is asked whether its files may be written (``access(2)``: a read-only mount and an
        immutable file say no even to root).

        :raises DatabaseUnavailable: the database cannot answer, or cannot be written.
        """
        with translate_errors(), self.engine.connect() as connection:
            if self.is_sqlite:
                read_only = _sqlite_read_only(self.engine.url.database or "")
            else:
                setting = connection.execute(text("SELECT current_setting('transaction_read_only')")).scalar_one()
                read_only = "transaction_read_only is on" if setting == "on" else None
            revision = _schema_revision(connection)  # on SQLite, this is the round trip
        if read_only is not None:
            raise _cannot_record("read-only", read_only)
        behind = schema_behind(revision)
        if behind is not None:
            raise _cannot_record("schema", behind)

    def upgrade(self) -> str | None:
        """Bring the schema to the newest Alembic revision; doing nothing when it is current.

        Returns None, or the revision found when this package does not know it: a newer version
        upgraded the database and was then rolled back. That schema is left as it is (revisions
        only add, so this version works with it) instead of failing every start.

        All pending revisions run in one transaction. On PostgreSQL that transaction first takes
        a transaction-scoped advisory lock, so two processes starting at once run the migrations
        one after the other (the second finds nothing to do), and may wait up to five minutes
        for locks. On SQLite the write transaction's ``BEGIN IMMEDIATE`` does the same job.
        Thread-safe only because of those locks: Alembic's ``context`` is process-global.

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        from alembic import command

        with translate_errors(), self.engine.begin() as connection:
            if self.dialect == "postgresql":
                connection.execute(text(f"SET LOCAL lock_timeout = '{MIGRATION_LOCK_TIMEOUT}'"))
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            current = _schema_revision(connection)
            if current is not None and current not in _shipped_revisions():
                log.warning("database schema is newer than this version", extra={"revision": current})
                return current
            command.upgrade(alembic_config(connection), "head")
        return None

    def current_revision(self) -> str | None:
        """The schema's Alembic revision, or None for a database never upgraded.

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        with translate_errors(), self.engine.connect() as connection:
            return _schema_revision(connection)

    def dispose(self) -> None:
        """Close every pooled connection (on shutdown, and in tests)."""
        self.engine.dispose()


def _schema_revision(connection: Connection) -> str | None:
    """The schema's Alembic revision, read directly: alembic's MigrationContext would log two INFO
    lines at every readiness probe."""
    if not inspect(connection).has_table(_VERSION_TABLE.name):
        return None
    revision: str | None = connection.execute(select(_VERSION_TABLE.c.version_num)).scalar()
    return revision


def head_revision() -> str:
    """The newest revision shipped with this package."""
    return _shipped_revisions()[0]


@functools.cache
def _shipped_revisions() -> tuple[str, ...]:
    """Every revision shipped with this package, newest first."""
    from alembic.script import ScriptDirectory

    revisions = tuple(r.revision for r in ScriptDirectory.from_config(alembic_config(None)).walk_revisions())
    if not revisions:  # pragma: no cover - the package always ships revision 0001
        raise RuntimeError(f"no Alembic revisions found in {MIGRATIONS_DIR}")
    return revisions


def schema_behind(revision: str | None) -> str | None:
    """Why a schema at ``revision`` cannot serve this version (for the admin's log), or None.

    A revision this package does not know is newer than it (a deployment rolled back after
    ``db upgrade``): revisions only add, so this version still works with it.
    """
    head = head_revision()
    if revision is None:
        return f"the database has no schema: run 'addin-service db upgrade' (this version needs revision {head})"
    if revision != head and revision in _shipped_revisions():
        return f"the schema is at revision {revision}, this version needs {head}: run 'addin-service db upgrade'"
    return None


def alembic_config(connection: Connection | None) -> Config:
    """An Alembic ``Config`` built in code (no alembic.ini), pointing at the packaged scripts.

    ``env.py`` runs its migrations on ``connection``, inside the transaction the caller holds.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


MAX_REASON_LENGTH = 300
_VERSION_TABLE = table("alembic_version", column("version_num"))  # Alembic's own
_MISSING_SCHEMA_SQLSTATES = frozenset({"42P01", "42703"})  # PostgreSQL: undefined table, undefined column
_READ_ONLY_SQLSTATE = "25006"  # PostgreSQL: read_only_sql_transaction


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn SQLAlchemy connectivity errors into :class:`DatabaseUnavailable`.

    Integrity errors and programming errors pass through untouched: they are not "try later" —
    except PostgreSQL's undefined table or column, which is a schema nobody upgraded.

    :raises DatabaseUnavailable: for operational, interface and pool-timeout errors, a missing
        table or column, and a write refused by a read-only transaction.
    """
    try:
        yield
    except DatabaseUnavailable:
        raise
    except sa_exc.TimeoutError as exc:
        log.warning("database pool exhausted", extra={"error": type(exc).__name__})
        raise DatabaseUnavailable(BUSY_DETAIL, retry_after=2) from exc
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
        raise _unavailable(exc) from exc
    except sa_exc.ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) not in _MISSING_SCHEMA_SQLSTATES:
            raise
        # A table or column this version needs is not there: the schema was never upgraded.
        raise _cannot_record("schema", f"{unavailable_reason(exc.orig)}: run 'addin-service db upgrade'") from exc
    except sa_exc.DBAPIError as exc:
        if exc.connection_invalidated:
            raise _unavailable(exc) from exc
        if getattr(exc.orig, "sqlstate", None) == _READ_ONLY_SQLSTATE:
            # A standby after a failover, or default_transaction_read_only: nothing can be recorded.
            raise _cannot_record("read-only", unavailable_reason(exc.orig)) from exc
        raise


def _unavailable(exc: sa_exc.DBAPIError) -> DatabaseUnavailable:
    driver_error = type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__
    message = str(exc.orig) if exc.orig is not None else ""
    if "locked" in message or "busy" in message:
        log.warning("database busy", extra={"error": driver_error})
        return DatabaseUnavailable(BUSY_DETAIL, retry_after=2)
    reason = unavailable_reason(exc.orig)
    log.warning("database unavailable", extra={"error": driver_error, "reason": reason})
    return DatabaseUnavailable(UNAVAILABLE_DETAIL, retry_after=5, reason=reason)


def _cannot_record(kind: str, reason: str) -> DatabaseUnavailable:
    """The database answers but no report could be recorded in it: ``kind`` is ``read-only`` or
    ``schema`` (not upgraded); ``reason`` is for the admin (the log, the CLI). Not a blip: retry later."""
    log.warning("database unavailable", extra={"error": kind, "reason": reason})
    detail = READ_ONLY_DETAIL if kind == "read-only" else SCHEMA_DETAIL
    return DatabaseUnavailable(detail, retry_after=30, reason=reason)


def unavailable_reason(error: BaseException | None) -> str:
    """Why the database could not be used, for the admin's log: what tells "does not exist" from
    "too many connections" from "password authentication failed". Only errors about the connection,
    the server's state, a missing table and a read-only session come here: their messages name a
    host, a database, a role or a relation, never a statement's values; PostgreSQL's is its
    SQLSTATE and the server's primary message."""
    if error is None:
        return ""
    diag = getattr(error, "diag", None)
    sqlstate = getattr(error, "sqlstate", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    if sqlstate and primary:
        text = f"{sqlstate}: {primary}"
    else:
        lines = str(error).strip().splitlines()
        text = lines[0] if lines else type(error).__name__
    return text[:MAX_REASON_LENGTH]


def _sqlite_engine(
    url: URL, busy_timeout: float, pool_size: int, max_overflow: int, pool_timeout: float
) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    options: dict[str, Any] = {
        "connect_args": {"check_same_thread": False, "timeout": busy_timeout},
        "hide_parameters": True,
    }
    if in_memory:
        # One shared connection, or every checkout would see a different empty database.
        # Suitable for single-threaded tests only.
        options["poolclass"] = StaticPool
    else:
        _prepare_sqlite_file(Path(database))
        options.update(pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout)
    engine = create_engine(url, **options)
    busy_ms = int(busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # Take transaction control away from the sqlite3 module (it would issue its own BEGIN
        # lazily, before the first write) so that _on_begin decides how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cursor.execute("PRAGMA foreign_keys = ON")
            _switch_to_wal(cursor, busy_timeout)
            cursor.execute("PRAGMA synchronous = FULL")
            record.info[_SYNCHRONOUS_INFO] = "FULL"
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        # Chosen per transaction (outside it, where SQLite allows it), so no connection in the pool
        # is ever left non-durable for the next unit of work; the connection's info remembers the
        # current level so that the PRAGMA runs only when it changes.
        wanted = "FULL" if options.get(_DURABLE_OPTION, True) else "NORMAL"
        if connection.info.get(_SYNCHRONOUS_INFO) != wanted:
            connection.info.pop(_SYNCHRONOUS_INFO, None)  # unknown until the PRAGMA has run
            connection.exec_driver_sql(f"PRAGMA synchronous = {wanted}")
            connection.info[_SYNCHRONOUS_INFO] = wanted
        mode = options.get(_SQLITE_BEGIN_OPTION, "IMMEDIATE")
        connection.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN DEFERRED")

    return engine


def _switch_to_wal(cursor: Any, busy_timeout: float) -> None:
    """Put the database file in WAL mode (persistent: done once per file, checked per connection).

    The switch needs an exclusive lock and SQLite's busy handler does not wait for it: when
    another process is mid-transaction (two processes starting on a new file) it fails at once
    with "database is locked". So wait here, up to the busy timeout, re-reading the mode because
    the other process may well have switched it meanwhile.

    :raises sqlite3.OperationalError: still locked after ``busy_timeout`` seconds.
    """
    deadline = time.monotonic() + busy_timeout
    while True:
        mode = str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        if mode in ("wal", "memory"):
            return
        try:
            cursor.execute("PRAGMA journal_mode = WAL").fetchone()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def _sqlite_read_only(database: str) -> str | None:
    """Why SQLite would open ``database`` (or its WAL and shared-memory files) read-only, or None:
    it falls back silently and fails on the first write. A remounted filesystem fails here too.

    Asked with ``access(2)``, never by opening the files: closing any descriptor of a file drops
    every POSIX lock this process holds on it, SQLite's included, and another process would then
    delete the WAL under the pool's open connections (committed reports lost).
    """
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    path = Path(database)
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if not os.access(file, os.W_OK) and os.path.lexists(file):
            return f"{file.name} cannot be opened for writing"
    return None


def _prepare_sqlite_file(path: Path) -> None:
    """Create the database's directory and an empty owner-only file if they do not exist yet.

    SQLite would create the file with the process umask (often world-readable); the WAL and
    shared-memory files it creates later copy the main file's permissions. An existing file is not
    opened: closing a descriptor would drop SQLite's locks if this process already had it open.
    """
    if path.exists():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass  # another process starting at the same time made it
    except OSError as exc:
        # Reported on first use as DatabaseUnavailable by SQLite itself; log why here.
        log.warning("cannot prepare the SQLite file", extra={"error": type(exc).__name__})


def _postgres_engine(
    url: URL, connect_timeout: int, pool_size: int, max_overflow: int, pool_timeout: float
) -> Engine:
    if url.drivername != "postgresql+psycopg":
        url = url.set(drivername="postgresql+psycopg")
    # Bounded waits: a stuck transaction elsewhere turns into a 503 with Retry-After here, not a
    # request that hangs; and a session left idle inside a transaction is ended by the server.
    server_options = [f"-c lock_timeout={LOCK_TIMEOUT_MS}",
                      f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT_MS}"]
    given = url.query.get("options")
    if isinstance(given, str) and given:
        server_options.insert(0, given)  # connect_args would otherwise replace the URL's options
    connect_args: dict[str, Any] = {"options": " ".join(server_options)}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = connect_timeout
    if "application_name" not in url.query:
        connect_args["application_name"] = "addin-service"
    return create_engine(
        url,
        connect_args=connect_args,
        isolation_level="READ COMMITTED",
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_recycle=1800,
        hide_parameters=True,
    )
