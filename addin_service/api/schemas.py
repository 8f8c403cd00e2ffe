"""Marshmallow schemas: the single source of truth for validation, responses and /openapi.json."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from addin_service.mail.ports import ITEM_ID_MAX_LENGTH

CATEGORIES = (
    "threat-or-violence",
    "sexual-harassment",
    "stalking",
    "hate-or-bias",
    "bullying",
    "other",
)
NOTE_MAX_LENGTH = 4000
MAX_ADDRESS_LENGTH = 254
# EWS ids are standard base64, REST ids URL-safe base64; both may end in '=' padding.
_ITEM_ID = re.compile(r"^[A-Za-z0-9+/_=-]+$")
# Control characters other than TAB, LF and CR have no place in a note (and PostgreSQL text
# cannot hold NUL).
_TEXT = re.compile(r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")
# The local part excludes whitespace and control characters spelled out, not as \s: Python's \s and
# JSON Schema's (ECMA-262) differ, and the pattern is published in /openapi.json.
_EMAIL = re.compile(
    r"^[^@<>\"(),;:\\\[\]\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$"
)

STRICT_TRUE = {True}
STRICT_FALSE = {False}


class FullMatch(validate.Regexp):
    """``validate.Regexp`` that must match the whole value (``re.match`` with ``$`` lets a trailing
    newline through). Being a ``Regexp``, its pattern is published in /openapi.json, so clients and
    fuzzers know what is accepted before they send it."""

    def __call__(self, value: Any) -> Any:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


def _strict_bool(**kwargs: Any) -> fields.Boolean:
    """Only JSON true/false: "yes" or 1 are errors, not guesses."""
    return fields.Boolean(truthy=STRICT_TRUE, falsy=STRICT_FALSE, **kwargs)


class ReportRequestSchema(Schema):
    """Body of ``POST /api/v1/reports``."""

    class Meta:
        unknown = RAISE

    item_id = fields.String(
        required=True,
        validate=[
            validate.Length(min=1, max=ITEM_ID_MAX_LENGTH),
            FullMatch(_ITEM_ID, error="Not an Exchange item id: only base64 characters are allowed."),
        ],
        metadata={"description": "Office.context.mailbox.item.itemId (EWS format) or its REST form."},
    )
    id_format = fields.String(
        load_default="ews",
        validate=validate.OneOf(["ews", "rest"]),
        metadata={"description": "Which form item_id is in: desktop and web give ews, mobile rest."},
    )
    mailbox = fields.String(
        load_default=None,
        allow_none=True,
        # 254: the longest address SMTP can carry (RFC 5321 path limit); Exchange refuses longer ones.
        validate=[validate.Length(max=MAX_ADDRESS_LENGTH), FullMatch(_EMAIL, error="Not an email address.")],
        metadata={"description": "SMTP address of the mailbox that holds the item; default the caller's own."},
    )
    category = fields.String(required=True, validate=validate.OneOf(CATEGORIES))
    note = fields.String(
        load_default="",
        validate=[
            validate.Length(max=NOTE_MAX_LENGTH),
            FullMatch(_TEXT, error="The note may not contain control characters."),
        ],
        metadata={"description": "Optional words from the reporter; evidence only, never sent to the supervisor."},
    )
    feels_unsafe = _strict_bool(load_default=False)
    include_related = _strict_bool(load_default=False)



class NotificationSchema(Schema):
    role = fields.String(required=True, metadata={"description": "supervisor, skip-level, security, ..."})
    status = fields.String(required=True, metadata={"description": "queued, sent, failed or dead"})
    urgent = fields.Boolean(required=True)


class ContactSchema(Schema):
    name = fields.String(required=True)
    phone = fields.String(required=True)
    url = fields.String(required=True)


class SupportSchema(Schema):
    eap = fields.Nested(ContactSchema, required=True)
    support_24x7 = fields.Nested(ContactSchema, required=True)
    incident_response = fields.Nested(ContactSchema, required=True)
    emergency_number = fields.String(required=True)
    guidance = fields.List(fields.String(), required=True)


class RelatedSchema(Schema):
    """What happened to "also save my other messages from this sender"."""

    searched = fields.Boolean(required=True, metadata={"description": "false if Exchange could not be searched"})
    found = fields.Integer(required=True)
    filed = fields.Integer(required=True)
    already_filed = fields.Integer(required=True)
    failed = fields.Integer(required=True)


class ReportResponseSchema(Schema):
    """Body of ``201`` (and of ``200`` when an idempotent retry replays the first answer)."""

    case_id = fields.String(required=True)
    report_id = fields.String(required=True)
    mailbox = fields.String(required=True)
    sha256 = fields.String(required=True, metadata={"description": "sha256:<hex> of message.eml"})
    size = fields.Integer(required=True, metadata={"description": "bytes in message.eml"})
    created_at = fields.String(required=True, metadata={"description": "UTC ISO 8601 with Z"})
    category = fields.String(required=True)
    urgent = fields.Boolean(required=True)
    notifications = fields.List(fields.Nested(NotificationSchema), required=True)
    support = fields.Nested(SupportSchema, required=True)
    related = fields.Nested(RelatedSchema, metadata={"description": "present when include_related was asked"})


class ProblemSchema(Schema):
    """RFC 9457 problem details, the one error shape everywhere."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    instance = fields.String()
    request_id = fields.String()
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "field name → messages, for 400 validation errors"},
    )
    retry_after = fields.Integer()


class HealthSchema(Schema):
    status = fields.String(required=True)


class ReadinessSchema(Schema):
    status = fields.String(required=True)
    checks = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
