"""Build the Flask app: settings, logging, the container, blueprints, security headers."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, g, request

from addin_service.bootstrap import Container, build_container
from addin_service.observability import logs
from addin_service.settings import Settings

MAX_REQUEST_BYTES = 64 * 1024
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"


def resolve_settings(config: Settings | Mapping[str, Any] | None) -> Settings:
    if isinstance(config, Settings):
        return config
    if config is None:
        return Settings.from_env()
    env = {k: str(v) for k, v in config.items()}
    return Settings.from_env(env)


def build_app(config: Settings | Mapping[str, Any] | None = None, *, container: Container | None = None) -> Flask:
    """The app factory behind ``create_app``. ``container`` lets tests inject doubles."""
    settings = container.settings if container is not None else resolve_settings(config)
    logs.configure(settings.log_level)
    app = Flask("addin_service", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    # No implicit OPTIONS answers (an empty text/html 200 that no schema describes): the pane is
    # served from this origin and needs no CORS preflight, so OPTIONS is a 405 problem like any
    # other method a route does not take.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["addin"] = container or build_container(settings)

    from addin_service.api import health, openapi, problems, reports

    problems.register(app)
    app.register_blueprint(reports.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    from addin_service.notify.ack import bp as ack_bp

    app.register_blueprint(ack_bp)
    from addin_service.notify.case_page import bp as case_page_bp

    app.register_blueprint(case_page_bp)
    from addin_service.web.routes import bp as web_bp

    app.register_blueprint(web_bp)
    if settings.demo:
        from addin_service.demo.web import bp as demo_bp

        app.register_blueprint(demo_bp)

    @app.before_request
    def _request_id() -> None:
        supplied = request.headers.get("X-Request-Id", "")
        g.request_id = (
            supplied
            if 0 < len(supplied) <= 64 and supplied.isascii() and supplied.isprintable()
            else secrets.token_hex(8)
        )

    # Browsers keep using https for this host once told so over https (they ignore it over http).
    hsts = "max-age=31536000" if settings.public_url.startswith("https://") else None

    @app.after_request
    def _security_headers(response: Response) -> Response:
        if hsts is not None:
            response.headers["Strict-Transport-Security"] = hsts
        response.headers.setdefault("Content-Security-Policy", API_CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Request-Id"] = getattr(g, "request_id", "")
        if request.url_rule is not None:
            c: Container = app.extensions["addin"]
            c.metrics.http.labels(route=request.url_rule.rule, status=str(response.status_code)).inc()
        return response

    return app
