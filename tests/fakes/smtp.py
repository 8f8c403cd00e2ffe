"""A real SMTP server on loopback (aiosmtpd) that keeps what arrives and can misbehave on purpose.

Usage::

    with SmtpServer() as smtp:
        ... point ADDIN_SMTP_URL at smtp.url ...
        received = smtp.wait_for(3)
        assert received[0].message()["Subject"] == ...

Modes: plain (``smtp://``), STARTTLS (``tls=`` a :class:`ThrowawayTls`; ``smtp+starttls://``) and
implicit TLS (``implicit_tls=True``; ``smtps://``), optionally requiring AUTH (``credentials=``).
``data_size_limit=`` is the largest message accepted (advertised as ``SIZE``; aiosmtpd's 32 MiB by default).
Misbehaviour: :meth:`refuse` answers the next MAIL/RCPT/DATA with a code of our choice,
:meth:`stall_next_data` holds the reply to a DATA (the message has arrived but is not accepted
yet: a client killed then has not delivered it), ``eight_bit_mime=False`` hides ``8BITMIME``.

A message counts as received only once the server has answered 250 to its DATA.
"""

from __future__ import annotations

import asyncio
import email.policy
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from types import TracebackType
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from addin_service.demo.tls import ThrowawayTls


@dataclass(frozen=True)
class Received:
    """One accepted message: envelope and the DATA bytes exactly as the server got them."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes = field(repr=False)
    mail_options: tuple[str, ...] = ()
    arrived_at: float = field(default_factory=time.time)  # when the server accepted it (epoch seconds)

    def message(self) -> EmailMessage:
        """The message parsed as a mail client would."""
        parsed = BytesParser(policy=email.policy.default).parsebytes(self.data)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def message_id(self) -> str:
        return str(self.message()["Message-ID"] or "")


@dataclass
class _Refusal:
    stage: str  # "MAIL", "RCPT" or "DATA"
    reply: str
    remaining: int


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_EHLO(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if not self.server.eight_bit_mime:
            responses = [r for r in responses if "8BITMIME" not in r]
        return responses

    async def handle_MAIL(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refused = self.server._take_refusal("MAIL")
        if refused:
            return refused
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refused = self.server._take_refusal("RCPT")
        if refused:
            return refused
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        await self.server._maybe_stall()
        refused = self.server._take_refusal("DATA")
        if refused:
            return refused
        content = envelope.original_content if envelope.original_content is not None else envelope.content
        assert isinstance(content, bytes)
        self.server._record(
            Received(str(envelope.mail_from), tuple(envelope.rcpt_tos), content, tuple(envelope.mail_options))
        )
        return "250 2.0.0 Message accepted for delivery"


class SmtpServer:
    """The server; see the module docstring."""

    def __init__(
        self,
        *,
        tls: ThrowawayTls | None = None,
        implicit_tls: bool = False,
        credentials: tuple[str, str] | None = None,
        eight_bit_mime: bool = True,
        data_size_limit: int | None = None,
    ) -> None:
        if implicit_tls and tls is None:
            raise ValueError("implicit TLS needs tls=")
        self.tls = tls
        self.implicit_tls = implicit_tls
        self.credentials = credentials
        self.eight_bit_mime = eight_bit_mime
        self.data_size_limit = data_size_limit
        self.auth_attempts = 0
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._received: list[Received] = []
        self._refusals: list[_Refusal] = []
        self._stall_after: int | None = None
        self._stall_release: asyncio.Event | None = None
        self.stalled = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._protocols: list[SMTP] = []
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> SmtpServer:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="smtp-double", daemon=True)
        self._thread.start()
        ssl_context = self.tls.server_context() if (self.tls and self.implicit_tls) else None
        self._server = asyncio.run_coroutine_threadsafe(
            loop.create_server(self._protocol, host="127.0.0.1", port=0, ssl=ssl_context), loop
        ).result(timeout=10)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return
        self.release()

        async def shut() -> None:
            server.close()
            for protocol in list(self._protocols):
                # After STARTTLS aiosmtpd talks through a TLS transport over the original one: end both.
                # abort(), not close(): a TLS close would wait for the peer's close_notify.
                for name in ("transport", "_original_transport"):
                    transport = getattr(protocol, name, None)
                    if transport is not None:
                        transport.abort()
            await server.wait_closed()
            # Let closing transports finish (TLS close_notify, connection_lost, cancelled handlers).
            for _ in range(20):
                await asyncio.sleep(0.01)
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shut(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        assert self._thread is not None
        self._thread.join(timeout=10)
        loop.close()
        self._loop = self._server = self._thread = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def url(self, scheme: str | None = None, *, with_credentials: bool = True) -> str:
        """``ADDIN_SMTP_URL`` for this server (the scheme follows the mode unless given)."""
        if scheme is None:
            scheme = "smtps" if self.implicit_tls else "smtp+starttls" if self.tls else "smtp"
        auth = ""
        if self.credentials and with_credentials:
            auth = f"{self.credentials[0]}:{self.credentials[1]}@"
        return f"{scheme}://{auth}127.0.0.1:{self.port}"

    # -- observing ---------------------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def count(self, message_id: str) -> int:
        return sum(1 for r in self.received if r.message_id == message_id)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until at least ``count`` messages were accepted; fail the test otherwise."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self._received) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected {count} message(s), got {len(self._received)}")
                self._arrived.wait(remaining)
            return list(self._received)

    # -- misbehaving ---------------------------------------------------------------------------

    def refuse(self, stage: str, reply: str, times: int = 1) -> None:
        """Answer the next ``times`` MAIL/RCPT/DATA commands with ``reply`` (e.g. ``"451 4.3.0 Try later"``)."""
        with self._lock:
            self._refusals.append(_Refusal(stage.upper(), reply, times))

    def stall_next_data(self, after: int = 0) -> None:
        """Hold the reply to the first DATA that arrives once ``after`` messages were accepted, until
        :meth:`release`. :attr:`stalled` is set when the hold begins."""
        assert self._loop is not None
        with self._lock:
            self._stall_after = after
        self._stall_release = asyncio.run_coroutine_threadsafe(self._new_event(), self._loop).result(timeout=5)

    def release(self) -> None:
        event, loop = self._stall_release, self._loop
        with self._lock:
            self._stall_after = None
        if event is not None and loop is not None:
            loop.call_soon_threadsafe(event.set)

    # -- internals -------------------------------------------------------------------------------

    @staticmethod
    async def _new_event() -> asyncio.Event:
        return asyncio.Event()

    def _protocol(self) -> SMTP:
        kwargs: dict[str, Any] = {"hostname": "smtp.double.test", "decode_data": False, "ident": "SMTP double"}
        if self.data_size_limit is not None:
            kwargs["data_size_limit"] = self.data_size_limit
        if self.tls is not None and not self.implicit_tls:
            kwargs["tls_context"] = self.tls.server_context()
        if self.credentials is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True)
        with warnings.catch_warnings():
            if self.implicit_tls:
                # TLS from the first byte: aiosmtpd only knows about STARTTLS and would refuse AUTH.
                warnings.simplefilter("ignore")
                kwargs["auth_require_tls"] = False
            protocol = SMTP(_Handler(self), loop=self._loop, **kwargs)
        self._protocols.append(protocol)
        return protocol

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        self.auth_attempts += 1
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.credentials is not None
            and (auth_data.login.decode(), auth_data.password.decode()) == self.credentials
        )
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    def _take_refusal(self, stage: str) -> str | None:
        with self._lock:
            for refusal in self._refusals:
                if refusal.stage == stage:
                    refusal.remaining -= 1
                    if refusal.remaining <= 0:
                        self._refusals.remove(refusal)
                    return refusal.reply
        return None

    async def _maybe_stall(self) -> None:
        with self._lock:
            stall = self._stall_after is not None and len(self._received) >= self._stall_after
        if stall and self._stall_release is not None:
            self.stalled.set()
            await self._stall_release.wait()

    def _record(self, received: Received) -> None:
        with self._arrived:
            self._received.append(received)
            self._arrived.notify_all()


@contextmanager
def smtp_server(**kwargs: Any) -> Iterator[SmtpServer]:
    """``with smtp_server() as smtp:`` — a started :class:`SmtpServer`."""
    with SmtpServer(**kwargs) as server:
        yield server


def raw_attachment(data: bytes) -> bytes:
    """The body of the last MIME part of a ``multipart/mixed`` message, byte for byte, found by its
    boundary (never regenerated by a parser): what a client saves when it saves the attachment."""
    parsed = BytesParser(policy=email.policy.default).parsebytes(data, headersonly=True)
    boundary = parsed.get_boundary()
    assert boundary, "not a multipart message"
    delimiter = b"\r\n--" + boundary.encode("ascii")
    parts = data.split(delimiter)
    last = parts[-2]  # the final element starts with the closing "--"
    _, _, body = last.partition(b"\r\n\r\n")
    return body


# -- the whole service, telling people over SMTP -------------------------------------------------

SECURITY = "security@contoso.com"
FALLBACK = "hr-desk@contoso.com"
INTERNAL_AFFAIRS = "internal-affairs@contoso.com"
INVESTIGATIONS = "investigations@contoso.com"
NOTIFY_FROM = "report-harassment@contoso.com"
PUBLIC_URL = "https://reports.contoso.com"


def notify_env(smtp: SmtpServer, **env: str) -> dict[str, str]:
    """``ADDIN_*`` values for a service that tells people through ``smtp``."""
    values = {
        "ADDIN_NOTIFY_FROM": NOTIFY_FROM,
        "ADDIN_NOTIFY_TRANSPORT": "smtp",
        "ADDIN_SMTP_URL": smtp.url(),
        "ADDIN_SECURITY_MAILBOX": SECURITY,
        "ADDIN_FALLBACK_MAILBOX": FALLBACK,
        "ADDIN_INTERNAL_AFFAIRS_MAILBOX": INTERNAL_AFFAIRS,
        "ADDIN_INVESTIGATIONS_MAILBOX": INVESTIGATIONS,
        "ADDIN_PUBLIC_URL": PUBLIC_URL,
        "ADDIN_INCIDENT_RESPONSE_PHONE": "+1 555 0142",
    }
    values.update(env)
    return values


@contextmanager
def notifying_stack(tmp: Any, smtp: SmtpServer, *, worker: bool = True, **env: str) -> Iterator[Any]:
    """``tests.fakes.stack.running_stack`` configured to notify through ``smtp``, with an in-process
    worker (unless ``worker=False``) that polls every 50 ms.

    Yields the stack; its container's ``notifications`` is the :class:`Notifications`.
    """
    from addin_service.notify.cli import start_worker_thread
    from addin_service.notify.worker import WorkerConfig
    from tests.fakes.stack import running_stack

    with running_stack(tmp, **notify_env(smtp, **env)) as stack:
        notifications = stack.app.extensions["addin"].notifications
        stop = (
            start_worker_thread(
                notifications,
                config=WorkerConfig(poll_interval=0.05, escalate_after=float(stack.settings.escalate_after),
                                    escalation_interval=0.05),
            )
            if worker
            else None
        )
        try:
            yield stack
        finally:
            if stop is not None:
                stop()
            notifications.close()  # closing twice (the container may close it too) is harmless
