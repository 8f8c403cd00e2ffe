"""In-flight claims may skip waiting for the disk; filed reports never do."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from addin_service.db import Database


def synchronous(database: Database, *, durable: bool) -> int:
    with database.session(durable=durable) as session:
        return int(session.execute(text("PRAGMA synchronous")).scalar_one())


def test_an_ephemeral_write_does_not_wait_for_the_disk(sqlite_database: Database) -> None:
    assert synchronous(sqlite_database, durable=False) == 1  # NORMAL


def test_the_next_unit_of_work_is_durable_again(sqlite_database: Database) -> None:
    synchronous(sqlite_database, durable=False)
    assert synchronous(sqlite_database, durable=True) == 2  # FULL


def test_core_units_of_work_get_the_same_durability_as_sessions(sqlite_database: Database) -> None:
    levels = []
    for durable in (False, False, True, True, False):
        with sqlite_database.connection(durable=durable) as connection:
            levels.append(connection.exec_driver_sql("PRAGMA synchronous").scalar_one())

    assert levels == [1, 1, 2, 2, 1]
    assert synchronous(sqlite_database, durable=True) == 2


def test_read_sessions_run_durable(sqlite_database: Database) -> None:
    synchronous(sqlite_database, durable=False)
    with sqlite_database.session(write=False) as session:
        assert int(session.execute(text("PRAGMA synchronous")).scalar_one()) == 2


@pytest.mark.postgres
def test_on_postgres_an_ephemeral_write_turns_off_synchronous_commit_for_itself(postgres_database: Database) -> None:
    with postgres_database.session(durable=False) as session:
        assert session.execute(text("SHOW synchronous_commit")).scalar_one() == "off"
    with postgres_database.session() as session:
        assert session.execute(text("SHOW synchronous_commit")).scalar_one() == "on"
    with postgres_database.connection(durable=False) as connection:
        assert connection.exec_driver_sql("SHOW synchronous_commit").scalar_one() == "off"
    with postgres_database.connection() as connection:
        assert connection.exec_driver_sql("SHOW synchronous_commit").scalar_one() == "on"
