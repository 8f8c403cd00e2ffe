"""The demo's web side: an imitation of Outlook's reading view that opens the real task pane.

Registered only when ``ADDIN_DEMO`` is true. The demo mailbox and sign-in are provided by the
demo runner, which puts an object implementing :class:`DemoBackend` at
``app.extensions["addin_demo"]``; this module only reads it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from flask import Blueprint, Response, current_app, json, render_template, request, url_for

from addin_service.api.problems import problem
from addin_service.web import assets
from addin_service.web.routes import asset_url

_WEB_TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"
_UPN = re.compile(r"^[^@\s<>\"(),;:\\\[\]]{1,64}@[A-Za-z0-9.-]{1,253}$")

bp = Blueprint("demo", __name__, url_prefix="/demo", template_folder=str(_WEB_TEMPLATES))


@dataclass(frozen=True)
class DemoMessage:
    """One message in the demo mailbox, as the message list shows it."""

    item_id: str  # EWS-format item id, as Outlook on the web would report it
    subject: str
    from_name: str
    from_address: str
    received_at: str  # UTC ISO 8601 with Z
    preview: str  # a short plain-text preview; shown as text, never as HTML
    internet_message_id: str | None = None
    shared_owner: str | None = None  # set when the message sits in a shared mailbox


@dataclass(frozen=True)
class DemoMail:
    """A notification the service sent in the demo, as its recipient would get it."""

    to: tuple[str, ...]
    subject: str
    sent_at: str  # UTC ISO 8601 with Z
    html: str  # the body the service rendered (its own template, every value escaped)
    attachments: tuple[str, ...]  # file names


class DemoBackend(Protocol):
    """What the demo runner provides at ``app.extensions["addin_demo"]``."""

    user: str  # the signed-in demo user, e.g. "alex@contoso.com"

    def messages(self) -> list[DemoMessage]:
        """The demo mailbox's messages, newest first."""
        ...

    def token_for(self, upn: str) -> str:
        """An access token for this service's API, for a demo user.

        :raises KeyError: there is no such demo user.
        """
        ...

    def sent_mail(self) -> list[DemoMail]:
        """The notifications the service has sent so far, oldest first."""
        ...


def _backend() -> DemoBackend:
    backend: DemoBackend | None = current_app.extensions.get("addin_demo")
    if backend is None:
        raise RuntimeError("the demo runner did not provide app.extensions['addin_demo']")
    return backend


def _display_name(upn: str) -> str:
    local = upn.split("@", 1)[0]
    return " ".join(part.capitalize() for part in re.split(r"[._-]+", local) if part)


@bp.get("")
@bp.get("/")
def outlook() -> Response:
    """The demo Outlook page."""
    backend = _backend()
    html = render_template(
        "demo/outlook.html",
        asset=asset_url,
        messages_url=url_for("demo.messages"),
        token_url=url_for("demo.token"),
        pane_url=url_for("web.taskpane"),
        mail_url=url_for("demo.mail"),
        user=backend.user,
        user_name=_display_name(backend.user),
    )
    return _html(html, assets.DEMO_PAGE_CSP, assets.REVALIDATE)


@bp.get("/api/messages")
def messages() -> Response:
    """The demo mailbox: who is signed in and the messages they can report."""
    backend = _backend()
    body = {
        "user": backend.user,
        "messages": [
            {
                "item_id": m.item_id,
                "subject": m.subject,
                "from": {"name": m.from_name, "address": m.from_address},
                "received_at": m.received_at,
                "preview": m.preview,
                "internet_message_id": m.internet_message_id,
                "shared_owner": m.shared_owner,
            }
            for m in backend.messages()
        ],
    }
    return Response(json.dumps(body), mimetype="application/json")


@bp.post("/api/token")
def token() -> Response:
    """The demo sign-in: an access token for a demo user, as Office.auth.getAccessToken would give.

    Only JSON bodies are accepted, so a page on another site cannot ask for a token with a plain
    form post.
    """
    try:
        data = request.get_json(silent=True) if request.is_json else None
    except RecursionError:  # nested deeper than the parser follows: malformed, like any bad JSON
        data = None
    upn = data.get("upn") if isinstance(data, dict) else None
    if not isinstance(upn, str) or not _UPN.fullmatch(upn):
        return problem(
            400,
            "Invalid request",
            'Send {"upn": "<demo user address>"} as application/json.',
            "validation",
            errors={"upn": ["One demo user's email address."]},
        )
    try:
        access_token = _backend().token_for(upn.lower())
    except KeyError:
        return problem(
            400,
            "Invalid request",
            "There is no demo user with that address.",
            "validation",
            errors={"upn": ["Not a demo user."]},
        )
    return Response(json.dumps({"access_token": access_token, "token_type": "Bearer"}), mimetype="application/json")


# A sent notification is shown as its recipient's mail program would show it: our own HTML, which
# may carry links (the case page, "I have seen this") but never needs a script or a remote resource.
_MAIL_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'none'; base-uri 'none'"


@bp.get("/mail")
def mail() -> Response:
    """The mail the service sent in the demo (receipt, supervisor, investigators, security), newest
    first, so a newcomer can read what each person is told and follow its links."""
    sent = _backend().sent_mail()
    html = render_template(
        "demo/mail.html",
        asset=asset_url,
        mails=[(index, item) for index, item in reversed(list(enumerate(sent)))],
        inbox_url=url_for("demo.outlook"),
    )
    return _html(html, assets.DEMO_PAGE_CSP, "no-store")


@bp.get("/mail/<int:index>")
def mail_body(index: int) -> Response:
    """One sent notification's body, exactly as rendered by the service."""
    sent = _backend().sent_mail()
    if index >= len(sent):
        return problem(404, "Not found", "The demo has not sent that many messages.", "not-found")
    return _html(sent[index].html, _MAIL_CSP, "no-store")


def _html(body: str, csp: str, cache_control: str) -> Response:
    response = Response(body, mimetype="text/html")
    response.headers["Content-Security-Policy"] = csp
    response.headers["Cache-Control"] = cache_control
    return response
