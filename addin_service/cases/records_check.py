"""The evidence ledger against the case database: which sealed packages were filed as reports.

Evidence is sealed before its report is recorded, so a request that fails in between (the database
refused the commit, the process died) leaves a complete, signed package that no report points to;
the reporter's retry then files the message again. Such a package is kept — evidence is never
deleted — but an investigator must be able to tell it from a report. The other direction is a real
problem: a report whose package is not in the ledger, or whose manifest is not the one sealed.

A process stopped between moving a sealed package into place and appending its ledger entry leaves
a genuine package the ledger does not list (``VerifyResult.interrupted``). Without the database it
could also be the newest report cut from the ledger; the database tells the two apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from addin_service.evidence.ports import VerifyProblem, VerifyResult
from addin_service.evidence.verify import INTERRUPTED_SEAL

Package = tuple[str, str]  # (case id, report id)

LEDGER_ENTRY_REMOVED = (
    "package is not in the ledger, but the case database records it as a filed report: its ledger entry was removed"
)


@dataclass
class RecordsCheck:
    unrecorded: list[Package] = field(default_factory=list)  # ledgered, never filed as a report
    stranded: list[Package] = field(default_factory=list)  # sealed, never ledgered nor filed
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


def reconcile(result: VerifyResult, recorded: Mapping[Package, str]) -> RecordsCheck:
    """Compare ``result`` with the database's reports and fold the answer into its problems: the
    database's own problems are added; an interrupted seal no report points to is no problem (it is
    in ``stranded``), and one the database records is headlined as a removed ledger entry."""
    check = compare_records(result.ledgered, recorded)
    check.stranded = sorted(package for package in result.interrupted if package not in recorded)
    problems: list[VerifyProblem] = []
    for problem in result.problems:
        package = (problem.case_id or "", problem.report_id or "")
        if problem.problem == INTERRUPTED_SEAL and package in result.interrupted:
            if package not in recorded:
                continue
            problem = VerifyProblem(problem.case_id, problem.report_id, None, LEDGER_ENTRY_REMOVED)
        problems.append(problem)
    problems += [VerifyProblem(case_id, report_id, None, why) for (case_id, report_id), why in check.problems]
    result.problems = problems
    return check
