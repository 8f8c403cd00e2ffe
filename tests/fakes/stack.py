"""The whole service wired to protocol doubles: the EWS server double and the Entra double.

The real EwsMailbox (exchangelib), the real token validation (PyJWT), the real evidence store and
the real database run; only Exchange and Entra ID are doubles, reached over real HTTP on loopback.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from addin_service.app import build_app
from addin_service.bootstrap import build_container
from addin_service.demo.ews_server import EwsServer
from addin_service.demo.oidc import OidcIssuer
from addin_service.settings import Settings

REPORTER = "alex@contoso.com"
COLLEAGUE = "riley.chen@contoso.com"
SHARED = "hr-cases@contoso.com"


def stack_env(tmp: Path, ews: EwsServer, issuer: OidcIssuer, **env: str) -> dict[str, str]:
    """The ``ADDIN_*`` variables of a service wired to these doubles, with its data under ``tmp``."""
    values = {
        "ADDIN_DATABASE_URL": f"sqlite:///{tmp / 'addin.db'}",
        "ADDIN_EVIDENCE_URL": f"file://{tmp / 'evidence'}",
        "ADDIN_EXCHANGE": "ews",
        "ADDIN_EWS_URL": ews.url,
        "ADDIN_EWS_AUTH": "basic",
        "ADDIN_EWS_USERNAME": ews.username,
        "ADDIN_EWS_PASSWORD": ews.password,
        "ADDIN_EWS_VERSION": "Exchange2016",
        "ADDIN_EWS_TIMEOUT": "3",
        "ADDIN_EXCHANGE_MAX_WAIT": "2",
        "ADDIN_TENANT_ID": issuer.tenant_id,
        "ADDIN_CLIENT_ID": issuer.client_id,
        "ADDIN_AUTHORITY": issuer.authority,
        "ADDIN_ACCEPTED_DOMAINS": "contoso.com",
        "ADDIN_EAP_PHONE": "+1 555 0100",
        "ADDIN_SUPPORT_PHONE": "+1 555 0199",
    }
    values.update(env)
    return values


def stack_settings(tmp: Path, ews: EwsServer, issuer: OidcIssuer, **env: str) -> Settings:
    return Settings.from_env(stack_env(tmp, ews, issuer, **env), cwd=tmp)


@dataclass
class Stack:
    ews: EwsServer
    issuer: OidcIssuer
    settings: Settings
    app: Flask
    tmp: Path
    items: dict[str, str] = field(default_factory=dict)

    @property
    def client(self) -> FlaskClient:
        return self.app.test_client()

    def token(self, upn: str = REPORTER, **kwargs: Any) -> str:
        return self.issuer.mint(upn, **kwargs)

    def auth(self, upn: str = REPORTER, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(upn, **kwargs)}"}

    def add_message(self, mime: bytes, mailbox: str = REPORTER, **kwargs: Any) -> str:
        return self.ews.add_message(mailbox, mime, **kwargs)

    def report(self, item_id: str, upn: str = REPORTER, key: str | None = None, **body: Any) -> Any:
        headers = self.auth(upn)
        if key is not None:
            headers["Idempotency-Key"] = key
        payload = {"item_id": item_id, "category": "threat-or-violence", **body}
        return self.client.post("/api/v1/reports", json=payload, headers=headers)

    @property
    def evidence_root(self) -> Path:
        path = self.settings.evidence_path
        assert path is not None
        return path


@contextmanager
def running_stack(tmp: Path, **env: str) -> Iterator[Stack]:
    """Start both doubles and build the app (served through the Flask test client)."""
    with EwsServer() as ews, OidcIssuer() as issuer:
        for mailbox in (REPORTER, COLLEAGUE, SHARED):
            ews.add_mailbox(mailbox)
        settings = stack_settings(tmp, ews, issuer, **env)
        app = build_app(container=build_container(settings))
        try:
            yield Stack(ews=ews, issuer=issuer, settings=settings, app=app, tmp=tmp)
        finally:
            app.extensions["addin"].close()


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Requests are not logged: the service's own log and the test's assertions say what happened."""


@contextmanager
def serving(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve a WSGI app over real HTTP on ``host`` (a free port) in a thread; yields the base URL
    (on 127.0.0.1 when ``host`` is every address, 0.0.0.0)."""
    server: BaseWSGIServer = make_server(host, 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="service-under-test", daemon=True
    )
    thread.start()
    try:
        yield f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
