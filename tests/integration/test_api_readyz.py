"""GET /readyz: what the published Readiness schema says, and nothing an anonymous caller should not see."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from addin_service.demo.ews_faults import HttpError
from addin_service.errors import ConfigError
from tests.fakes.stack import Stack, running_stack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path) as s:
        yield s


SECRET = "/srv/secret-place/signing-key.pem"


class MisconfiguredEvidence:
    """The real store, whose readiness probe fails the way a bad ``ADDIN_SIGNING_KEY`` makes it fail."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def check(self) -> None:
        raise ConfigError("ADDIN_SIGNING_KEY", f"cannot read {SECRET} (Permission denied)")


class MisconfiguredSubmissions:
    def submit(self, *args: Any, **kwargs: Any) -> Any:
        raise ConfigError("ADDIN_SIGNING_KEY", f"cannot read {SECRET} (Permission denied)")


@pytest.fixture
def bad_key_stack(stack: Stack) -> Stack:
    container = stack.app.extensions["addin"]
    container.evidence = MisconfiguredEvidence(container.evidence)
    container.submissions = MisconfiguredSubmissions()
    return stack


def published(stack: Stack, status: str) -> tuple[dict[str, Any], str]:
    spec = stack.client.get("/openapi.json").get_json()
    ((media, content),) = spec["paths"]["/readyz"]["get"]["responses"][status]["content"].items()
    # The schema with the document's components beside it, so that its own $refs resolve.
    return {"$ref": content["schema"]["$ref"], "components": spec["components"]}, media


def test_a_ready_service_answers_what_the_document_says(stack: Stack) -> None:
    response = stack.client.get("/readyz")

    schema, media = published(stack, "200")
    assert response.status_code == 200 and response.mimetype == media
    Draft202012Validator(schema).validate(response.get_json())
    assert response.get_json()["checks"] == {"database": "ok", "evidence": "ok", "exchange": "ok"}


def test_a_service_that_is_not_ready_answers_what_the_document_says(stack: Stack) -> None:
    stack.ews.inject(HttpError(status=503), times=None)

    response = stack.client.get("/readyz")

    schema, media = published(stack, "503")
    assert response.status_code == 503 and response.mimetype == media
    body = response.get_json()
    Draft202012Validator(schema).validate(body)
    assert body["checks"] == {"database": "ok", "evidence": "ok", "exchange": "failed"}
    assert int(response.headers["Retry-After"]) >= 1


def test_readiness_shows_no_configuration_to_anonymous_callers(
    bad_key_stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="addin_service.api")

    response = bad_key_stack.client.get("/readyz")

    assert response.status_code == 503
    text = response.get_data(as_text=True)
    assert "secret-place" not in text and "ADDIN_SIGNING_KEY" not in text
    assert response.get_json()["checks"]["evidence"] == "failed"
    logged = [r for r in caplog.records if r.name == "addin_service.api" and getattr(r, "check", None) == "evidence"]
    assert logged and logged[0].levelno == logging.WARNING
    assert "secret-place" in str(getattr(logged[0], "detail", ""))


def test_a_reporter_is_not_shown_configuration_either(bad_key_stack: Stack) -> None:
    item = bad_key_stack.add_message(b"From: a@fabrikam.example\r\nSubject: s\r\n\r\nx\r\n")

    response = bad_key_stack.report(item)

    assert response.status_code == 500
    text = response.get_data(as_text=True)
    assert "secret-place" not in text and "ADDIN_SIGNING_KEY" not in text


def test_a_torn_last_ledger_line_makes_the_service_not_ready(stack: Stack) -> None:
    """Every report would get 503 until an administrator acts: a load balancer must know."""
    item = stack.add_message(b"From: a@fabrikam.example\r\nSubject: s\r\n\r\nx\r\n")
    assert stack.report(item).status_code == 201
    ledger = stack.evidence_root / "ledger" / "ledger.jsonl"
    ledger.chmod(0o644)
    with ledger.open("ab") as fh:
        fh.write(b'{"sequence": 2, "case_')  # a write cut short

    response = stack.client.get("/readyz")

    assert response.status_code == 503
    assert response.get_json()["checks"]["evidence"] == "failed"


def test_a_ledger_lock_held_elsewhere_makes_the_service_not_ready(stack: Stack) -> None:
    assert stack.client.get("/readyz").status_code == 200  # the store's folders exist now
    lock = os.open(stack.evidence_root / "ledger" / "ledger.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process sealing, stuck
        response = stack.client.get("/readyz")
    finally:
        os.close(lock)

    assert response.status_code == 503
    assert response.get_json()["checks"]["evidence"] == "failed"
    assert stack.client.get("/readyz").status_code == 200
