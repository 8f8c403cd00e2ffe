"""The task pane page, its static files and ``GET /api/v1/pane-config``."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, json, render_template, request, send_file, url_for
from werkzeug.exceptions import NotFound

from addin_service.settings import Settings
from addin_service.web import assets
from addin_service.web.pane_config import PaneConfigSchema, build_pane_config

bp = Blueprint("web", __name__, template_folder="templates")


def _settings() -> Settings:
    return current_app.extensions["addin"].settings  # type: ignore[no-any-return]


def asset_url(name: str) -> str:
    """URL of a static file with its content hash, for templates."""
    return url_for("web.static_file", filename=name, v=assets.version_of_existing(name))


def _msal_bundle(settings: Settings) -> dict[str, str] | None:
    """Where the pane loads MSAL.js from: the vendored browser bundle, when it was installed.

    The demo's simulated Office host signs in without MSAL, so demo mode never offers it.
    """
    if settings.demo:
        return None
    integrity = assets.integrity_of(assets.MSAL_BUNDLE)
    if integrity is None:
        return None
    return {"url": asset_url(assets.MSAL_BUNDLE), "integrity": integrity}


@bp.get("/taskpane.html")
def taskpane() -> Response:
    """The task pane Outlook opens from the "Report harassment" button."""
    settings = _settings()
    office_js = asset_url("demo/office-sim.js") if settings.demo else settings.office_js_url
    html = render_template(
        "taskpane.html",
        asset=asset_url,
        office_js=office_js,
        config_url=url_for("web.pane_config"),
        reports_url=url_for("reports.create_report"),
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = assets.pane_csp(settings)
    response.headers["Cache-Control"] = assets.REVALIDATE
    return response


@bp.get("/static/<path:filename>")
def static_file(filename: str) -> Response:
    """Files under ``web/static``; long-cached when the URL carries the file's current hash."""
    path = assets.static_path(filename)
    if path is None:
        raise NotFound()
    response = send_file(path, conditional=True, etag=True, max_age=None)
    response.headers["Cache-Control"] = assets.cache_control(filename, request.args.get("v"))
    return response


@bp.get("/api/v1/pane-config")
def pane_config() -> Response:
    """Public settings the pane needs to sign in, offer choices and show where to get help."""
    settings = _settings()
    body = PaneConfigSchema().dump(build_pane_config(settings, _msal_bundle(settings)))
    response = Response(json.dumps(body), mimetype="application/json")
    response.headers["Cache-Control"] = assets.REVALIDATE
    return response
