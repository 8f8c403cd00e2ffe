"""Storage: the database connection, the tables, their migrations and the filing repository.

``Database`` owns the engine; ``ReportRepository`` is what the use cases call. Nothing here
connects at import time.
"""

from __future__ import annotations

from addin_service.db.database import Database, head_revision
from addin_service.db.reports import (
    AlreadyFiled,
    AuditEntry,
    Case,
    CaseReserver,
    ChosenCase,
    Lookup,
    NewCase,
    NewReport,
    Report,
    ReportRepository,
    item_key,
    message_id_key,
)

__all__ = [
    "AlreadyFiled",
    "AuditEntry",
    "Case",
    "CaseReserver",
    "ChosenCase",
    "Database",
    "Lookup",
    "NewCase",
    "NewReport",
    "Report",
    "ReportRepository",
    "head_revision",
    "item_key",
    "message_id_key",
]
