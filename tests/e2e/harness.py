"""A running service for browser tests and the pane benchmark: real HTTP on 127.0.0.1.

The app is built with ``build_app(settings, container=...)`` exactly as in production, with two
doubles: the in-memory mailbox from ``tests/fakes`` and :class:`TokenBook`, an authenticator that
accepts the tokens the demo sign-in minted. :class:`FakeDemo` stands in for the demo runner's
``app.extensions["addin_demo"]``. :class:`ReportLog` records what reached
``POST /api/v1/reports`` (Idempotency-Key, body, status) as the server saw it.
"""

from __future__ import annotations

import io
import json
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import requests

from addin_service.app import build_app
from addin_service.auth.bearer import bearer_from_header
from addin_service.auth.caller import Caller
from addin_service.bootstrap import build_container
from addin_service.demo.web import DemoMail, DemoMessage
from addin_service.errors import Unauthenticated
from addin_service.settings import Settings
from tests.fakes.directory import InMemoryDirectory
from tests.fakes.mailbox import InMemoryMailbox
from tests.fakes.stack import serving as served

USER = "alex@contoso.com"
TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "535fb089-9ff3-47b6-9bfb-4f1264799865"
SHARED_MAILBOX = "hr-team@contoso.com"
MAX_MESSAGE_BYTES = 1_000_000

# EWS ids use standard base64, so '+' and '/' occur; REST ids write them '_' and '-'.
THREAT_ID = "AAMkADc3+Threat/Id01AAA="
BULLYING_ID = "AAMkADc3+Bully/Id02AAA="
STALKING_ID = "AAMkADc3+Stalk/Id03AAA="
HATE_ID = "AAMkADc3+Hate/Id04AAA="
SHARED_ID = "AAMkADc3+Shared/Id05AAA="
DELETED_ID = "AAMkADc3+Gone/Id06AAA="
LARGE_ID = "AAMkADc3+Large/Id07AAA="


@dataclass(frozen=True)
class Seed:
    message: DemoMessage
    mailbox: str | None  # None: listed in the demo, but no longer in Exchange
    body: str
    padding: int = 0  # extra bytes, to make a message too large


SEEDS = (
    Seed(
        DemoMessage(THREAT_ID, "You will regret this", "Jordan Miles", "jordan.miles@fabrikam.example",
                    "2026-11-24T08:12:00Z", "I know where you park. You will regret going to HR about me.",
                    "<threat-1@fabrikam.example>"),
        USER, "I know where you park. You will regret going to HR about me.\n",
    ),
    Seed(
        DemoMessage(BULLYING_ID, "Re: project review", "Morgan Price", "morgan.price@contoso.com",
                    "2026-11-23T16:40:00Z", "Nobody on this team wants you here. Do everyone a favour and quit.",
                    "<bully-2@contoso.com>"),
        USER, "Nobody on this team wants you here. Do everyone a favour and quit.\n",
    ),
    Seed(
        DemoMessage(STALKING_ID, "Saw you at the station", "Unknown", "watcher@mail.example",
                    "2026-11-22T21:05:00Z", "You wore the blue coat again today. I will be there tomorrow.",
                    "<stalk-3@mail.example>"),
        USER, "You wore the blue coat again today. I will be there tomorrow.\n",
    ),
    Seed(
        DemoMessage(HATE_ID, "People like you", "R. Stone", "rstone@mail.example",
                    "2026-11-21T10:00:00Z", "People like you do not belong in this country.",
                    "<hate-4@mail.example>"),
        USER, "People like you do not belong in this country.\n",
    ),
    Seed(
        DemoMessage(SHARED_ID, "Re: your complaint", "Sam Carter", "sam.carter@contoso.com",
                    "2026-11-20T09:30:00Z", "Withdraw the complaint or you will be sorry.",
                    "<shared-5@contoso.com>", shared_owner=SHARED_MAILBOX),
        SHARED_MAILBOX, "Withdraw the complaint or you will be sorry.\n",
    ),
    Seed(
        DemoMessage(DELETED_ID, "Last warning", "Jordan Miles", "jordan.miles@fabrikam.example",
                    "2026-11-19T07:55:00Z", "This is your last warning.", "<gone-6@fabrikam.example>"),
        None, "This is your last warning.\n",
    ),
    Seed(
        DemoMessage(LARGE_ID, "Photos", "Jordan Miles", "jordan.miles@fabrikam.example",
                    "2026-11-18T18:20:00Z", "I took these of you. (large attachment)", "<large-7@fabrikam.example>"),
        USER, "I took these of you.\n", padding=MAX_MESSAGE_BYTES + 200_000,
    ),
)


def mime_for(seed: Seed) -> tuple[bytes, tuple[tuple[str, str], ...]]:
    """A plausible message as Exchange would return it, and its transport headers."""
    m = seed.message
    when = datetime.fromisoformat(m.received_at.replace("Z", "+00:00"))
    headers = (
        ("Received", f"from mail.example ([203.0.113.7]) by mx.contoso.com; {format_datetime(when)}"),
        ("From", f"{m.from_name} <{m.from_address}>"),
        ("To", seed.mailbox or USER),
        ("Subject", m.subject),
        ("Date", format_datetime(when)),
        ("Message-ID", m.internet_message_id or "<none@example>"),
    )
    msg = EmailMessage()
    for name, value in headers:
        msg[name] = value
    msg.set_content(seed.body)
    if seed.padding:
        msg.add_attachment(b"\0" * seed.padding, maintype="application", subtype="octet-stream",
                           filename="photos.bin")
    return msg.as_bytes(), headers


