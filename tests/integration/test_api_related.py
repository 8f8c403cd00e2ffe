"""'Also save my other messages from this sender': each is filed as its own evidence, same case."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from addin_service.demo.ews_faults import HttpError
from addin_service.evidence.files import FileEvidenceStore
from tests.fakes.stack import Stack, running_stack

SAM = "sam@fabrikam.example"


def mime(sender: str, n: int) -> bytes:
    head = f"From: Sam <{sender}>\r\nTo: alex@contoso.com\r\nSubject: s{n}\r\nMessage-ID: <rel{n}@fabrikam.example>\r\n"
    return f"{head}\r\nmessage {n}\r\n".encode()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path) as s:
        yield s


def cases_of_reports(stack: Stack) -> list[str]:
    db = Path(stack.settings.database_url.removeprefix("sqlite:///"))
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("select case_id from reports order by created_at")]


def test_other_messages_from_the_sender_are_filed_into_the_same_case(stack: Stack) -> None:
    reported = stack.add_message(mime(SAM, 1))
    stack.add_message(mime(SAM, 2))
    stack.add_message(mime(SAM, 3))
    stack.add_message(mime("someone.else@fabrikam.example", 4))
    response = stack.report(reported, include_related=True)
    assert response.status_code == 201
    body = response.get_json()
    assert body["related"] == {"searched": True, "found": 2, "filed": 2, "already_filed": 0, "failed": 0}
    assert cases_of_reports(stack) == [body["case_id"]] * 3
    assert FileEvidenceStore(stack.evidence_root).verify().reports_checked == 3


def test_a_retry_is_answered_with_what_the_reporter_was_shown(stack: Stack) -> None:
    reported = stack.add_message(mime(SAM, 1))
    stack.add_message(mime(SAM, 2))
    first = stack.report(reported, include_related=True, key="k").get_json()
    again = stack.report(reported, include_related=True, key="k")
    assert (again.status_code, again.get_json()) == (200, first)


def test_messages_already_filed_are_not_filed_twice(stack: Stack) -> None:
    reported = stack.add_message(mime(SAM, 1))
    other = stack.add_message(mime(SAM, 2))
    assert stack.report(other).status_code == 201
    body = stack.report(reported, include_related=True).get_json()
    assert body["related"]["already_filed"] == 1
    assert len(cases_of_reports(stack)) == 2


def test_without_the_option_only_the_reported_message_is_filed(stack: Stack) -> None:
    reported = stack.add_message(mime(SAM, 1))
    stack.add_message(mime(SAM, 2))
    body = stack.report(reported).get_json()
    assert "related" not in body
    assert len(cases_of_reports(stack)) == 1


def test_if_exchange_cannot_be_searched_the_report_is_still_filed(stack: Stack) -> None:
    reported = stack.add_message(mime(SAM, 1))
    stack.add_message(mime(SAM, 2))
    stack.ews.inject(HttpError(status=503), operation="FindItem", times=None)
    response = stack.report(reported, include_related=True)
    assert response.status_code == 201
    assert response.get_json()["related"]["searched"] is False
    assert len(cases_of_reports(stack)) == 1
