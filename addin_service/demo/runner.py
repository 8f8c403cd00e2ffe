"""``addin-service demo``: the whole flow on one machine, without Microsoft 365.

Starts the EWS server double (real EWS SOAP over HTTP on loopback) seeded with the sample
messages, the Entra ID double (discovery, JWKS, token minting) as the demo sign-in, and the real
service wired to both exactly as it would be to Exchange Server and Entra ID: the real
``EwsMailbox`` (exchangelib), the real token validation (PyJWT), SQLite and a local evidence folder.
"""

from __future__ import annotations

import email.policy
import html
import logging
import re
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from flask import Flask

from addin_service.demo.ews_seed import DEMO_SUPERVISOR, DEMO_USER, sample_messages, seed_demo
from addin_service.demo.ews_server import EwsServer
from addin_service.demo.oidc import OidcIssuer
from addin_service.demo.web import DemoMail, DemoMessage
from addin_service.settings import Settings

log = logging.getLogger("addin_service.demo")
PREVIEW_CHARS = 160


@dataclass
class DemoBackend:
    """What the demo pages read: the demo mailbox's messages and tokens for demo users."""

    issuer: OidcIssuer
    items: list[DemoMessage]
    ews: EwsServer | None = None
    notify_from: str = ""
    user: str = DEMO_USER
    users: frozenset[str] = field(default_factory=lambda: frozenset({DEMO_USER, DEMO_SUPERVISOR}))

    def messages(self) -> list[DemoMessage]:
        return sorted(self.items, key=lambda m: m.received_at, reverse=True)

    def token_for(self, upn: str) -> str:
        if upn.lower() not in self.users:
            raise KeyError(upn)
        return self.issuer.demo_token(upn.lower())

    def sent_mail(self) -> list[DemoMail]:
        if self.ews is None or not self.notify_from:
            return []
        return [
            DemoMail(
                to=sent.to,
                subject=sent.subject,
                sent_at=sent.sent_at,
                html=sent.body if sent.body_type == "HTML" else f"<pre>{html.escape(sent.body)}</pre>",
                attachments=tuple(attachment.name for attachment in sent.attachments),
            )
            for sent in self.ews.sent_items(self.notify_from)
        ]


@dataclass
class DemoHandle:
    """A running demo: the doubles, the settings and the app (not yet served)."""

    ews: EwsServer
    issuer: OidcIssuer
    settings: Settings
    app: Flask
    item_ids: dict[str, str]

    def stop(self) -> None:
        container = self.app.extensions["addin"]
        container.close()
        self.ews.stop()
        self.issuer.stop()


def demo_settings(data_dir: Path, ews: EwsServer, issuer: OidcIssuer, public_url: str) -> Settings:
    env = {
        "ADDIN_DEMO": "true",
        "ADDIN_DATABASE_URL": f"sqlite:///{data_dir / 'addin.db'}",
        "ADDIN_EVIDENCE_URL": f"file://{data_dir / 'evidence'}",
        "ADDIN_EXCHANGE": "ews",
        "ADDIN_EWS_URL": ews.url,
        "ADDIN_EWS_AUTH": "basic",
        "ADDIN_EWS_USERNAME": ews.username,
        "ADDIN_EWS_PASSWORD": ews.password,
        "ADDIN_EWS_VERSION": "Exchange2016",
        "ADDIN_TENANT_ID": issuer.tenant_id,
        "ADDIN_CLIENT_ID": issuer.client_id,
        "ADDIN_AUTHORITY": issuer.authority,
        "ADDIN_PUBLIC_URL": public_url,
        "ADDIN_ACCEPTED_DOMAINS": "contoso.com",
        "ADDIN_SECURITY_MAILBOX": "security@contoso.com",
        "ADDIN_FALLBACK_MAILBOX": "hr-desk@contoso.com",
        "ADDIN_INTERNAL_AFFAIRS_MAILBOX": "internal-affairs@contoso.com",
        "ADDIN_INVESTIGATIONS_MAILBOX": "investigations@contoso.com",
        "ADDIN_NOTIFY_FROM": "report-harassment@contoso.com",
        "ADDIN_EAP_PHONE": "+1 555 0100 (demo)",
        "ADDIN_EAP_URL": "https://eap.contoso.com",
        "ADDIN_SUPPORT_PHONE": "+1 555 0199 (demo, 24/7)",
        "ADDIN_INCIDENT_RESPONSE_PHONE": "+1 555 0142 (demo)",
        "ADDIN_OFFICE_JS_URL": "https://appsforoffice.microsoft.com/lib/1/hosted/office.js",
    }
    return Settings.from_env(env, cwd=data_dir)


