"""The request schemas refuse what no store, log or hash could hold, before anything is captured."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import Schema, ValidationError, fields

from addin_service.api import schemas
from addin_service.api.schemas import ReportRequestSchema, RequestSchema

VALID = {"item_id": "AAMkAGI2TG93AAA=", "category": "bullying"}


def errors_of(body: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ValidationError) as caught:
        ReportRequestSchema().load(body)
    messages = caught.value.messages
    assert isinstance(messages, dict)
    return messages


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("item_id", "AAMk\ud800"),
        ("id_format", "ews\udfff"),
        ("mailbox", "\ud800@contoso.com"),  # matches the published address pattern, yet is not text
        ("category", "\udc00other"),
        ("note", "\ud800x"),
        ("note", "x\udfff"),
    ],
)
def test_a_lone_surrogate_is_refused_as_not_text(field: str, value: str) -> None:
    errors = errors_of({**VALID, field: value})

    assert errors[field] == [schemas.NOT_TEXT]


def test_a_surrogate_pair_decoded_from_json_is_ordinary_text() -> None:
    loaded = ReportRequestSchema().load({**VALID, "note": "\U0001f600 still here"})

    assert loaded["note"] == "\U0001f600 still here"


def every_request_schema() -> list[type[Schema]]:
    found: list[type[Schema]] = []
    pending: list[type[Schema]] = [RequestSchema]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return [cls for cls in found if cls is not RequestSchema]


def test_every_string_field_of_every_request_schema_checks_for_text() -> None:
    assert ReportRequestSchema in every_request_schema()
    for cls in every_request_schema():
        for name, field in cls._declared_fields.items():
            if isinstance(field, fields.String):
                assert isinstance(field, schemas.Text), f"{cls.__name__}.{name}"


@pytest.mark.parametrize(
    "field",
    [
        fields.String(),
        fields.List(fields.String()),
        fields.Dict(keys=fields.String(), values=schemas.Text()),
        fields.Nested(Schema),  # a plain marshmallow Schema: its strings go unchecked
    ],
    ids=["string", "list-of-strings", "dict-keys", "nested-plain-schema"],
)
def test_a_request_schema_with_a_plain_string_cannot_be_built(field: fields.Field[Any]) -> None:
    careless = type("Careless", (RequestSchema,), {"name": field})

    with pytest.raises(TypeError, match="Careless.name"):
        careless()


@pytest.mark.parametrize("value", [1, 0, 1.0, 0.0, "true", "false", "yes", [], {}])
@pytest.mark.parametrize("field", ["feels_unsafe", "include_related"])
def test_only_json_true_or_false_is_a_boolean(field: str, value: object) -> None:
    assert field in errors_of({**VALID, field: value})


@pytest.mark.parametrize("value", [True, False])
@pytest.mark.parametrize("field", ["feels_unsafe", "include_related"])
def test_json_true_and_false_are_booleans(field: str, value: bool) -> None:
    assert ReportRequestSchema().load({**VALID, field: value})[field] is value


def test_a_null_boolean_is_refused() -> None:
    assert "feels_unsafe" in errors_of({**VALID, "feels_unsafe": None})
