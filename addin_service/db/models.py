"""The database tables, as SQLAlchemy 2 typed declarative models.

Alembic revision ``0001`` creates exactly these tables; ``tests/integration/test_db_migrations.py``
runs Alembic's autogenerate comparison to prove that models and migrations agree. A feature that
needs a new table (the outbox, revision ``0002``) adds its model here or imports it from this
module, so that ``Base.metadata`` always describes the whole schema.

Design notes:

* Times are :class:`UTCDateTime`: timezone-aware UTC in Python whatever the back end stores.
* Values a sender chooses (``Message-ID``) or that can be long (EWS item ids) are never index
  keys: an over-long key would make PostgreSQL refuse the row, and a harasser must not be able to
  stop a report being filed by sending a 3 kB ``Message-ID``. Such columns are stored in full and
  looked up through a fixed-length sha256 key column instead (``item_key``, ``message_id_key``,
  ``campaign_key``).
* No ``ON DELETE CASCADE`` anywhere: evidence records are never deleted by the service.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names: later migrations can drop or alter a constraint by name on
# every back end, and autogenerate compares like with like.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID_LENGTH = 32  # HR-2026-7K3M9Q2X and R-0123456789ABCDEF fit with room to spare
KEY_LENGTH = 64  # sha256 hex
HASH_LENGTH = 80  # "sha256:<hex>" is 71 characters
CASE_STATUSES = ("open", "closed")
ORIGINS = ("internal", "external", "spoofed-internal")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every back end.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so the value is stored as naive
    UTC and UTC is attached again when read. Naive datetimes are refused on the way in because
    their meaning depends on the machine that made them.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """:raises ValueError: ``value`` is a naive datetime."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given to a UTC column; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):  # pragma: no cover - drivers return datetime objects
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base whose ``metadata`` is the whole schema (Alembic's target)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class CaseRow(Base):
    """A case groups the reports about one harassment situation."""

    __tablename__ = "cases"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'closed')", name="status"),
        CheckConstraint("origin IS NULL OR origin IN ('internal', 'external', 'spoofed-internal')", name="origin"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))
    reporter: Mapped[str] = mapped_column(Text, index=True)
    sender_address: Mapped[str | None] = mapped_column(Text)
    origin: Mapped[str | None] = mapped_column(String(24))
    urgent: Mapped[bool] = mapped_column(Boolean)
    campaign_message_id: Mapped[str | None] = mapped_column(Text)
    campaign_key: Mapped[str | None] = mapped_column(String(KEY_LENGTH), index=True)


class CaseSenderRow(Base):
    """An address a report in the case names as the sender (From, Sender), or a person the routing
    policy matched to one: never told about the case, never shown it."""

    __tablename__ = "case_senders"

    case_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("cases.id"), primary_key=True)
    address: Mapped[str] = mapped_column(Text, primary_key=True)


class ReportRow(Base):
    """One filed report: the facts of one captured item and the exact 201 body sent back."""

    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("reporter", "item_key"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("cases.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reporter: Mapped[str] = mapped_column(Text)
    mailbox: Mapped[str] = mapped_column(Text)
    item_id: Mapped[str] = mapped_column(Text)
    item_key: Mapped[str] = mapped_column(String(KEY_LENGTH))
    change_key: Mapped[str | None] = mapped_column(Text)
    internet_message_id: Mapped[str | None] = mapped_column(Text)
    message_id_key: Mapped[str | None] = mapped_column(String(KEY_LENGTH), index=True)
    category: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    feels_unsafe: Mapped[bool] = mapped_column(Boolean)
    include_related: Mapped[bool] = mapped_column(Boolean)
    message_sha256: Mapped[str] = mapped_column(String(HASH_LENGTH))
    message_size: Mapped[int] = mapped_column(BigInteger)
    manifest_sha256: Mapped[str] = mapped_column(String(HASH_LENGTH))
    ledger_sequence: Mapped[int] = mapped_column(BigInteger)
    adapter: Mapped[str] = mapped_column(String(32))
    mime_source: Mapped[str] = mapped_column(String(32))
    response_json: Mapped[str] = mapped_column(Text)
    reporter_oid: Mapped[str | None] = mapped_column(String(36))  # NULL for reports filed before revision 0005


class IdempotencyKeyRow(Base):
    """An ``Idempotency-Key`` a reporter used, the request it stood for, and its report."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (PrimaryKeyConstraint("reporter", "key"),)

    reporter: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(Text)
    item_key: Mapped[str] = mapped_column(String(KEY_LENGTH))
    report_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), ForeignKey("reports.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ItemClaimRow(Base):
    """An in-flight marker: one request is capturing this reporter's item right now."""

    __tablename__ = "item_claims"
    __table_args__ = (PrimaryKeyConstraint("reporter", "item_key"),)

    reporter: Mapped[str] = mapped_column(Text)
    item_key: Mapped[str] = mapped_column(String(KEY_LENGTH))
    token: Mapped[str] = mapped_column(String(64))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditRow(Base):
    """Who did what, when. No foreign keys: a failed filing is audited for a case that never was."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), index=True)
    report_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    details: Mapped[str] = mapped_column(Text)


# The notification tables live beside their feature but must be part of ``Base.metadata`` whenever
# the schema is (Alembic's comparison, fixtures that empty every table): import them here, last.
from addin_service.notify import models as _notify_models  # noqa: E402, F401
