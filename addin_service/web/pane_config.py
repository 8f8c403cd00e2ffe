"""What the task pane needs before the reporter can act: sign-in details, choices and help.

Served by ``GET /api/v1/pane-config`` without authentication, so it holds nothing secret: the
client id, tenant and scope are the same public values a sign-in page shows.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from marshmallow import Schema, fields

from addin_service.api.schemas import CATEGORIES, NOTE_MAX_LENGTH, SupportSchema
from addin_service.cases.routing import reporter_role_labels
from addin_service.cases.support import support_contacts
from addin_service.settings import Settings

CATEGORY_LABELS: dict[str, str] = {
    "threat-or-violence": "Threat or violence",
    "sexual-harassment": "Sexual harassment",
    "stalking": "Stalking",
    "hate-or-bias": "Hate or bias",
    "bullying": "Bullying",
    "other": "Something else",
}

# The one civil reply the guidance recommends. The reporter sees it in Outlook's reply form and
# chooses whether to send it.
REPLY_TEXT = "I do not want any further contact with you. Please do not contact me again."


class CategorySchema(Schema):
    value = fields.String(required=True, metadata={"description": "What to send as category"})
    label = fields.String(required=True, metadata={"description": "What the reporter reads"})


class MsalBundleSchema(Schema):
    url = fields.String(required=True, metadata={"description": "Same-origin URL of the MSAL.js browser bundle"})
    integrity = fields.String(required=True, metadata={"description": "Subresource integrity (sha384-...)"})


class PaneConfigSchema(Schema):
    """Body of ``GET /api/v1/pane-config``."""

    client_id = fields.String(required=True, metadata={"description": "The add-in's Entra ID application id"})
    tenant_id = fields.String(required=True)
    authority = fields.String(required=True, metadata={"description": "Authority URL for nested app auth"})
    api_scope = fields.String(
        required=True, metadata={"description": "Scope to request: api://<host>/<client id>/access_as_user"}
    )
    msal = fields.Nested(
        MsalBundleSchema,
        allow_none=True,
        required=True,
        metadata={"description": "Where to load MSAL.js from; null when nested app auth is not available"},
    )
    categories = fields.List(fields.Nested(CategorySchema), required=True)
    roles = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": "Notification role → how the reporter reads it"},
    )
    support = fields.Nested(SupportSchema, required=True)
    reply_text = fields.String(
        required=True, metadata={"description": "The civil 'no further contact' reply the pane offers to open"}
    )
    note_max_length = fields.Integer(required=True)


def api_scope(settings: Settings) -> str:
    """The delegated scope the pane asks for.

    An ``ADDIN_AUDIENCE`` entry of the form ``api://<host>/<client id>`` is the App ID URI the
    admin registered; otherwise the Office single sign-on convention
    ``api://<public host>/<client id>`` is assumed.
    """
    bare = f"api://{settings.client_id}"
    for audience in settings.audience:
        uri = audience.rstrip("/")
        if uri.startswith("api://") and uri != bare:
            return f"{uri}/{settings.required_scope}"
    host = urlsplit(settings.public_url).netloc
    return f"api://{host}/{settings.client_id}/{settings.required_scope}"


def build_pane_config(settings: Settings, msal: dict[str, str] | None) -> dict[str, Any]:
    """The pane-config body; ``msal`` says where the MSAL.js bundle is served, if it is."""
    return {
        "client_id": settings.client_id or "",
        "tenant_id": settings.tenant_id or "",
        "authority": f"{settings.authority}/{settings.tenant_id}",
        "api_scope": api_scope(settings),
        "msal": msal,
        "categories": [{"value": c, "label": CATEGORY_LABELS[c]} for c in CATEGORIES],
        "roles": reporter_role_labels(settings.internal_affairs_name, settings.investigations_name),
        "support": support_contacts(settings),
        "reply_text": REPLY_TEXT,
        "note_max_length": NOTE_MAX_LENGTH,
    }