class TokenBook:
    """The test authenticator: a bearer token is valid while the book holds it."""

    def __init__(self) -> None:
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        self.expire_next = 0  # hand out this many tokens that are already expired

    def mint(self, upn: str) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            if self.expire_next > 0:
                self.expire_next -= 1
            else:
                self._tokens[token] = upn
        return token

    def authenticate(self, authorization: str | None) -> Caller:
        token = bearer_from_header(authorization)
        with self._lock:
            upn = self._tokens.get(token)
        if upn is None:
            raise Unauthenticated("Your sign-in has expired. Sign in again.")
        return Caller(upn=upn, object_id="00000000-0000-0000-0000-0000000a1e70", tenant_id=TENANT_ID,
                      name="Alex Wilber", scopes=("access_as_user",), token=token)


@dataclass
class FakeDemo:
    """Stands in for the demo runner's ``app.extensions["addin_demo"]``."""

    tokens: TokenBook
    user: str = USER
    seeded: list[DemoMessage] = field(default_factory=lambda: [s.message for s in SEEDS])
    mail: list[DemoMail] = field(default_factory=list)

    def messages(self) -> list[DemoMessage]:
        return list(self.seeded)

    def token_for(self, upn: str) -> str:
        if upn != self.user:
            raise KeyError(upn)
        return self.tokens.mint(upn)

    def sent_mail(self) -> list[DemoMail]:
        return list(self.mail)


@dataclass
class ReportCall:
    key: str | None
    body: dict[str, Any]
    status: int | None = None


class ReportLog:
    """WSGI middleware: what reached ``POST /api/v1/reports`` and how the service answered."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.calls: list[ReportCall] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != "/api/v1/reports" or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(raw)
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        call = ReportCall(key=environ.get("HTTP_IDEMPOTENCY_KEY"), body=body)
        self.calls.append(call)

        def recording_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            call.status = int(status.split()[0])
            return start_response(status, headers, exc_info)

        return self.app(environ, recording_start_response)


@dataclass
class LiveService:
    url: str
    app: Any
    mailbox: InMemoryMailbox
    tokens: TokenBook
    demo: FakeDemo
    reports: ReportLog

    @property
    def container(self) -> Any:
        return self.app.extensions["addin"]

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Call the service as the demo user, with a fresh valid token."""
        headers = kwargs.pop("headers", {})
        headers.setdefault("Authorization", f"Bearer {self.demo.token_for(USER)}")
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)


def settings_for(data_dir: Path, **overrides: str) -> Settings:
    env = {
        "ADDIN_EWS_URL": "https://mail.contoso.com/EWS/Exchange.asmx",
        "ADDIN_EWS_USERNAME": "svc-report",
        "ADDIN_EWS_PASSWORD": "not-used-by-the-fake",
        "ADDIN_TENANT_ID": TENANT_ID,
        "ADDIN_CLIENT_ID": CLIENT_ID,
        "ADDIN_DEMO": "true",
        "ADDIN_ACCEPTED_DOMAINS": "contoso.com",
        "ADDIN_SECURITY_MAILBOX": "security@contoso.com",
        "ADDIN_FALLBACK_MAILBOX": "hr-desk@contoso.com",
        "ADDIN_INVESTIGATIONS_MAILBOX": "investigations@contoso.com",
        "ADDIN_INTERNAL_AFFAIRS_MAILBOX": "internal-affairs@contoso.com",
        "ADDIN_WORKER": "false",
        "ADDIN_LOG_LEVEL": "warning",
        "ADDIN_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES),
        "ADDIN_RATE_LIMIT": "1000/10m",
        "ADDIN_EAP_PHONE": "+1 800 555 0100",
        "ADDIN_EAP_URL": "https://eap.contoso.com/",
        "ADDIN_SUPPORT_PHONE": "+1 800 555 0111",
        "ADDIN_INCIDENT_RESPONSE_PHONE": "+1 800 555 0122",
        **overrides,
    }
    return Settings.from_env(env, cwd=data_dir)


@contextmanager
def live_service(data_dir: Path, **overrides: str) -> Iterator[LiveService]:
    """The service with the in-memory mailbox, served until the block ends."""
    mailbox = InMemoryMailbox()
    for seed in SEEDS:
        if seed.mailbox is not None:
            mime, headers = mime_for(seed)
            mailbox.add(seed.message.item_id, seed.mailbox, mime, headers,
                        internet_message_id=seed.message.internet_message_id,
                        from_address=seed.message.from_address)
    tokens = TokenBook()
    settings = settings_for(data_dir, **overrides)
    directory = InMemoryDirectory(managers={USER: "morgan@contoso.com", "morgan@contoso.com": "jamie@contoso.com"})
    container = build_container(settings, mailbox=mailbox, authenticator=tokens, directory=directory)
    app = build_app(settings, container=container)
    demo = FakeDemo(tokens)
    app.extensions["addin_demo"] = demo
    reports = ReportLog(app.wsgi_app)
    app.wsgi_app = reports  # type: ignore[method-assign]
    try:
        with served(app) as url:
            yield LiveService(url, app, mailbox, tokens, demo, reports)
    finally:
        container.close()
