"""The notification tables (revision ``0002``), on the same declarative ``Base`` as ``db/models.py``.

* ``outbox`` — one row per email to send. Written in the filing transaction, sent by a worker.
  ``state`` moves ``queued → sending → sent``, or back to ``queued`` with a later
  ``next_attempt_at`` after a failure, or to ``dead`` when retrying cannot help or the attempts
  are used up. While a row is ``sending``, ``next_attempt_at`` is when its lease runs out: a
  worker that died mid-send leaves the row to be claimed again after that moment, and the next
  worker first asks the transport whether the message already went out (``sent_check``).
  ``dedupe_key`` is unique: a row is queued at most once per (report, role, recipient), the
  security team and the investigators at most once per campaign (and urgency), and an escalation
  at most once per case.
* ``campaigns`` — which case groups the reports of one ``Message-ID``. The key is the sha256 of the
  Message-ID (never the sender-chosen value itself, see ``db/models.py``), the primary key, so that
  concurrent first reports of one message agree on one case before their evidence is sealed.

Rows never hold a message body, a note or a token: the rendered notification text holds only
case facts, and the security team's copy of the message is read from the evidence store at send
time.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from addin_service.db.models import ID_LENGTH, KEY_LENGTH, Base, UTCDateTime

OUTBOX_STATES = ("queued", "sending", "sent", "dead")
ROLE_LENGTH = 24
# Rows still to be sent. Written out (not bound parameters) so that the planner can prove a query
# with this condition may use the partial index ``ix_outbox_due``, whose condition it is.
PENDING_SQL = "state IN ('queued', 'sending')"
TEMPLATE_LENGTH = 32


class OutboxRow(Base):
    """One notification email and its delivery state."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint("state IN ('queued', 'sending', 'sent', 'dead')", name="state"),
        UniqueConstraint("dedupe_key"),
        Index("ix_outbox_state_next_attempt_at", "state", "next_attempt_at"),
        # The claim's index: only rows still to send, in the order they are due, so taking the next
        # batch reads a batch of entries however long the backlog (see 0003_outbox_due).
        Index(
            "ix_outbox_due",
            "next_attempt_at",
            "id",
            postgresql_where=text(PENDING_SQL),
            sqlite_where=text(PENDING_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    case_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("cases.id"), index=True)
    report_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), ForeignKey("reports.id"))
    role: Mapped[str] = mapped_column(String(ROLE_LENGTH))
    template: Mapped[str] = mapped_column(String(TEMPLATE_LENGTH))
    recipient: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(Text)
    dedupe_key: Mapped[str] = mapped_column(String(KEY_LENGTH))
    subject: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    urgent: Mapped[bool] = mapped_column(Boolean)
    attach_message: Mapped[bool] = mapped_column(Boolean)
    ack_required: Mapped[bool] = mapped_column(Boolean)
    escalate_to: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    sent_check: Mapped[bool] = mapped_column(Boolean)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_token: Mapped[str | None] = mapped_column(String(32))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)


class CampaignRow(Base):
    """The case that groups every report of one ``Message-ID`` (reserved before sealing)."""

    __tablename__ = "campaigns"

    campaign_key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    message_id: Mapped[str] = mapped_column(Text)
    case_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
