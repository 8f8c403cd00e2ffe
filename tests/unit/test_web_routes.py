"""The task pane page, its static files and /api/v1/pane-config, through Flask's test client."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from addin_service.api.schemas import CATEGORIES, SupportSchema
from addin_service.app import build_app
from addin_service.bootstrap import Container
from addin_service.cases.routing import reporter_role_labels
from addin_service.observability.metrics import Metrics
from addin_service.ratelimit import SlidingWindowLimiter
from addin_service.web import assets
from addin_service.web.pane_config import CATEGORY_LABELS, PaneConfigSchema
from tests.e2e.harness import CLIENT_ID, TENANT_ID, TokenBook, settings_for
from tests.fakes.mailbox import InMemoryMailbox


def make_app(tmp_path: Path, **env: str) -> Flask:
    """The real app; only settings, metrics and the rate limiter are used by these routes."""
    settings = settings_for(tmp_path, **env)
    container = Container(
        settings=settings,
        database=None,  # type: ignore[arg-type]  # not used by the web routes
        repository=None,  # type: ignore[arg-type]
        evidence=None,  # type: ignore[arg-type]
        mailbox=InMemoryMailbox(),
        authenticator=TokenBook(),
        rate_limiter=SlidingWindowLimiter(10, 60),
        metrics=Metrics(),
        filer=None,  # type: ignore[arg-type]
        related=None,  # type: ignore[arg-type]
        submissions=None,  # type: ignore[arg-type]
    )
    return build_app(settings, container=container)


@pytest.fixture
def production(tmp_path: Path) -> FlaskClient:
    return make_app(tmp_path, ADDIN_DEMO="false").test_client()


@pytest.fixture
def demo(tmp_path: Path) -> FlaskClient:
    return make_app(tmp_path, ADDIN_DEMO="true").test_client()


def _config(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/api/v1/pane-config")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    return body


def test_pane_config_offers_every_category_in_order_with_a_human_label(production: FlaskClient) -> None:
    body = _config(production)

    assert [c["value"] for c in body["categories"]] == list(CATEGORIES)
    assert body["categories"][0] == {"value": "threat-or-violence", "label": "Threat or violence"}
    assert all(c["label"] == CATEGORY_LABELS[c["value"]] for c in body["categories"])


def test_pane_config_names_the_investigators_as_configured_like_the_emailed_receipt(tmp_path: Path) -> None:
    client = make_app(
        tmp_path, ADDIN_INTERNAL_AFFAIRS_NAME="Professional Standards", ADDIN_INVESTIGATIONS_NAME="Fraud & Threats Unit"
    ).test_client()

    roles = _config(client)["roles"]

    assert roles == reporter_role_labels("Professional Standards", "Fraud & Threats Unit")
    assert (roles["internal-affairs"], roles["investigations"]) == ("Professional Standards", "Fraud & Threats Unit")


def test_pane_config_carries_what_nested_app_auth_needs(production: FlaskClient) -> None:
    body = _config(production)

    assert body["client_id"] == CLIENT_ID
    assert body["tenant_id"] == TENANT_ID
    assert body["authority"] == f"https://login.microsoftonline.com/{TENANT_ID}"
    assert body["api_scope"] == f"api://127.0.0.1:8000/{CLIENT_ID}/access_as_user"


def test_pane_config_is_valid_against_its_own_schema_and_needs_no_sign_in(production: FlaskClient) -> None:
    body = _config(production)

    assert PaneConfigSchema().validate(body) == {}
    assert SupportSchema().validate(body["support"]) == {}
    assert body["support"]["eap"]["phone"] == "+1 800 555 0100"
    assert body["reply_text"] == "I do not want any further contact with you. Please do not contact me again."
    assert body["note_max_length"] == 4000


def test_pane_config_offers_no_msal_in_demo_mode(demo: FlaskClient) -> None:
    assert _config(demo)["msal"] is None


def test_pane_config_offers_the_vendored_msal_bundle_with_its_integrity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    static = tmp_path / "static"
    bundle = static / assets.MSAL_BUNDLE
    bundle.parent.mkdir(parents=True)
    bundle.write_bytes(b"/*! msal */ var msal = {};")
    monkeypatch.setattr(assets, "STATIC_ROOT", static)
    client = make_app(tmp_path, ADDIN_DEMO="false").test_client()

    msal = _config(client)["msal"]

    digest = base64.b64encode(hashlib.sha384(bundle.read_bytes()).digest()).decode()
    assert msal["integrity"] == f"sha384-{digest}"
    assert msal["url"].startswith("/static/vendor/msal-browser.min.js?v=")
    with client.get(msal["url"]) as served:
        assert served.data == bundle.read_bytes()


def test_taskpane_in_production_loads_office_js_and_its_own_versioned_assets(production: FlaskClient) -> None:
    response = production.get("/taskpane.html")

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<script src="https://appsforoffice.microsoft.com/lib/1/hosted/office.js"></script>' in html
    assert "office-sim.js" not in html
    assert re.search(r'<script src="/static/taskpane\.js\?v=[0-9a-f]{16}" defer></script>', html)
    assert re.search(r'<link rel="stylesheet" href="/static/taskpane\.css\?v=[0-9a-f]{16}">', html)
    assert 'data-reports-url="/api/v1/reports"' in html
    assert response.headers["Cache-Control"] == "no-cache"


def test_taskpane_in_demo_mode_loads_the_simulated_office_host(demo: FlaskClient) -> None:
    html = demo.get("/taskpane.html").get_data(as_text=True)

    assert re.search(r'<script src="/static/demo/office-sim\.js\?v=[0-9a-f]{16}"></script>', html)
    assert "appsforoffice" not in html


def test_taskpane_response_carries_the_pane_content_security_policy(production: FlaskClient) -> None:
    response = production.get("/taskpane.html")

    policy = response.headers["Content-Security-Policy"]
    assert policy.startswith("default-src 'self'; script-src 'self' https://appsforoffice.microsoft.com")
    assert "frame-ancestors 'self' https://outlook.office.com" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_static_file_with_its_current_hash_is_cached_for_a_year(production: FlaskClient) -> None:
    version = assets.version_of("taskpane.js")

    with production.get(f"/static/taskpane.js?v={version}") as response:
        pass

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.mimetype in {"text/javascript", "application/javascript"}


@pytest.mark.parametrize("query", ["", "?v=0000000000000000"])
def test_static_file_without_the_current_hash_must_be_revalidated(production: FlaskClient, query: str) -> None:
    with production.get(f"/static/taskpane.css{query}") as response:
        pass

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["ETag"]


def test_static_file_revalidation_answers_not_modified(production: FlaskClient) -> None:
    with production.get("/static/taskpane.css") as first:
        etag = first.headers["ETag"]

    with production.get("/static/taskpane.css", headers={"If-None-Match": etag}) as response:
        pass

    assert response.status_code == 304


@pytest.mark.parametrize("path", ["/static/../routes.py", "/static/%2e%2e/routes.py", "/static/nope.js",
                                  "/static/templates/taskpane.html"])
def test_static_refuses_anything_outside_the_static_folder(production: FlaskClient, path: str) -> None:
    response = production.get(path)

    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_openapi_documents_pane_config(production: FlaskClient) -> None:
    spec = production.get("/openapi.json").get_json()

    operation = spec["paths"]["/api/v1/pane-config"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PaneConfig"
    }
    assert "api_scope" in spec["components"]["schemas"]["PaneConfig"]["properties"]
