"""Content policies and the sign-in scope, from settings alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from addin_service.settings import Settings
from addin_service.web import assets
from addin_service.web.pane_config import api_scope
from tests.e2e.harness import CLIENT_ID, settings_for


def _directives(policy: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for directive in policy.split(";"):
        name, *values = directive.split()
        assert name not in parsed, f"{name} appears twice"
        parsed[name] = values
    return parsed


@pytest.fixture
def production(tmp_path: Path) -> Settings:
    return settings_for(tmp_path, ADDIN_DEMO="false")


def test_production_pane_runs_only_its_own_scripts_and_office_js(production: Settings) -> None:
    policy = _directives(assets.pane_csp(production))

    assert policy["script-src"] == ["'self'", "https://appsforoffice.microsoft.com", "https://ajax.aspnetcdn.com"]
    assert policy["style-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]


def test_pane_may_only_talk_to_itself_and_the_sign_in_authority(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, ADDIN_DEMO="false", ADDIN_AUTHORITY="https://login.microsoftonline.us")

    assert _directives(assets.pane_csp(settings))["connect-src"] == ["'self'", "https://login.microsoftonline.us"]


def test_production_pane_may_be_framed_by_outlook_on_the_web_and_exchange_servers_owa(production: Settings) -> None:
    ancestors = _directives(assets.pane_csp(production))["frame-ancestors"]

    assert ancestors[0] == "'self'"
    for origin in ("https://outlook.office.com", "https://outlook.office365.com", "https://outlook.cloud.microsoft",
                   "https://outlook.live.com", "https://*.officeapps.live.com"):
        assert origin in ancestors
    assert "https://mail.contoso.com" in ancestors  # the on-premises OWA beside ADDIN_EWS_URL
    assert "*" not in ancestors


def test_a_self_hosted_office_js_is_the_only_foreign_script_origin(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, ADDIN_DEMO="false", ADDIN_OFFICE_JS_URL="https://cdn.contoso.com/office/office.js")

    assert _directives(assets.pane_csp(settings))["script-src"] == ["'self'", "https://cdn.contoso.com"]


def test_demo_pane_runs_no_foreign_script_and_only_the_demo_may_frame_it(tmp_path: Path) -> None:
    policy = _directives(assets.pane_csp(settings_for(tmp_path, ADDIN_DEMO="true")))

    assert policy["script-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'self'"]


def test_demo_page_frames_only_its_own_pane_and_cannot_itself_be_framed() -> None:
    parsed = _directives(assets.DEMO_PAGE_CSP)

    assert parsed["frame-src"] == ["'self'"]
    assert parsed["frame-ancestors"] == ["'none'"]
    assert parsed["script-src"] == ["'self'"]


def test_no_policy_allows_inline_code_or_eval(production: Settings) -> None:
    for policy in (assets.pane_csp(production), assets.DEMO_PAGE_CSP):
        assert "unsafe" not in policy
        assert "data:" not in " ".join(_directives(policy)["script-src"])


def test_api_scope_follows_the_office_sso_convention_by_default(production: Settings) -> None:
    assert api_scope(production) == f"api://127.0.0.1:8000/{CLIENT_ID}/access_as_user"


def test_api_scope_uses_the_app_id_uri_the_admin_configured(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, ADDIN_AUDIENCE=f"{CLIENT_ID},api://report.contoso.com/{CLIENT_ID}")

    assert api_scope(settings) == f"api://report.contoso.com/{CLIENT_ID}/access_as_user"


def test_versioned_asset_must_exist() -> None:
    with pytest.raises(FileNotFoundError):
        assets.version_of_existing("no-such-file.js")
