"""The demo blueprint: the Outlook look-alike page, its message list and the demo sign-in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from addin_service.demo.web import DemoBackend, DemoMail, DemoMessage
from addin_service.web import assets
from tests.e2e.harness import SEEDS, USER, FakeDemo, TokenBook
from tests.unit.test_web_routes import make_app


@pytest.fixture
def demo_app(tmp_path: Path) -> Flask:
    app = make_app(tmp_path, ADDIN_DEMO="true")
    app.extensions["addin_demo"] = FakeDemo(app.extensions["addin"].authenticator)
    return app


@pytest.fixture
def client(demo_app: Flask) -> FlaskClient:
    return demo_app.test_client()


def test_fake_demo_satisfies_the_runner_protocol() -> None:
    backend: DemoBackend = FakeDemo(TokenBook())

    assert backend.user == USER


def test_demo_page_is_served_under_the_demo_page_policy(client: FlaskClient) -> None:
    response = client.get("/demo")

    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == assets.DEMO_PAGE_CSP
    html = response.get_data(as_text=True)
    assert 'data-pane-url="/taskpane.html"' in html
    assert 'data-token-url="/demo/api/token"' in html
    assert f'data-user="{USER}"' in html
    assert re.search(r'src="/static/demo/outlook\.js\?v=[0-9a-f]{16}" defer', html)
    assert 'src="/static/icons/icon-80.png"' in html


def test_message_list_has_what_the_page_and_the_simulated_host_show(client: FlaskClient) -> None:
    body = client.get("/demo/api/messages").get_json()

    assert body["user"] == USER
    assert len(body["messages"]) == len(SEEDS)
    assert body["messages"][0] == {
        "item_id": SEEDS[0].message.item_id,
        "subject": "You will regret this",
        "from": {"name": "Jordan Miles", "address": "jordan.miles@fabrikam.example"},
        "received_at": "2026-11-24T08:12:00Z",
        "preview": "I know where you park. You will regret going to HR about me.",
        "internet_message_id": "<threat-1@fabrikam.example>",
        "shared_owner": None,
    }


def test_message_list_text_is_data_not_markup(demo_app: Flask) -> None:
    demo_app.extensions["addin_demo"].seeded = [
        DemoMessage("AAMk+x/1=", "<img src=x onerror=alert(1)>", "Eve", "eve@mail.example",
                    "2026-11-24T08:12:00Z", "<script>alert(1)</script>")
    ]

    response = demo_app.test_client().get("/demo/api/messages")

    assert response.mimetype == "application/json"
    assert response.get_json()["messages"][0]["subject"] == "<img src=x onerror=alert(1)>"


def test_demo_sign_in_mints_a_token_the_service_accepts(demo_app: Flask) -> None:
    response = demo_app.test_client().post("/demo/api/token", json={"upn": USER})

    assert response.status_code == 200
    token = response.get_json()["access_token"]
    caller = demo_app.extensions["addin"].authenticator.authenticate(f"Bearer {token}")
    assert caller.upn == USER
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"data": "upn=alex@contoso.com", "content_type": "application/x-www-form-urlencoded"}, "upn"),
        ({"data": '{"upn": "alex@contoso.com"}', "content_type": "text/plain"}, "upn"),
        ({"json": {"upn": 42}}, "upn"),
        ({"json": {"upn": "not an address"}}, "upn"),
        ({"json": ["alex@contoso.com"]}, "upn"),
        ({"json": {"upn": "mallory@contoso.com"}}, "upn"),
    ],
)
def test_demo_sign_in_refuses_anything_but_a_demo_user_as_json(
    client: FlaskClient, kwargs: dict[str, object], field: str
) -> None:
    response = client.post("/demo/api/token", **kwargs)  # type: ignore[arg-type]

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert field in response.get_json()["errors"]


def test_demo_routes_do_not_exist_outside_demo_mode(tmp_path: Path) -> None:
    client = make_app(tmp_path, ADDIN_DEMO="false").test_client()

    assert client.get("/demo").status_code == 404
    assert client.post("/demo/api/token", json={"upn": USER}).status_code == 404


def test_demo_without_the_runners_backend_is_a_server_error_not_an_empty_mailbox(tmp_path: Path) -> None:
    client = make_app(tmp_path, ADDIN_DEMO="true").test_client()

    response = client.get("/demo/api/messages")

    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"


def test_the_mail_page_lists_what_was_sent_newest_first_as_text(demo_app: Flask) -> None:
    demo_app.extensions["addin_demo"].mail = [
        DemoMail(("alex@contoso.com",), "Your report has been filed", "2026-12-03T08:00:00Z", "<p>a</p>", ()),
        DemoMail(("<b>sam</b>@contoso.com",), "Needs <you>", "2026-12-03T08:00:01Z", "<p>b</p>", ("m.eml",)),
    ]
    response = demo_app.test_client().get("/demo/mail")
    page = response.get_data(as_text=True)
    assert response.headers["Content-Security-Policy"] == assets.DEMO_PAGE_CSP
    assert page.index("Needs &lt;you&gt;") < page.index("Your report has been filed")
    assert "&lt;b&gt;sam&lt;/b&gt;@contoso.com" in page and "m.eml" in page
    assert 'href="/demo/mail/1"' in page and 'href="/demo/mail/0"' in page


def test_a_sent_mail_is_served_as_rendered_with_no_script_allowed(demo_app: Flask) -> None:
    demo_app.extensions["addin_demo"].mail = [
        DemoMail(("alex@contoso.com",), "Receipt", "2026-12-03T08:00:00Z", "<p>the receipt</p>", ()),
    ]
    client = demo_app.test_client()
    body = client.get("/demo/mail/0")
    assert body.get_data(as_text=True) == "<p>the receipt</p>"
    assert body.headers["Content-Security-Policy"].startswith("default-src 'none';")
    assert "script-src" not in body.headers["Content-Security-Policy"]
    missing = client.get("/demo/mail/1")
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"


def test_the_demo_page_links_to_the_sent_mail(client: FlaskClient) -> None:
    assert 'href="/demo/mail"' in client.get("/demo").get_data(as_text=True)
