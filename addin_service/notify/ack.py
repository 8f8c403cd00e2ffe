""""I have seen this": signed, expiring acknowledgement links, and the page behind them.

**Tokens.** ``v1.<row>.<expiry>.<mac>``: ``row`` is the outbox row's dedupe key (base64url, 32
bytes), ``expiry`` a Unix time, ``mac`` the first 16 bytes of HMAC-SHA256 over both. The HMAC key is
derived with HKDF-SHA256 from the evidence signing key (``ADDIN_SIGNING_KEY``, or the key the
evidence store created beside its ledger) with its own ``info`` label, so it is never the signing
key itself, every web and worker process that files evidence can make and check links without a
new secret to distribute, and replacing the signing key invalidates outstanding links (people then
confirm by replying or by phone; escalation still runs).

**GET does not acknowledge.** ``GET /ack/<token>`` shows the case number and one button;
``POST /ack/<token>`` records the acknowledgement (an audit entry, and the outbox row's
``acknowledged_at``) and shows a plain confirmation. Mail security scanners (Microsoft Defender Safe
Links and the like) open every link in a message before the person does; if the GET recorded the
acknowledgement, every notification would be "seen" within seconds and escalation would never
happen — the very case escalation exists for.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Blueprint, Response, current_app
from jinja2 import Environment, PackageLoader, select_autoescape

from addin_service.errors import ConfigError, ServiceError
from addin_service.evidence.fsio import unavailable
from addin_service.evidence.keys import LedgerKeys
from addin_service.evidence.layout import StoreLayout
from addin_service.notify.outbox import Acknowledgement, Outbox
from addin_service.settings import Settings

log = logging.getLogger("addin_service.notify.ack")

DEFAULT_VALID_SECONDS = 30 * 24 * 3600
HKDF_INFO = b"addin-service acknowledgement links v1"
MAC_BYTES = 16
_EXPIRY = re.compile(r"[1-9][0-9]{0,11}")  # seconds since the epoch, ASCII digits only
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class InvalidAckToken(Exception):  # noqa: N818 - names the situation
    """Malformed, forged or for another key."""


class ExpiredAckToken(InvalidAckToken):
    """Genuine, but past its expiry."""


class AckLinks:
    """Makes and checks acknowledgement links. ``key`` is called once, on first use.

    ``purpose`` keeps links of different kinds apart: a token made for one purpose never verifies for
    another (the case page's ``"case"`` links cannot acknowledge anything).
    """

    def __init__(
        self,
        key: Callable[[], bytes],
        public_url: str,
        *,
        purpose: str = "ack",
        valid_seconds: int = DEFAULT_VALID_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key_source = key
        self._key: bytes | None = None
        self._lock = threading.Lock()
        self.base_url = public_url.rstrip("/")
        self._purpose = purpose
        self._valid = valid_seconds
        self._clock = clock

    def link(self, dedupe_key: str) -> str:
        """The absolute URL for the outbox row with this dedupe key."""
        return f"{self.base_url}/ack/{self.token(dedupe_key)}"

    def token(self, dedupe_key: str) -> str:
        """:raises ValueError: ``dedupe_key`` is not 64 hex characters."""
        raw = bytes.fromhex(dedupe_key)
        if len(raw) != 32:
            raise ValueError("a dedupe key is 32 bytes of hex")
        expiry = int(self._clock()) + self._valid
        row = _b64(raw)
        return f"v1.{row}.{expiry}.{_b64(self._mac(row, expiry))}"

    def verify(self, token: str) -> str:
        """The dedupe key the token stands for.

        :raises ExpiredAckToken: genuine but expired.
        :raises InvalidAckToken: anything else wrong.
        """
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != "v1" or _EXPIRY.fullmatch(parts[2]) is None:
            raise InvalidAckToken("malformed")
        _, row, expiry_text, mac_text = parts
        try:
            raw = _unb64(row)
            mac = _unb64(mac_text)
        except (ValueError, binascii.Error):
            raise InvalidAckToken("malformed") from None
        if _b64(raw) != row or _b64(mac) != mac_text:
            raise InvalidAckToken("malformed")  # one token per link: no padding, spare bits or other spellings
        expiry = int(expiry_text)
        if len(raw) != 32 or not hmac.compare_digest(mac, self._mac(row, expiry)):
            raise InvalidAckToken("forged")
        if expiry < self._clock():
            raise ExpiredAckToken("expired")
        return raw.hex()

    def _mac(self, row: str, expiry: int) -> bytes:
        message = f"{self._purpose}.v1.{row}.{expiry}".encode()
        return hmac.new(self._secret(), message, hashlib.sha256).digest()[:MAC_BYTES]

    def _secret(self) -> bytes:
        with self._lock:
            if self._key is None:
                material = self._key_source()
                self._key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(material)
            return self._key


def evidence_key_material(settings: Settings) -> Callable[[], bytes]:
    """The raw bytes of the evidence signing key, loaded (or created, exactly as the evidence store
    would) on first use.

    :raises ConfigError: the evidence store is not a local folder and no ``ADDIN_SIGNING_KEY`` is set.
    The returned function raises what ``LedgerKeys.signer`` raises (ConfigError, EvidenceStoreUnavailable).
    """
    root = settings.evidence_path
    if root is None and not settings.signing_key:
        raise ConfigError("ADDIN_SIGNING_KEY", "is required for acknowledgement links with this evidence store")
    layout = StoreLayout(Path(root or "."))
    keys = LedgerKeys(layout.ledger_dir, settings.signing_key)

    def material() -> bytes:
        if root is not None:
            try:
                layout.ensure()  # as the evidence store does before it first needs the key
            except OSError as exc:
                raise unavailable(exc, "prepare the evidence signing key") from exc
        return keys.signer().private_key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )

    return material


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- the page ----------------------------------------------------------------------------------


class AckBackend(Protocol):
    """What the blueprint needs: the links (to check tokens) and the outbox (to record)."""

    ack_links: AckLinks
    outbox: Outbox


@dataclass(frozen=True)
class _Page:
    status: int
    title: str
    message: str
    confirm: bool = False


bp = Blueprint("ack", __name__)


@functools.cache
def page_templates() -> Environment:
    """The link pages' template environment, made on first use (nothing is read at import time)."""
    loader = PackageLoader("addin_service.notify", "templates")
    return Environment(loader=loader, autoescape=select_autoescape(default=True), auto_reload=False)


def notifications_backend() -> Any:
    """This app's notification side (``notify.bootstrap.Notifications``), for the link pages.

    :raises LookupError: the app was built without notifications.
    """
    container: Any = current_app.extensions["addin"]
    notifications = getattr(container, "notifications", None)
    if notifications is None:
        raise LookupError("notifications are not wired into this app")
    return notifications


def html_page(template: str, status: int, **context: Any) -> Response:
    """A link page: no scripts, never framed, never cached, no referrer to the next site."""
    body = page_templates().get_template(template).render(**context)
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _backend() -> AckBackend:
    backend: AckBackend = notifications_backend()
    return backend


def _page(page: _Page, case_id: str | None = None) -> Response:
    return html_page("ack_page.html.j2", page.status, page=page, case_id=case_id)


def _check(token: str) -> tuple[str | None, Response | None]:
    try:
        return _backend().ack_links.verify(token), None
    except ExpiredAckToken:
        return None, _page(
            _Page(410, "This link has expired", "Please tell the security team directly that you have seen the report.")
        )
    except InvalidAckToken:
        return None, _page(
            _Page(404, "This link is not valid", "Check that you opened the whole link from the email.")
        )


@bp.get("/ack/<token>")
def show(token: str) -> Response:
    """Show what is being acknowledged and the button that records it (see the module docstring)."""
    key, problem = _check(token)
    if problem is not None or key is None:
        return problem or _page(_Page(404, "This link is not valid", ""))
    try:
        found = _backend().outbox.describe(key)
    except ServiceError:
        return _page(_Page(503, "Please try again in a moment", "The service could not look up this notification."))
    if found is None:
        return _page(_Page(404, "This link is not valid", "There is no such notification."))
    case_id, acknowledged_at = found
    if acknowledged_at is not None:
        when = acknowledged_at.strftime("%Y-%m-%d %H:%M UTC")
        return _page(_Page(200, "Already confirmed", f"This notification was confirmed at {when}."), case_id)
    return _page(
        _Page(
            200,
            "Confirm that you have seen this report",
            "Press the button to record that you have read the notification and will act on it.",
            confirm=True,
        ),
        case_id,
    )


@bp.post("/ack/<token>")
def record(token: str) -> Response:
    """Record the acknowledgement (once) and say so."""
    key, problem = _check(token)
    if problem is not None or key is None:
        return problem or _page(_Page(404, "This link is not valid", ""))
    try:
        done: Acknowledgement | None = _backend().outbox.acknowledge(key)
    except ServiceError:
        return _page(_Page(503, "Please try again in a moment", "The service could not record your confirmation."))
    if done is None:
        return _page(_Page(404, "This link is not valid", "There is no such notification."))
    when = done.acknowledged_at.strftime("%Y-%m-%d %H:%M UTC")
    if done.first_time:
        log.info("notification acknowledged", extra={"event": "notification.acknowledged", "case_id": done.case_id})
        return _page(_Page(200, "Thank you", f"Your confirmation was recorded at {when}."), done.case_id)
    return _page(_Page(200, "Already confirmed", f"This notification was confirmed at {when}."), done.case_id)
