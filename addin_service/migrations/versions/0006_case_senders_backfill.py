"""Fill ``case_senders`` for the reports filed before revision 0004.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

Revision 0004 only created the table, so a case filed before it named nobody: after an upgrade, a
supervisor named as the Sender of one of its messages was told about its next report, sent the
notifications still queued for them, and could open the case and acknowledge it. The database
already says who those reports named: each case's sender, and the routing decisions of each
``report.filed`` audit entry, which have listed the claimed sender addresses and the managers
matched to them in the same sentences since routing began. Those addresses are added here; rows
already present are kept. Directory aliases of a claimed sender were never recorded before 0004,
so only the addresses themselves are added (routing still matches aliases the directory knows).

A confirmation ("I have seen this") given by someone a case names as a sender, and not yet
followed by an escalation, stops counting, as it does when a report names them from now on: the
escalation it held off goes ahead. An ``acknowledgement.withdrawn`` audit entry says whose.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_CASES = sa.table("cases", sa.column("id", sa.String), sa.column("sender_address", sa.Text))
_AUDIT = sa.table(
    "audit_log", sa.column("action", sa.String), sa.column("case_id", sa.String), sa.column("details", sa.Text)
)
_SENDERS = sa.table("case_senders", sa.column("case_id", sa.String), sa.column("address", sa.Text))
_OUTBOX = sa.table(
    "outbox",
    sa.column("id", sa.Integer),
    sa.column("case_id", sa.String),
    sa.column("report_id", sa.String),
    sa.column("role", sa.String),
    sa.column("recipient", sa.Text),
    sa.column("acknowledged_at", sa.DateTime(timezone=True)),
    sa.column("escalated_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
_AUDIT_ENTRY = sa.table(
    "audit_log",
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("actor", sa.Text),
    sa.column("action", sa.String),
    sa.column("case_id", sa.String),
    sa.column("report_id", sa.String),
    sa.column("details", sa.Text),
)

# The sentences of addin_service.cases.routing that name senders, as written since it began.
_NAMING = (
    re.compile(r"^Claimed sender address\(es\): (?P<list>.+)\.$"),
    re.compile(r"^The claimed sender matches the reporter's supervisor \((?P<list>[^()]+)\)"),
    re.compile(r"^The claimed sender matches a higher manager in the reporter's chain \((?P<list>[^()]+)\)"),
    re.compile(r"^Higher manager\(s\) in the chain also match the claimed sender and are skipped too: (?P<list>.+)\.$"),
)
_ADDRESS = re.compile(r'^(?:"[^"]+"|[^@\s,()<>"]+)@[^@\s,()<>"]+$')
_LIST_ITEM = re.compile(r'(?:"[^"]*"|[^,"])+')  # a comma inside a quoted local part separates nothing
_CHUNK = 1000  # ids per UPDATE: PostgreSQL takes at most 65,535 parameters in one statement


def upgrade() -> None:
    """Add every address the earlier reports of each case named."""
    connection = op.get_bind()
    named: set[tuple[str, str]] = set()
    for case_id, address in connection.execute(
        sa.select(_CASES.c.id, _CASES.c.sender_address).where(_CASES.c.sender_address.is_not(None))
    ):
        named.update((case_id, a) for a in _addresses(address))
    filed = sa.select(_AUDIT.c.case_id, _AUDIT.c.details).where(
        _AUDIT.c.action == "report.filed", _AUDIT.c.case_id.is_not(None)
    )
    for case_id, details in connection.execute(filed):
        for sentence in _decisions(details):
            for pattern in _NAMING:
                match = pattern.match(sentence)
                if match:
                    named.update((case_id, a) for a in _addresses(match.group("list")))
    known = {(c, a) for c, a in connection.execute(sa.select(_SENDERS.c.case_id, _SENDERS.c.address))}
    cases = {row[0] for row in connection.execute(sa.select(_CASES.c.id))}
    rows = [{"case_id": c, "address": a} for c, a in sorted(named - known) if c in cases]
    if rows:
        op.bulk_insert(_SENDERS, rows)
    _withdraw_acknowledgements(connection, named | known)


def _withdraw_acknowledgements(connection: sa.Connection, named: set[tuple[str, str]]) -> None:
    now = datetime.now(UTC)
    if connection.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # stored as naive UTC there (models.UTCDateTime)
    acked = sa.select(_OUTBOX.c.id, _OUTBOX.c.case_id, _OUTBOX.c.report_id, _OUTBOX.c.role, _OUTBOX.c.recipient).where(
        _OUTBOX.c.acknowledged_at.is_not(None), _OUTBOX.c.escalated_at.is_(None), _OUTBOX.c.role != "reporter"
    )
    senders = named | {(case_id, _without_subaddress(address)) for case_id, address in named}  # sam+hr@ is sam@
    withdrawn = [
        row for row in connection.execute(acked)
        if any((row.case_id, a) in senders for a in (row.recipient.strip().lower(), _without_subaddress(row.recipient)))
    ]
    if not withdrawn:
        return
    ids = [row.id for row in withdrawn]
    for start in range(0, len(ids), _CHUNK):
        connection.execute(
            sa.update(_OUTBOX)
            .where(_OUTBOX.c.id.in_(ids[start : start + _CHUNK]))
            .values(acknowledged_at=None, updated_at=now)
        )
    why = "The case names them as a sender: their confirmation no longer stops the escalation."
    op.bulk_insert(
        _AUDIT_ENTRY,
        [
            {
                "at": now,
                "actor": "addin-service",
                "action": "acknowledgement.withdrawn",
                "case_id": row.case_id,
                "report_id": row.report_id,
                "details": json.dumps(
                    {"outbox_id": row.id, "role": row.role, "recipient": row.recipient, "why": why}, sort_keys=True
                ),
            }
            for row in withdrawn
        ],
    )


def downgrade() -> None:
    """Nothing: the rows are true whichever revision wrote them, and 0004's downgrade drops the table."""


def _decisions(details: str | None) -> Iterator[str]:
    try:
        entry: Any = json.loads(details or "")
    except ValueError:
        return
    routing = entry.get("routing") if isinstance(entry, dict) else None
    decisions = routing.get("decisions") if isinstance(routing, dict) else None
    if isinstance(decisions, list):
        yield from (d for d in decisions if isinstance(d, str))


def _addresses(text: str) -> Iterator[str]:
    """The addresses of a comma-separated list, normalised as routing stores them."""
    for part in _LIST_ITEM.findall(text):
        address = part.strip().strip("<>").strip().lower().rstrip(".")
        if _ADDRESS.match(address):
            yield address


def _without_subaddress(address: str) -> str:
    local, at, domain = address.strip().lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}" if at else address
