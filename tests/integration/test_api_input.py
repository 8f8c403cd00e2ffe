"""What POST /api/v1/reports refuses before anything is captured: text that is not Unicode, numbers
posing as booleans, bodies that are not JSON or come in a coding the service does not decode.

Each refusal is checked on a real item in the EWS double, so a 400 or 415 proves nothing was sealed.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.stack import Stack, running_stack

MIME = b"From: Sam <sam@fabrikam.example>\r\nTo: alex@contoso.com\r\nSubject: s\r\nMessage-ID: <in@x>\r\n\r\nhi\r\n"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path) as s:
        yield s


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status and body["detail"]
    return body


def nothing_sealed(stack: Stack) -> bool:
    root = stack.evidence_root
    return not list(root.glob("HR-*/R-*")) and not (root.exists() and list((root / ".tmp").glob("*")))


def post_raw(stack: Stack, data: bytes, **headers: str) -> Any:
    return stack.client.post("/api/v1/reports", data=data, headers={**stack.auth(), **headers})


# --- 1. text that is not Unicode ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "escaped"),
    [("note", "\\ud800x"), ("mailbox", "\\ud800@contoso.com"), ("note", "tail\\udfff")],
)
def test_a_lone_surrogate_on_a_real_item_is_a_400_and_nothing_is_sealed(stack: Stack, field: str, escaped: str) -> None:
    item = stack.add_message(MIME)
    raw = f'{{"item_id": "{item}", "category": "other", "{field}": "{escaped}"}}'.encode()

    body = problem(post_raw(stack, raw, **{"Content-Type": "application/json"}), 400)

    assert field in body["errors"]
    assert nothing_sealed(stack)
    assert stack.ews.count("GetItem") == 0


def test_a_lone_surrogate_in_an_unknown_member_name_is_a_400(stack: Stack) -> None:
    raw = b'{"item_id": "AAMk", "category": "other", "\\ud800": 1}'

    problem(post_raw(stack, raw, **{"Content-Type": "application/json"}), 400)


def test_an_unknown_member_name_comes_back_short_and_as_text(stack: Stack) -> None:
    raw = b'{"item_id": "AAMk", "category": "other", "\\ud800\\u0000<b>' + b"x" * 5000 + b'": 1}'

    body = problem(post_raw(stack, raw, **{"Content-Type": "application/json"}), 400)

    [name] = [n for n in body["errors"] if n not in ("item_id", "category")]
    assert name.startswith("\ufffd\ufffd<b>x") and len(name) == 64 and name.endswith("\u2026")
    json.dumps(body, ensure_ascii=False).encode("utf-8")  # no lone surrogate left to trip a strict client


def test_an_idempotency_key_that_is_not_ascii_is_a_400(stack: Stack) -> None:
    # Header values reach the app as Latin-1 text (PEP 3333): never a surrogate, but never ASCII either.
    item = stack.add_message(MIME)
    response = stack.client.post(
        "/api/v1/reports",
        json={"item_id": item, "category": "other"},
        headers={**stack.auth(), "Idempotency-Key": "caf\u00e9"},
    )

    assert "Idempotency-Key" in problem(response, 400)["errors"]
    assert nothing_sealed(stack)


# --- 2. booleans are JSON true/false only ---------------------------------------------------------


@pytest.mark.parametrize("value", [1, 1.0, 0])
def test_a_number_is_not_a_boolean(stack: Stack, value: object) -> None:
    item = stack.add_message(MIME)

    body = problem(stack.report(item, feels_unsafe=value), 400)

    assert "feels_unsafe" in body["errors"]
    assert nothing_sealed(stack)


# --- 3. media type and content coding -------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/merge-patch+json",
        "application/json; charset=iso-8859-1",
    ],
)
def test_a_body_that_is_not_application_json_is_a_415(stack: Stack, content_type: str | None) -> None:
    item = stack.add_message(MIME)
    raw = json.dumps({"item_id": item, "category": "other"}).encode()
    headers = {"Content-Type": content_type} if content_type else {}

    problem(post_raw(stack, raw, **headers), 415)

    assert nothing_sealed(stack)


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON;charset=UTF-8"])
def test_application_json_with_a_utf8_charset_is_accepted(stack: Stack, content_type: str) -> None:
    item = stack.add_message(MIME)
    raw = json.dumps({"item_id": item, "category": "other"}).encode()

    assert post_raw(stack, raw, **{"Content-Type": content_type}).status_code == 201


def test_a_compressed_body_is_a_415_that_asks_for_identity(stack: Stack) -> None:
    item = stack.add_message(MIME)
    raw = gzip.compress(json.dumps({"item_id": item, "category": "other"}).encode())

    response = post_raw(stack, raw, **{"Content-Type": "application/json", "Content-Encoding": "gzip"})

    problem(response, 415)
    assert response.headers["Accept-Encoding"] == "identity"
    assert nothing_sealed(stack)


def test_an_identity_content_coding_is_no_coding_at_all(stack: Stack) -> None:
    item = stack.add_message(MIME)
    raw = json.dumps({"item_id": item, "category": "other"}).encode()

    response = post_raw(stack, raw, **{"Content-Type": "application/json", "Content-Encoding": "identity"})

    assert response.status_code == 201


def test_json_that_does_not_parse_is_still_a_400(stack: Stack) -> None:
    problem(post_raw(stack, b'{"item_id": ', **{"Content-Type": "application/json"}), 400)


def test_json_nested_deeper_than_the_parser_follows_is_a_400_not_a_crash(stack: Stack) -> None:
    depth = 20_000  # 40 KB: under the body limit, far over Python's recursion limit
    raw = b'{"item_id": ' + b"[" * depth + b"]" * depth + b"}"

    problem(post_raw(stack, raw, **{"Content-Type": "application/json"}), 400)


def test_a_body_that_is_not_utf8_is_a_400_whatever_json_it_spells(stack: Stack) -> None:
    item = stack.add_message(MIME)
    payload = json.dumps({"item_id": item, "category": "other"})

    for encoded in (payload.encode("utf-16"), payload.encode("utf-32-le"), payload.encode("latin-1") + b"\xff"):
        problem(post_raw(stack, encoded, **{"Content-Type": "application/json"}), 400)
    assert nothing_sealed(stack)
    with_bom = post_raw(stack, b"\xef\xbb\xbf" + payload.encode(), **{"Content-Type": "application/json"})
    assert with_bom.status_code == 201


def test_the_openapi_document_lists_the_415(stack: Stack) -> None:
    spec = stack.client.get("/openapi.json").get_json()
    answer = spec["paths"]["/api/v1/reports"]["post"]["responses"]["415"]

    assert "Content-Encoding" in answer["description"]
    assert "Accept-Encoding" in answer["headers"]


@pytest.mark.parametrize("path", ["/api/v1/reports", "/healthz", "/openapi.json"])
def test_options_is_a_method_the_routes_do_not_take_not_an_empty_html_page(stack: Stack, path: str) -> None:
    preflight = {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"}

    response = stack.client.open(path, method="OPTIONS", headers=preflight)

    problem(response, 405)
    assert "OPTIONS" not in response.headers["Allow"]
    assert "Access-Control-Allow-Origin" not in response.headers


def test_a_problem_repeats_a_long_or_odd_path_only_shortened_and_as_text(stack: Stack) -> None:
    response = stack.client.get("/api/v1/reports/R-%00" + "R" * 10_000, headers=stack.auth())

    body = problem(response, 404)

    assert len(body["instance"]) == 256 and body["instance"].endswith("\u2026")
    assert body["instance"].startswith("/api/v1/reports/R-\ufffdRRR")
