"""Who each case names as a sender: never told about the case, never shown it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

A report's routing excluded only the senders its own message claimed. A supervisor named as the
Sender of one message in a case was still told when the reporter filed another message of the same
case that did not name them, and a case link sent to them earlier went on showing the case as it
grew. Every address a report names as From or Sender, and every person the routing policy matched
to one, is kept per case. Written by hand to match ``addin_service/db/models.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    """Create ``case_senders``."""
    op.create_table(
        "case_senders",
        sa.Column("case_id", sa.String(32), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("case_id", "address", name="pk_case_senders"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_case_senders_case_id_cases"),
    )


def downgrade() -> None:
    """Drop ``case_senders``."""
    op.drop_table("case_senders")
