"""The case page every notification links to: ``GET /cases/<case_id>?access=<token>``.

The link in each email carries a signed, expiring token for that email's outbox row, made with the
acknowledgement links' machinery under its own purpose (``"case"``), so it can neither acknowledge
anything nor open another case. Whoever holds the link sees what the email already told them,
brought up to date: the case's state, how many reports it holds, and per role how many people were
told, how many emails arrived and how many were confirmed seen — never a message, a note, a subject
or an address (see :mod:`~addin_service.notify.case_overview`). Managers who are asked to confirm
get their own "I have seen this" link here too. The page is read-only, so a mail scanner opening it
changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from flask import Blueprint, Response, request

from addin_service.cases.origin import verdict_words
from addin_service.db.database import Database
from addin_service.errors import ServiceError
from addin_service.ids import is_case_id
from addin_service.notify.ack import AckLinks, ExpiredAckToken, InvalidAckToken, html_page, notifications_backend
from addin_service.notify.case_overview import CaseOverview, NotificationStatus, case_overview, notification_status
from addin_service.notify.compose import ACK_ROLES
from addin_service.settings import Settings

log = logging.getLogger("addin_service.notify.case_page")

PURPOSE = "case"
MAX_TOKEN_CHARS = 200


class CasePageBackend(Protocol):
    settings: Settings
    database: Database
    ack_links: AckLinks
    case_links: AckLinks


def case_link(links: AckLinks, case_id: str, dedupe_key: str) -> str:
    """The absolute URL of the case page for the notification with this dedupe key."""
    return f"{links.base_url}/cases/{case_id}?access={links.token(dedupe_key)}"


def role_label(role: str, settings: Settings) -> str:
    """Who a role is, in words that do not depend on who reads the page."""
    return {
        "supervisor": "The reporter's supervisor",
        "skip-level": "The next manager up, told instead of the supervisor",
        "fallback": "The mailbox that stands in when no manager can be told",
        "security": "The security team",
        "internal-affairs": settings.internal_affairs_name,
        "investigations": settings.investigations_name,
        "reporter": "The person who reported (a receipt)",
        "escalation": "Told because nobody confirmed in time",
    }.get(role, role)


bp = Blueprint("case_page", __name__)


def _backend() -> CasePageBackend:
    backend: CasePageBackend = notifications_backend()
    return backend


def _page(status: int, title: str, message: str = "", **context: Any) -> Response:
    return html_page("case_page.html.j2", status, title=title, message=message, **context)


def _not_valid() -> Response:
    return _page(404, "This link is not valid", "Open the whole link from your notification email.")


@bp.get("/cases/<case_id>")
def show(case_id: str) -> Response:
    """The case as the holder of this notification's link may see it."""
    token = request.args.get("access", "")
    if not is_case_id(case_id) or not token or len(token) > MAX_TOKEN_CHARS:
        return _not_valid()
    backend = _backend()
    try:
        key = backend.case_links.verify(token)
    except ExpiredAckToken:
        return _page(410, "This link has expired", "Please ask the security team about this case.")
    except InvalidAckToken:
        return _not_valid()
    try:
        viewer = notification_status(backend.database, key)
        overview = case_overview(backend.database, case_id) if viewer is not None else None
    except ServiceError:
        return _page(503, "Please try again in a moment", "The service could not look up this case.")
    if viewer is None or overview is None or viewer.case_id != case_id:
        return _not_valid()  # a genuine link names its own case: anything else is tampering
    if viewer.named_as_sender:
        # Told before a later report named them as a sender: the case is no longer theirs to follow,
        # and the page must not say why (nor that someone else was told in their place).
        return _not_valid()
    return _page(200, f"Case {case_id}", **_context(backend, overview, viewer, key))


def _context(backend: CasePageBackend, overview: CaseOverview, viewer: NotificationStatus, key: str) -> dict[str, Any]:
    settings = backend.settings
    confirm_url = None
    if viewer.role in ACK_ROLES and viewer.ack_required and viewer.acknowledged_at is None:
        confirm_url = backend.ack_links.link(key)
    return {
        "case": overview,
        # The emails' wording, so that the link's page says what the email did.
        "origin_text": verdict_words(overview.origin).capitalize(),
        "roles": [(role_label(r.role, settings), r) for r in overview.roles],
        "viewer": viewer,
        "viewer_label": role_label(viewer.role, settings),
        "confirm_url": confirm_url,
        "when": lambda value: value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "",
    }
