"""The evidence ledger against the case database: which sealed packages were filed as reports.

Evidence is sealed before its report is recorded, so a request that fails in between (the database
refused the commit, the process died) leaves a complete, signed package that no report points to;
the reporter's retry then files the message again. Such a package is kept — evidence is never
deleted — but an investigator must be able to tell it from a report. The other direction is a real
problem: a report whose package is not in the ledger, or whose manifest is not the one sealed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

Package = tuple[str, str]  # (case id, report id)


@dataclass
class RecordsCheck:
    unrecorded: list[Package] = field(default_factory=list)  # sealed, never filed as a report
    problems: list[tuple[Package, str]] = field(default_factory=list)


def compare_records(ledgered: Mapping[Package, str], recorded: Mapping[Package, str]) -> RecordsCheck:
    """Compare the ledger's packages (→ manifest sha256) with the database's reports (→ the same)."""
    check = RecordsCheck(unrecorded=sorted(set(ledgered) - set(recorded)))
    for package in sorted(recorded):
        sealed = ledgered.get(package)
        if sealed is None:
            check.problems.append((package, "the case database records this report, but the ledger does not"))
        elif sealed != recorded[package]:
            check.problems.append((package, "the case database records a different manifest than the ledger sealed"))
    return check
