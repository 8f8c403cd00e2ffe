"""Alembic environment: runs migrations on the connection that ``Database.upgrade()`` passes in.

The caller has already begun the transaction (and, on PostgreSQL, taken the advisory lock), so
every pending revision runs inside it and commits or rolls back as one.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from addin_service.db.models import Base


def run_migrations_online() -> None:
    """Run pending revisions on the caller's connection.

    :raises RuntimeError: no connection was handed over (offline ``--sql`` mode, or the
        ``alembic`` command line used directly) — use ``addin-service db upgrade``.
    """
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("run migrations with `addin-service db upgrade` (Database.upgrade())")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported; run `addin-service db upgrade`")
run_migrations_online()
