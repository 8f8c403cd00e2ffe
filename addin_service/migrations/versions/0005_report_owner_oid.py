"""Reports remember their reporter's Entra object id.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

A report belonged to a sign-in name (``preferred_username``), which Entra ID lets an organisation
give to someone else later; the object id never changes. ``GET /api/v1/reports/<id>`` now also
compares it. Reports filed before this revision have none and are matched by name as before.
Written by hand to match ``addin_service/db/models.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    """Add ``reports.reporter_oid``."""
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("reporter_oid", sa.String(36), nullable=True))


def downgrade() -> None:
    """Drop ``reports.reporter_oid``."""
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("reporter_oid")
