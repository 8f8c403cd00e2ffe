"""'Also save my other messages from this sender': each one filed as its own evidence in the case.

Runs after the reported message is filed. Every related message goes through the same use case
(claim, capture, seal, commit), so each is fully filed or not at all, and one already filed is
simply found again. Related messages do not notify anyone again: the case's people were told with
the report that asked for them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from addin_service.errors import ServiceError
from addin_service.mail.ports import ItemRef, Mailbox, canonical_item_id

if TYPE_CHECKING:
    from addin_service.auth.caller import Caller
    from addin_service.cases.service import ReportCommand, ReportFiler
    from addin_service.db.reports import ReportRepository

log = logging.getLogger("addin_service.cases")
RELATED_LIMIT = 50


@dataclass(frozen=True)
class RelatedOutcome:
    searched: bool  # False when Exchange could not be searched (the report itself is filed)
    found: int
    filed: int
    already_filed: int
    failed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "searched": self.searched,
            "found": self.found,
            "filed": self.filed,
            "already_filed": self.already_filed,
            "failed": self.failed,
        }


class RelatedFiler:
    """Files the reporter's other messages from the sender of a filed report."""

    def __init__(
        self, filer: ReportFiler, mailbox: Mailbox, repository: ReportRepository, limit: int = RELATED_LIMIT
    ) -> None:
        self._filer = filer
        self._mailbox = mailbox
        self._repo = repository
        self._limit = limit

    def file_related(self, caller: Caller, command: ReportCommand, body: dict[str, Any]) -> RelatedOutcome:
        """Find and file the other messages; record the outcome in the first report's answer.

        Never raises: a message that cannot be filed is counted as failed, and a search that
        cannot be made is reported as not searched (the reported message is filed either way).
        """
        from addin_service.cases.service import ReportCommand

        try:
            case = self._repo.get_case(body["case_id"])
            sender = case.sender_address if case is not None else None
            if not sender:
                return RelatedOutcome(True, 0, 0, 0, 0)
            reported = canonical_item_id(command.item_id, command.id_format)
            ref = ItemRef(item_id=reported, mailbox=body["mailbox"], reporter=caller.upn, user_token=caller.token)
            related = self._mailbox.find_from_sender(ref, sender, self._limit)
        except ServiceError as exc:
            log.warning(
                "related messages could not be searched", extra={"event": "related.unsearched", "kind": exc.type_slug}
            )
            return RelatedOutcome(False, 0, 0, 0, 0)
        filed = already = failed = 0
        for item_id in related:
            one = ReportCommand(
                item_id=item_id,
                id_format="ews",
                mailbox=body["mailbox"],
                category=command.category,
                note="",
                feels_unsafe=command.feels_unsafe,
                include_related=False,
            )
            try:
                result = self._filer.file(caller, one, None, notify=False)
            except ServiceError as exc:
                failed += 1
                log.warning("a related message was not filed", extra={"event": "related.failed", "kind": exc.type_slug})
                continue
            if result.created:
                filed += 1
            else:
                already += 1
        outcome = RelatedOutcome(True, len(related), filed, already, failed)
        log.info("related messages filed", extra={"event": "related.filed", **outcome.to_dict()})
        return outcome
