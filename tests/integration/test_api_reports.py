"""POST /api/v1/reports end to end: the real service against the EWS and Entra doubles.

Every bad input gets the status DESIGN.md lists, a problem+json body that says what to do, and
leaves no case without its evidence and no evidence without its record.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from addin_service.demo.ews_faults import HttpError, ServerBusy
from addin_service.evidence.files import FileEvidenceStore
from tests.fakes.stack import COLLEAGUE, REPORTER, SHARED, Stack, running_stack

MIME = (
    b"Received: from mx.fabrikam.example (203.0.113.7) by mail.contoso.com; Tue, 24 Nov 2026 09:00:00 +0000\r\n"
    b"From: Sam Stranger <sam@fabrikam.example>\r\n"
    b"To: Alex Doe <alex@contoso.com>\r\n"
    b"Subject: You will regret this\r\n"
    b"Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n"
    b"Message-ID: <threat-1@fabrikam.example>\r\n"
    b"\r\n"
    b"I know where you park.\r\n"
)

# An EWS id whose REST form differs: it holds both "+" and "/".
ID_WITH_PLUS_AND_SLASH = "QUFNa/vv//777//+++///vvv//777//+++///vvv//777//+++///vvv//777//+++///g=="


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path) as s:
        yield s


def reports_in_db(stack: Stack) -> int:
    db = Path(stack.settings.database_url.removeprefix("sqlite:///"))
    with sqlite3.connect(db) as conn:
        return int(conn.execute("select count(*) from reports").fetchone()[0])


def packages_on_disk(stack: Stack) -> list[Path]:
    return sorted(p for p in stack.evidence_root.glob("HR-*/R-*") if p.is_dir())


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status
    assert body["detail"]
    return body


def assert_nothing_filed(stack: Stack) -> None:
    assert reports_in_db(stack) == 0
    assert packages_on_disk(stack) == []


# --- the happy path ----------------------------------------------------------------------------


def test_a_report_is_filed_with_the_message_byte_for_byte(stack: Stack) -> None:
    item = stack.add_message(MIME)
    response = stack.report(item)
    assert response.status_code == 201
    body = response.get_json()
    stored = stack.evidence_root / body["case_id"] / body["report_id"] / "message.eml"
    assert stored.read_bytes() == MIME
    assert body["size"] == len(MIME)
    assert body["mailbox"] == REPORTER


def test_the_transport_headers_are_stored_as_exchange_returned_them(stack: Stack) -> None:
    headers = [("Received", "from a\r\n\tby b; Tue, 24 Nov 2026 09:00:00 +0000"), ("X-Odd", " spaced  ")]
    item = stack.add_message(MIME, headers=headers)
    body = stack.report(item).get_json()
    stored = (stack.evidence_root / body["case_id"] / body["report_id"] / "headers.txt").read_bytes()
    assert stored == b"Received: from a\r\n\tby b; Tue, 24 Nov 2026 09:00:00 +0000\r\nX-Odd:  spaced  \r\n"


def test_filed_evidence_verifies(stack: Stack) -> None:
    stack.report(stack.add_message(MIME))
    result = FileEvidenceStore(stack.evidence_root).verify()
    assert result.ok and result.reports_checked == 1


def test_metadata_records_capture_facts_and_classification(stack: Stack) -> None:
    body = stack.report(stack.add_message(MIME), note="He waits by my car.", feels_unsafe=True).get_json()
    meta = json.loads((stack.evidence_root / body["case_id"] / body["report_id"] / "metadata.json").read_text())
    assert meta["capture"]["reported_by"] == REPORTER
    assert meta["capture"]["adapter"] == "ews"
    assert meta["capture"]["mime_source"] == "ews-mimecontent"
    assert meta["capture"]["captured_at"].endswith("Z")
    assert meta["message"]["message_id"] == "<threat-1@fabrikam.example>"
    assert meta["classification"] == {
        "category": "threat-or-violence",
        "note": "He waits by my car.",
        "feels_unsafe": True,
        "include_related": False,
    }


def test_the_receipt_carries_support_contacts(stack: Stack) -> None:
    body = stack.report(stack.add_message(MIME)).get_json()
    assert body["support"]["eap"]["phone"] == "+1 555 0100"
    assert body["support"]["support_24x7"]["phone"] == "+1 555 0199"
    assert any("emergency" in line for line in body["support"]["guidance"])


def test_the_reporter_can_read_their_report_back(stack: Stack) -> None:
    first = stack.report(stack.add_message(MIME)).get_json()
    again = stack.client.get(f"/api/v1/reports/{first['report_id']}", headers=stack.auth())
    assert again.status_code == 200
    assert again.get_json() == first


def test_nobody_else_can_read_a_report(stack: Stack) -> None:
    first = stack.report(stack.add_message(MIME)).get_json()
    other = stack.client.get(f"/api/v1/reports/{first['report_id']}", headers=stack.auth(COLLEAGUE))
    assert_problem(other, 404)


def test_a_sign_in_name_given_to_someone_else_later_does_not_open_the_first_persons_reports(stack: Stack) -> None:
    """Entra ID lets a name be reused; the object id is the person."""
    first = stack.report(stack.add_message(MIME)).get_json()
    successor = stack.auth(extra_claims={"oid": "0b6f64a4-7f2c-4a65-9d0e-3f8a3c7f4b21"})

    answer = stack.client.get(f"/api/v1/reports/{first['report_id']}", headers=successor)

    assert_problem(answer, 404)


def test_a_sign_in_name_given_to_someone_else_does_not_replay_the_first_persons_report(stack: Stack) -> None:
    item = stack.add_message(MIME)
    first = stack.client.post(
        "/api/v1/reports",
        json={"item_id": item, "category": "bullying"},
        headers={**stack.auth(), "Idempotency-Key": "key-of-the-first-person"},
    )
    assert first.status_code == 201
    successor = stack.auth(extra_claims={"oid": "0b6f64a4-7f2c-4a65-9d0e-3f8a3c7f4b21"})

    same_item = stack.client.post("/api/v1/reports", json={"item_id": item, "category": "bullying"}, headers=successor)
    same_key = stack.client.post(
        "/api/v1/reports",
        json={"item_id": item, "category": "bullying"},
        headers={**successor, "Idempotency-Key": "key-of-the-first-person"},
    )

    for answer in (same_item, same_key):
        body = assert_problem(answer, 403)
        assert first.get_json()["report_id"] not in json.dumps(body)
    again = stack.client.post(
        "/api/v1/reports",
        json={"item_id": item, "category": "bullying"},
        headers={**stack.auth(), "Idempotency-Key": "key-of-the-first-person"},
    )
    assert again.status_code == 200 and again.get_json() == first.get_json()


def test_a_malformed_report_id_is_not_found(stack: Stack) -> None:
    assert_problem(stack.client.get("/api/v1/reports/..%2f..%2fetc", headers=stack.auth()), 404)


# --- idempotency --------------------------------------------------------------------------------


def test_reporting_the_same_item_again_replays_the_first_report(stack: Stack) -> None:
    item = stack.add_message(MIME)
    first = stack.report(item)
    second = stack.report(item, category="other")
    assert second.status_code == 200
    assert second.get_json() == first.get_json()
    assert reports_in_db(stack) == 1


def test_the_rest_form_of_an_id_is_the_same_item(stack: Stack) -> None:
    item = stack.add_message(MIME, item_id=ID_WITH_PLUS_AND_SLASH)
    first = stack.report(item).get_json()
    rest = item.replace("+", "_").replace("/", "-")
    second = stack.report(rest, id_format="rest")
    assert second.status_code == 200
    assert second.get_json() == first


def test_a_message_id_shared_by_two_messages_files_both(stack: Stack) -> None:
    one = stack.add_message(MIME)
    two = stack.add_message(MIME.replace(b"I know where you park.", b"A different body, same Message-ID."))
    assert stack.report(one).status_code == 201
    assert stack.report(two).status_code == 201
    assert reports_in_db(stack) == 2


def test_the_same_idempotency_key_returns_the_first_answer(stack: Stack) -> None:
    item = stack.add_message(MIME)
    first = stack.report(item, key="k-1")
    second = stack.report(item, key="k-1")
    assert (second.status_code, second.get_json()) == (200, first.get_json())


def test_an_idempotency_key_reused_for_another_request_is_refused(stack: Stack) -> None:
    stack.report(stack.add_message(MIME), key="k-2")
    other = stack.report(stack.add_message(MIME + b"x"), key="k-2")
    assert_problem(other, 422)
    assert reports_in_db(stack) == 1


# --- bad requests -------------------------------------------------------------------------------


def test_malformed_json_is_a_400(stack: Stack) -> None:
    response = stack.client.post(
        "/api/v1/reports", data=b"{not json", headers={**stack.auth(), "Content-Type": "application/json"}
    )
    assert_problem(response, 400)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"category": "threat-or-violence"}, "item_id"),
        ({"item_id": "", "category": "other"}, "item_id"),
        ({"item_id": "A" * 5000, "category": "other"}, "item_id"),
        ({"item_id": "../../etc/passwd", "category": "other"}, "item_id"),
        ({"item_id": 42, "category": "other"}, "item_id"),
        ({"item_id": "AAMk", "category": "rude"}, "category"),
        ({"item_id": "AAMk", "category": "other", "id_format": "entry"}, "id_format"),
        ({"item_id": "AAMk", "category": "other", "feels_unsafe": "yes"}, "feels_unsafe"),
        ({"item_id": "AAMk", "category": "other", "mailbox": "not an address"}, "mailbox"),
        ({"item_id": "AAMk", "category": "other", "note": "x" * 4001}, "note"),
        ({"item_id": "AAMk", "category": "other", "note": "nul\x00byte"}, "note"),
        ({"item_id": "AAMk", "category": "other", "surprise": 1}, "surprise"),
    ],
)
def test_invalid_fields_are_named(stack: Stack, body: dict[str, Any], field: str) -> None:
    response = stack.client.post("/api/v1/reports", json=body, headers=stack.auth())
    problem = assert_problem(response, 400)
    assert field in problem["errors"]
    assert_nothing_filed(stack)


def test_a_json_array_is_a_400(stack: Stack) -> None:
    assert_problem(stack.client.post("/api/v1/reports", json=[1, 2], headers=stack.auth()), 400)


def test_a_body_that_is_not_json_is_a_415(stack: Stack) -> None:
    response = stack.client.post("/api/v1/reports", data="item_id=x", headers=stack.auth())
    assert_problem(response, 415)


def test_an_oversized_request_body_is_a_413(stack: Stack) -> None:
    response = stack.client.post(
        "/api/v1/reports",
        data=b'{"note": "' + b"x" * 70_000 + b'"}',
        headers={**stack.auth(), "Content-Type": "application/json"},
    )
    assert_problem(response, 413)


def test_a_bad_idempotency_key_is_a_400(stack: Stack) -> None:
    response = stack.report(stack.add_message(MIME), key="has space")
    assert "Idempotency-Key" in assert_problem(response, 400)["errors"]


# --- who is calling -----------------------------------------------------------------------------


def test_no_token_is_a_401_with_a_bearer_challenge(stack: Stack) -> None:
    response = stack.client.post("/api/v1/reports", json={"item_id": "AAMk", "category": "other"})
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "forge",
    [
        lambda s: s.issuer.factory.forge_unsigned(REPORTER),
        lambda s: s.issuer.factory.forge_hs256_with_public_key(REPORTER),
        lambda s: s.issuer.factory.forge_with_unknown_key(REPORTER),
        lambda s: s.issuer.factory.forge_expired(REPORTER),
        lambda s: s.issuer.mint(REPORTER, audience="api://someone-else"),
        lambda s: s.issuer.mint(REPORTER, tenant="99999999-9999-9999-9999-999999999999"),
        lambda s: s.issuer.mint(REPORTER, scopes=("Mail.Read",)),
        lambda s: "not-a-jwt",
    ],
    ids=["alg-none", "hs256-confusion", "unknown-key", "expired", "wrong-audience", "wrong-tenant",
         "missing-scope", "garbage"],
)
def test_a_bad_token_is_a_401_and_files_nothing(stack: Stack, forge: Any) -> None:
    item = stack.add_message(MIME)
    response = stack.client.post(
        "/api/v1/reports",
        json={"item_id": item, "category": "other"},
        headers={"Authorization": f"Bearer {forge(stack)}"},
    )
    assert_problem(response, 401)
    assert_nothing_filed(stack)


def test_the_token_never_appears_in_an_error(stack: Stack) -> None:
    token = stack.issuer.factory.forge_expired(REPORTER)
    response = stack.client.post(
        "/api/v1/reports", json={"item_id": "AAMk", "category": "other"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert token not in response.get_data(as_text=True)


# --- whose mailbox ------------------------------------------------------------------------------


def test_another_users_item_is_a_403(stack: Stack) -> None:
    item = stack.add_message(MIME, mailbox=COLLEAGUE)
    assert_problem(stack.report(item), 403)
    assert_nothing_filed(stack)


def test_claiming_another_mailbox_is_a_403(stack: Stack) -> None:
    item = stack.add_message(MIME, mailbox=COLLEAGUE)
    assert_problem(stack.report(item, mailbox=COLLEAGUE), 403)


def test_a_shared_mailbox_the_reporter_can_read_is_allowed(stack: Stack) -> None:
    stack.ews.grant(SHARED, REPORTER)
    item = stack.add_message(MIME, mailbox=SHARED)
    response = stack.report(item, mailbox=SHARED)
    assert response.status_code == 201
    assert response.get_json()["mailbox"] == SHARED


def test_an_item_that_is_gone_is_a_404(stack: Stack) -> None:
    assert_problem(stack.report("AAMkAGNoU3VjaEl0ZW0AAAAAAA=="), 404)
    assert_nothing_filed(stack)


# --- Exchange and storage faults ----------------------------------------------------------------


def test_exchange_throttling_briefly_is_retried_and_filed(stack: Stack) -> None:
    item = stack.add_message(MIME)
    stack.ews.inject(ServerBusy(back_off_ms=50), operation="GetItem", times=1)
    assert stack.report(item).status_code == 201


def test_exchange_still_throttling_is_a_503_with_retry_after(stack: Stack) -> None:
    item = stack.add_message(MIME)
    stack.ews.inject(ServerBusy(back_off_ms=400), operation="GetItem", times=None)
    response = stack.report(item)
    body = assert_problem(response, 503)
    assert int(response.headers["Retry-After"]) >= 1
    assert body["retry_after"] == int(response.headers["Retry-After"])
    assert_nothing_filed(stack)


def test_exchange_down_is_a_503(stack: Stack) -> None:
    item = stack.add_message(MIME)
    stack.ews.inject(HttpError(status=503), times=None)
    assert_problem(stack.report(item), 503)
    assert_nothing_filed(stack)


def test_a_retry_after_exchange_recovers_files_once(stack: Stack) -> None:
    item = stack.add_message(MIME)
    stack.ews.inject(HttpError(status=500), times=None)
    assert stack.report(item, key="retry-1").status_code == 503
    stack.ews.faults.clear()
    assert stack.report(item, key="retry-1").status_code == 201
    assert reports_in_db(stack) == 1


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        pytest.param("100", MIME, id="at-once"),
        # Megabytes already flushed to the package's temporary file when the limit is crossed.
        pytest.param("2000000", MIME + b"x" * 3_000_000, id="mid-stream"),
    ],
)
def test_a_message_over_the_limit_is_a_413_and_nothing_is_written(tmp_path: Path, limit: str, message: bytes) -> None:
    with running_stack(tmp_path, ADDIN_MAX_MESSAGE_BYTES=limit) as stack:
        response = stack.report(stack.add_message(message))
        assert_problem(response, 413)
        assert_nothing_filed(stack)
        assert list((stack.evidence_root / ".tmp").iterdir()) == []


def test_an_unwritable_evidence_folder_is_a_503(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the evidence folder should be")
    with running_stack(tmp_path, ADDIN_EVIDENCE_URL=f"file://{blocker}") as stack:
        item = stack.add_message(MIME)
        assert_problem(stack.report(item), 503)
        assert reports_in_db(stack) == 0


def test_a_database_that_is_down_is_a_503(stack: Stack) -> None:
    item = stack.add_message(MIME)
    container = stack.app.extensions["addin"]
    container.database.dispose()
    db_file = Path(stack.settings.database_url.removeprefix("sqlite:///"))
    db_file.chmod(0o000)
    try:
        (db_file.parent / "addin.db-wal").unlink(missing_ok=True)
        db_file.rename(db_file.with_suffix(".moved"))
        db_file.mkdir()  # a folder where the database file was: every connection fails
        assert_problem(stack.report(item), 503)
    finally:
        db_file.rmdir()
        db_file.with_suffix(".moved").rename(db_file)
        db_file.chmod(0o644)


# --- rate limit, health, openapi ----------------------------------------------------------------


def test_too_many_reports_from_one_caller_is_a_429(tmp_path: Path) -> None:
    with running_stack(tmp_path, ADDIN_RATE_LIMIT="2/1h") as stack:
        items = [stack.add_message(MIME + bytes([65 + i])) for i in range(3)]
        assert stack.report(items[0]).status_code == 201
        assert stack.report(items[1]).status_code == 201
        response = stack.report(items[2])
        assert_problem(response, 429)
        assert int(response.headers["Retry-After"]) > 0


def test_readyz_names_what_is_down(stack: Stack) -> None:
    stack.ews.inject(HttpError(status=503), times=None)
    response = stack.client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["exchange"] == "failed"


def test_healthz_touches_nothing(stack: Stack) -> None:
    stack.ews.stop()
    assert stack.client.get("/healthz").status_code == 200


def test_unknown_routes_answer_problem_json(stack: Stack) -> None:
    assert_problem(stack.client.get("/api/v1/nothing-here"), 404)
    refused = stack.client.delete("/api/v1/reports")
    assert_problem(refused, 405)
    assert "POST" in refused.headers["Allow"]  # RFC 9110: a 405 names the methods that are accepted


def test_the_openapi_document_is_valid(stack: Stack) -> None:
    from openapi_spec_validator import validate

    spec = stack.client.get("/openapi.json").get_json()
    validate(spec)
    assert "ReportRequest" in spec["components"]["schemas"]


def test_the_openapi_links_lead_from_a_filed_report_to_reading_it_back(stack: Stack) -> None:
    spec = stack.client.get("/openapi.json").get_json()
    operations = {op["operationId"]: (path, op) for path, ops in spec["paths"].items() for op in ops.values()}
    _, create = operations["createReport"]
    filed = stack.report(stack.add_message(MIME))
    link = create["responses"][str(filed.status_code)]["links"]["GetReport"]
    path, _ = operations[link["operationId"]]

    (name, expression), *_ = link["parameters"].items()
    assert expression.startswith("$response.body#/")  # a JSON pointer into the answer
    value = filed.get_json()[expression.removeprefix("$response.body#/")]
    read_back = stack.client.get(path.replace("{" + name + "}", value), headers=stack.auth())

    assert read_back.status_code == 200
    assert read_back.get_json()["report_id"] == filed.get_json()["report_id"]


def test_the_openapi_document_states_what_the_validation_accepts(stack: Stack) -> None:
    import re

    fields = stack.client.get("/openapi.json").get_json()["components"]["schemas"]["ReportRequest"]["properties"]

    for name, good, bad in (
        ("item_id", "AAMkAGI2TG93AAA=", "AAMk\x1d"),
        ("note", "He said:\tlater\r\nagain", "bell\x07"),
        ("mailbox", "shared@contoso.com", "not an address"),
    ):
        pattern = re.compile(fields[name]["pattern"])
        assert pattern.search(good) and not pattern.search(bad), name


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("item_id", "AAMkAGI2TG93AAA=\n"),
        ("mailbox", "shared@contoso.com\n"),
        ("mailbox", "7\u00fb\x12\x1c@contoso.com"),
        ("mailbox", "0@0." + ".".join(["0" * 62] * 5)),  # 318 characters: more than SMTP (or Exchange) takes
        ("note", "fine\u0000"),
    ],
)
def test_a_trailing_newline_or_control_character_is_refused(stack: Stack, field: str, value: str) -> None:
    body = {"item_id": "AAMkAGI2TG93AAA=", "category": "bullying", field: value}

    problem_body = assert_problem(stack.client.post("/api/v1/reports", json=body, headers=stack.auth()), 400)

    assert field in problem_body["errors"]


def test_api_responses_forbid_framing_and_sniffing(stack: Stack) -> None:
    response = stack.client.get("/healthz")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Strict-Transport-Security" not in response.headers  # served over plain http here


def test_behind_an_https_address_browsers_are_told_to_keep_to_https(tmp_path: Path) -> None:
    with running_stack(tmp_path, ADDIN_PUBLIC_URL="https://reports.contoso.com") as stack:
        for path in ("/healthz", "/api/v1/reports/R-0000000000000000", "/taskpane.html"):
            assert stack.client.get(path).headers["Strict-Transport-Security"] == "max-age=31536000"
