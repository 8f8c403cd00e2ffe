"""Cases, reports, idempotency keys, item claims and the audit log.

Revision ID: 0001
Revises:
Create Date: 2026-01-01

Written by hand to match ``addin_service/db/models.py`` as of this revision (types are spelled
out here rather than imported, so later model changes cannot rewrite history). Constraint and
index names follow the models' naming convention.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    """Create the five tables of the first schema."""
    utc = sa.DateTime(timezone=True)
    op.create_table(
        "cases",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("created_at", utc, nullable=False),
        sa.Column("updated_at", utc, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reporter", sa.Text(), nullable=False),
        sa.Column("sender_address", sa.Text(), nullable=True),
        sa.Column("origin", sa.String(24), nullable=True),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("campaign_message_id", sa.Text(), nullable=True),
        sa.Column("campaign_key", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_cases"),
        sa.CheckConstraint("status IN ('open', 'closed')", name="ck_cases_status"),
        sa.CheckConstraint(
            "origin IS NULL OR origin IN ('internal', 'external', 'spoofed-internal')",
            name="ck_cases_origin",
        ),
    )
    op.create_index("ix_cases_reporter", "cases", ["reporter"])
    op.create_index("ix_cases_campaign_key", "cases", ["campaign_key"])

    op.create_table(
        "reports",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("case_id", sa.String(32), nullable=False),
        sa.Column("created_at", utc, nullable=False),
        sa.Column("reporter", sa.Text(), nullable=False),
        sa.Column("mailbox", sa.Text(), nullable=False),
        sa.Column("item_id", sa.Text(), nullable=False),
        sa.Column("item_key", sa.String(64), nullable=False),
        sa.Column("change_key", sa.Text(), nullable=True),
        sa.Column("internet_message_id", sa.Text(), nullable=True),
        sa.Column("message_id_key", sa.String(64), nullable=True),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("feels_unsafe", sa.Boolean(), nullable=False),
        sa.Column("include_related", sa.Boolean(), nullable=False),
        sa.Column("message_sha256", sa.String(80), nullable=False),
        sa.Column("message_size", sa.BigInteger(), nullable=False),
        sa.Column("manifest_sha256", sa.String(80), nullable=False),
        sa.Column("ledger_sequence", sa.BigInteger(), nullable=False),
        sa.Column("adapter", sa.String(32), nullable=False),
        sa.Column("mime_source", sa.String(32), nullable=False),
        sa.Column("response_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reports"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_reports_case_id_cases"),
        sa.UniqueConstraint("reporter", "item_key", name="uq_reports_reporter_item_key"),
    )
    op.create_index("ix_reports_case_id", "reports", ["case_id"])
    op.create_index("ix_reports_message_id_key", "reports", ["message_id_key"])

    op.create_table(
        "idempotency_keys",
        sa.Column("reporter", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("item_key", sa.String(64), nullable=False),
        sa.Column("report_id", sa.String(32), nullable=True),
        sa.Column("created_at", utc, nullable=False),
        sa.PrimaryKeyConstraint("reporter", "key", name="pk_idempotency_keys"),
        sa.ForeignKeyConstraint(["report_id"], ["reports.id"], name="fk_idempotency_keys_report_id_reports"),
    )

    op.create_table(
        "item_claims",
        sa.Column("reporter", sa.Text(), nullable=False),
        sa.Column("item_key", sa.String(64), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("claimed_at", utc, nullable=False),
        sa.Column("expires_at", utc, nullable=False),
        sa.PrimaryKeyConstraint("reporter", "item_key", name="pk_item_claims"),
    )

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", utc, nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("case_id", sa.String(32), nullable=True),
        sa.Column("report_id", sa.String(32), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_case_id", "audit_log", ["case_id"])


def downgrade() -> None:
    """Refused on purpose: going below 0001 would drop every case and report record.

    :raises RuntimeError: always. Restore a backup instead.
    """
    raise RuntimeError(
        "Refusing to drop the evidence tables. Restore a database backup instead of downgrading below revision 0001."
    )
