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

NOT_TEXT = "Not valid Unicode text: it holds a lone surrogate (such as \\ud800)."


class FullMatch(validate.Regexp):
    """``validate.Regexp`` that must match the whole value (``re.match`` with ``$`` lets a trailing
    newline through). Being a ``Regexp``, its pattern is published in /openapi.json, so clients and
    fuzzers know what is accepted before they send it."""

    def __call__(self, value: Any) -> Any:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class Text(fields.String):
    """A string that is Unicode text. JSON may spell a lone surrogate (``"\\ud800"``) and Python
    decodes it as one; no UTF-8 store, database or hash can hold it, so it is refused here, before
    anything is captured, rather than crash after the evidence is sealed."""

    default_error_messages = {"not_text": NOT_TEXT}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text: str = super()._deserialize(value, attr, data, **kwargs)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise self.make_error("not_text") from None
        return text


class StrictBoolean(fields.Boolean):
    """Only JSON true/false: "yes", 1 or 1.0 are errors, not guesses (``1 == True`` in Python, so a
    ``truthy`` set cannot tell them apart)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if type(value) is not bool:
            raise self.make_error("invalid", input=value)
        return value


class RequestSchema(Schema):
    """Base of every schema that loads client input: unknown members are errors, and every string
    field must be :class:`Text` (checked when the schema is built, so none can be forgotten).

    :raises TypeError: a subclass declares a plain ``fields.String``.
    """

    class Meta:
        unknown = RAISE

    def on_bind_field(self, field_name: str, field_obj: fields.Field[Any]) -> None:
        if not _only_text(field_obj):
            raise TypeError(f"{type(self).__name__}.{field_name} must use Text, not fields.String, for its strings")
        super().on_bind_field(field_name, field_obj)


def _only_text(field: fields.Field[Any] | None) -> bool:
    """Whether every string ``field`` loads (itself, list items, dict keys and values) is ``Text``,
    and every nested schema is a ``RequestSchema`` (which checks its own fields)."""
    if field is None:
        return True
    if isinstance(field, fields.String):
        return isinstance(field, Text)
    if isinstance(field, fields.List):
        return _only_text(field.inner)
    if isinstance(field, fields.Tuple):
        return all(_only_text(inner) for inner in field.tuple_fields)
    if isinstance(field, fields.Mapping):
        return _only_text(field.key_field) and _only_text(field.value_field)
    if isinstance(field, fields.Nested):
        nested = field.nested
        return (isinstance(nested, type) and issubclass(nested, RequestSchema)) or isinstance(nested, RequestSchema)
    return True


class ReportRequestSchema(RequestSchema):
    """Body of ``POST /api/v1/reports``."""

    item_id = Text(
        required=True,
        validate=[
            validate.Length(min=1, max=ITEM_ID_MAX_LENGTH),
            FullMatch(_ITEM_ID, error="Not an Exchange item id: only base64 characters are allowed."),
        ],
        metadata={"description": "Office.context.mailbox.item.itemId (EWS format) or its REST form."},
    )
    id_format = Text(
        load_default="ews",
        validate=validate.OneOf(["ews", "rest"]),
        metadata={"description": "Which form item_id is in: desktop and web give ews, mobile rest."},
    )
    mailbox = Text(
        load_default=None,
        allow_none=True,
        # 254: the longest address SMTP can carry (RFC 5321 path limit); Exchange refuses longer ones.
        validate=[validate.Length(max=MAX_ADDRESS_LENGTH), FullMatch(_EMAIL, error="Not an email address.")],
        metadata={"description": "SMTP address of the mailbox that holds the item; default the caller's own."},
    )
    category = Text(required=True, validate=validate.OneOf(CATEGORIES))
    note = Text(
        load_default="",
        validate=[
            validate.Length(max=NOTE_MAX_LENGTH),
            FullMatch(_TEXT, error="The note may not contain control characters."),
        ],
        metadata={"description": "Optional words from the reporter; evidence only, never sent to the supervisor."},
    )
    feels_unsafe = StrictBoolean(load_default=False)
    include_related = StrictBoolean(load_default=False)


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


def _check() -> fields.String:
    return fields.String(required=True, validate=validate.OneOf(["ok", "failed"]))


class ReadinessChecksSchema(Schema):
    database = _check()
    evidence = _check()
    exchange = _check()


class ReadinessSchema(Schema):
    """Body of ``/readyz``, 200 and 503 alike: check names and ok/failed only, since anyone may ask
    (why a check failed is in the service log)."""

    status = fields.String(required=True, validate=validate.OneOf(["ok", "unavailable"]))
    detail = fields.String(metadata={"description": "present when not ready: a generic sentence"})
    checks = fields.Nested(ReadinessChecksSchema, required=True)