def _demo_messages(item_ids: dict[str, str]) -> list[DemoMessage]:
    raw = sample_messages()
    items = []
    for name, item_id in item_ids.items():
        message = BytesParser(policy=email.policy.default).parsebytes(raw[name])
        display, address = parseaddr(str(message.get("From", "")))
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        preview = re.sub(r"\s+", " ", str(text)).strip()[:PREVIEW_CHARS]
        date = message.get("Date")
        received = date.datetime.astimezone().isoformat() if date is not None and date.datetime else ""
        items.append(
            DemoMessage(
                item_id=item_id,
                subject=str(message.get("Subject", "")),
                from_name=display or address,
                from_address=address.lower(),
                received_at=_utc_z(received),
                preview=preview,
                internet_message_id=str(message.get("Message-ID", "")) or None,
            )
        )
    return items


def _utc_z(iso: str) -> str:
    from datetime import UTC, datetime

    if not iso:
        return ""
    return datetime.fromisoformat(iso).astimezone(UTC).isoformat().replace("+00:00", "Z")


def start_demo(data_dir: Path, public_url: str = "http://127.0.0.1:8000", **overrides: Any) -> DemoHandle:
    """Start the doubles and build the app; the caller serves ``handle.app`` and calls ``stop``."""
    from addin_service.app import build_app
    from addin_service.bootstrap import build_container

    data_dir.mkdir(parents=True, exist_ok=True)
    ews = EwsServer().start()
    issuer = OidcIssuer().start()
    try:
        item_ids = seed_demo(ews)
        settings = demo_settings(data_dir, ews, issuer, public_url)
        if overrides:
            settings = settings.replace(**overrides)
        app = build_app(container=build_container(settings))
        app.extensions["addin_demo"] = DemoBackend(
            issuer=issuer, items=_demo_messages(item_ids), ews=ews, notify_from=settings.notify_from or ""
        )
    except BaseException:
        ews.stop()
        issuer.stop()
        raise
    return DemoHandle(ews=ews, issuer=issuer, settings=settings, app=app, item_ids=item_ids)


def run_demo(host: str, port: int, data_dir: Path) -> None:
    """Serve the demo until interrupted."""
    from addin_service.cli import waitress_server

    public_url = f"http://{host}:{port}"
    handle = start_demo(data_dir, public_url)
    server = waitress_server(handle.app, host=host, port=port, threads=8, ident="addin-service-demo")
    print(  # noqa: T201 - the demo talks to a person at a terminal
        f"\n  Report Harassment for Outlook — demo\n\n"
        f"  Open {public_url}/demo and report one of the sample messages.\n"
        f"  Read what the service sent (receipt, supervisor, security) at {public_url}/demo/mail\n"
        f"  Evidence is kept in {data_dir / 'evidence'}; from this folder, check it with:\n"
        f"    .venv/bin/addin-service evidence verify\n\n"
        f"  Press Ctrl+C to stop.\n",
        flush=True,
    )
    from addin_service.notify.cli import start_worker_thread

    container = handle.app.extensions["addin"]
    stop_worker = start_worker_thread(container) if handle.settings.worker else (lambda: None)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        stop_worker()
        handle.stop()
