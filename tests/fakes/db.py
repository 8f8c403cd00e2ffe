"""Database fixtures: a migrated SQLite file per test, and PostgreSQL in a schema of its own.

Fixtures (import them into ``tests/conftest.py``, or list this module in ``pytest_plugins``):

* ``sqlite_database`` — a :class:`Database` on a fresh, migrated SQLite file under ``tmp_path``
  (a copy of ``sqlite_template_path``, the one file per run that is actually migrated).
* ``postgres_url`` — (session) the server URL; skips, saying why, when PostgreSQL is unreachable.
* ``empty_postgres_url`` — a URL whose ``search_path`` is a new, empty schema (dropped after).
* ``postgres_database`` — a :class:`Database` on this run's migrated schema, tables emptied
  before each test. Tests that use it must be marked ``@pytest.mark.postgres``.
* ``any_database`` — parametrized over both back ends (the PostgreSQL case carries the
  ``postgres`` mark), for contract tests that must hold on each.

Builders: ``make_case(...)`` and ``make_report(...)`` return plausible ``NewCase`` / ``NewReport``
values; keyword arguments override fields.

The server is ``TEST_POSTGRES_URL`` or ``postgresql+psycopg://postgres@127.0.0.1:5432/test``.
Each pytest process (each xdist worker too) uses its own schema, so runs do not interfere.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from addin_service.db import Database, NewCase, NewReport, item_key
from addin_service.db.models import Base
from addin_service.errors import DatabaseUnavailable
from addin_service.ids import new_case_id, new_report_id

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_server_url() -> str:
    return os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


@cache
def postgres_unreachable_reason() -> str | None:
    """None when the test server answers, else a sentence saying what is missing."""
    url = postgres_server_url()
    probe = Database(url, connect_timeout=2)
    try:
        with probe.connection(write=False) as connection:  # not check(): this database has no schema
            connection.execute(text("SELECT 1"))
    except DatabaseUnavailable:
        shown = make_url(url).render_as_string(hide_password=True)
        return (
            f"PostgreSQL is not reachable at {shown}: start it (or set TEST_POSTGRES_URL), "
            "or deselect these tests with -m 'not postgres'"
        )
    finally:
        probe.dispose()
    return None


def url_with_search_path(url: str, schema: str) -> str:
    """``url`` with the connection option that makes ``schema`` the default schema."""
    return make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False
    )


@contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """Create a uniquely named schema, yield a URL that uses it, drop it afterwards."""
    name = f"test_{os.getpid()}_{secrets.token_hex(4)}"
    admin = Database(url)
    try:
        with admin.engine.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{name}"'))
        yield url_with_search_path(url, name)
    finally:
        with admin.engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, made once per run; tests get copies (far cheaper than migrating)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "addin.db"
    database = Database(f"sqlite:///{path}")
    database.upgrade()
    database.dispose()  # the last connection closing checkpoints the WAL into the main file
    return path


@pytest.fixture
def sqlite_database(tmp_path: Path, sqlite_template_path: Path) -> Iterator[Database]:
    path = tmp_path / "addin.db"
    shutil.copyfile(sqlite_template_path, path)
    for suffix in ("-wal", "-shm"):  # none after a clean close; copied if a run left them
        sidecar = sqlite_template_path.with_name(sqlite_template_path.name + suffix)
        if sidecar.exists():
            shutil.copyfile(sidecar, path.with_name(path.name + suffix))
    database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    reason = postgres_unreachable_reason()
    if reason is not None:
        pytest.skip(reason)
    return postgres_server_url()


@pytest.fixture
def empty_postgres_url(postgres_url: str) -> Iterator[str]:
    with postgres_schema(postgres_url) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no schema yet, on each back end."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'addin.db'}"
    url: str = request.getfixturevalue("empty_postgres_url")
    return url


@pytest.fixture
def empty_database(empty_url: str) -> Iterator[Database]:
    database = Database(empty_url)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def migrated_postgres_url(postgres_url: str) -> Iterator[str]:
    with postgres_schema(postgres_url) as url:
        database = Database(url)
        try:
            database.upgrade()
        finally:
            database.dispose()
        yield url


@pytest.fixture
def postgres_database(migrated_postgres_url: str) -> Iterator[Database]:
    # Room for the concurrency tests' 16 threads without queueing on the pool.
    database = Database(migrated_postgres_url, pool_size=20, max_overflow=0)
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with database.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield database
    database.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_database(request: pytest.FixtureRequest) -> Database:
    database: Database = request.getfixturevalue(f"{request.param}_database")
    return database


def make_case(reporter: str = "alex@contoso.com", **changes: Any) -> NewCase:
    """A new case with plausible values; keyword arguments override any field."""
    case = NewCase(
        id=new_case_id(),
        reporter=reporter,
        sender_address="harasser@fabrikam.example",
        origin="external",
    )
    return replace(case, **changes)


def make_report(
    reporter: str = "alex@contoso.com", item_id: str = "AAMkAGI2TG93AAA=", **changes: Any
) -> NewReport:
    """A sealed report's facts with plausible values; keyword arguments override any field.

    ``item_key`` follows ``mailbox`` and ``item_id`` unless given.
    """
    mailbox = str(changes.pop("mailbox", reporter))
    report_id = str(changes.pop("id", new_report_id()))
    report = NewReport(
        id=report_id,
        reporter=reporter,
        mailbox=mailbox,
        item_id=item_id,
        item_key=item_key(mailbox, item_id),
        change_key="CQAAABYAAAD",
        internet_message_id="<1234@fabrikam.example>",
        category="threat",
        note="He wrote again after I asked him to stop.",
        feels_unsafe=False,
        include_related=False,
        message_sha256="sha256:" + "ab" * 32,
        message_size=2048,
        manifest_sha256="sha256:" + "cd" * 32,
        ledger_sequence=1,
        adapter="ews",
        mime_source="ews-mimecontent",
        response_json=json.dumps({"report_id": report_id, "mailbox": mailbox}),
    )
    return replace(report, **changes)
