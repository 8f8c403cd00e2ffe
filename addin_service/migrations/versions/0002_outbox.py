"""The notification outbox and the campaign reservations.

Revision ID: 0002
Revises: 0001
Create Date: 2026-02-01

Written by hand to match ``addin_service/notify/models.py`` as of this revision (types spelled out,
as in 0001). ``outbox.dedupe_key`` is unique so that a notification is queued at most once — in
particular the security team once per campaign, even when reports of one message are filed at the
same instant. ``campaigns.campaign_key`` is the primary key for the same reason: concurrent first
reports of one Message-ID agree on one case.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    """Create ``outbox`` and ``campaigns``."""
    utc = sa.DateTime(timezone=True)
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", utc, nullable=False),
        sa.Column("updated_at", utc, nullable=False),
        sa.Column("case_id", sa.String(32), nullable=False),
        sa.Column("report_id", sa.String(32), nullable=True),
        sa.Column("role", sa.String(24), nullable=False),
        sa.Column("template", sa.String(32), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("dedupe_key", sa.String(64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("attach_message", sa.Boolean(), nullable=False),
        sa.Column("ack_required", sa.Boolean(), nullable=False),
        sa.Column("escalate_to", sa.Text(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sent_check", sa.Boolean(), nullable=False),
        sa.Column("next_attempt_at", utc, nullable=False),
        sa.Column("lease_token", sa.String(32), nullable=True),
        sa.Column("sent_at", utc, nullable=True),
        sa.Column("acknowledged_at", utc, nullable=True),
        sa.Column("escalated_at", utc, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_outbox_case_id_cases"),
        sa.ForeignKeyConstraint(["report_id"], ["reports.id"], name="fk_outbox_report_id_reports"),
        sa.UniqueConstraint("dedupe_key", name="uq_outbox_dedupe_key"),
        sa.CheckConstraint("state IN ('queued', 'sending', 'sent', 'dead')", name="ck_outbox_state"),
    )
    op.create_index("ix_outbox_case_id", "outbox", ["case_id"])
    op.create_index("ix_outbox_state_next_attempt_at", "outbox", ["state", "next_attempt_at"])

    op.create_table(
        "campaigns",
        sa.Column("campaign_key", sa.String(64), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("case_id", sa.String(32), nullable=False),
        sa.Column("created_at", utc, nullable=False),
        sa.Column("updated_at", utc, nullable=False),
        sa.PrimaryKeyConstraint("campaign_key", name="pk_campaigns"),
    )


def downgrade() -> None:
    """Drop the two tables. Queued notifications are lost: drain the outbox first
    (``addin-service outbox list --state queued`` shows what is left)."""
    op.drop_table("campaigns")
    op.drop_index("ix_outbox_state_next_attempt_at", table_name="outbox")
    op.drop_index("ix_outbox_case_id", table_name="outbox")
    op.drop_table("outbox")
