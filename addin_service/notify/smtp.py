"""``SmtpSender``: notifications through an SMTP relay (``ADDIN_NOTIFY_TRANSPORT=smtp``).

``ADDIN_SMTP_URL`` says how to connect:

* ``smtp://host[:25]`` — plain SMTP, for a relay on the same host or network that accepts the
  service by address. Credentials in this form are refused unless the host is loopback: they
  would cross the network in clear.
* ``smtp+starttls://user:password@host[:587]`` — upgrade with STARTTLS (certificate and host name
  verified), then AUTH.
* ``smtps://user:password@host[:465]`` — TLS from the first byte (RFC 8314), then AUTH.

Outcomes: 250 → sent. A 4xx reply, a dropped connection or a timeout → :class:`DeliveryFailed`
to retry later. A 5xx reply to the message or its recipients → permanent (retrying the same message
cannot help). The message's size is declared (``SIZE=``, RFC 1870) when the relay offers the
extension; a message over the relay's advertised limit is not sent at all, and it or a 552 reply to
the message (RFC 5321: storage exceeded) is a refusal for its size, which the worker answers by
sending it again without the attached copy.

Authentication, TLS and STARTTLS problems are the service's configuration, which an
administrator can fix, so they are retried (and end ``dead`` after the last attempt, which
``/metrics`` shows) rather than failing the message for good.

SMTP cannot tell whether a message whose reply was lost was delivered (RFC 1047), and offers no
way to look: :meth:`SmtpSender.already_sent` always answers False, so a worker killed between the
server's 250 and recording it sends that one message again. The deterministic ``Message-ID`` lets
the receiving system (Exchange's duplicate detection, or a person) recognise the copy.

One connection per worker thread is kept open between messages, so a backlog drains without a
TCP + TLS + AUTH handshake per message; if the relay closed it while idle, the next send notices at
``MAIL FROM`` — before any of the message went out — and reconnects once.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import ssl
import threading
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from addin_service.errors import ConfigError
from addin_service.notify.mime import HeaderInjection, build_message
from addin_service.notify.ports import DeliveryFailed, OutgoingMessage
from addin_service.settings import is_loopback_host
from addin_service.untrusted_numbers import decimal

log = logging.getLogger("addin_service.notify.smtp")

DEFAULT_TIMEOUT = 30.0
CONFIG_RETRY_AFTER = 300
_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


@dataclass(frozen=True)
class SmtpEndpoint:
    """``ADDIN_SMTP_URL``, parsed. The password never appears in ``repr``."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> SmtpEndpoint:
        """:raises ConfigError: naming ``ADDIN_SMTP_URL`` (never echoing the URL: it may hold a password)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise ConfigError("ADDIN_SMTP_URL", "is not a valid URL") from None
        if parts.scheme not in _PORTS or not parts.hostname:
            raise ConfigError(
                "ADDIN_SMTP_URL", "must be smtp://host:25, smtp+starttls://user:pass@host:587 or smtps://host:465"
            )
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        if (username is None) != (password is None):
            raise ConfigError("ADDIN_SMTP_URL", "needs both a user name and a password, or neither")
        if parts.scheme == "smtp" and username and not is_loopback_host(parts.hostname):
            raise ConfigError(
                "ADDIN_SMTP_URL",
                "sends the password in clear with smtp://; use smtp+starttls:// or smtps:// for authenticated relays",
            )
        return cls(parts.scheme, parts.hostname, port or _PORTS[parts.scheme], username, password)


class SmtpSender:
    """:class:`~addin_service.notify.ports.Sender` over SMTP. Thread-safe (a connection per thread).

    :param tls_context: trust for STARTTLS/SMTPS (default: the system's CA store).
    :raises ConfigError: a malformed ``ADDIN_SMTP_URL``.
    """

    name = "smtp"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        self.endpoint = SmtpEndpoint.parse(url)
        self._timeout = timeout
        self._tls = tls_context or ssl.create_default_context()
        self._local_hostname = local_hostname
        self._local = threading.local()
        self._all: list[smtplib.SMTP] = []
        self._all_lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> None:
        """Hand ``message`` to the relay.

        :raises DeliveryFailed: ``permanent`` for a 5xx refusal of the message or its recipients,
            or a message that cannot be written safely; otherwise retryable.
        """
        connection, reused = self._connection()
        try:
            data, eight_bit = build_message(message, eight_bit_ok=connection.has_extn("8bitmime"))
        except (HeaderInjection, ValueError) as exc:
            raise DeliveryFailed(f"The notification could not be written safely ({exc}).", permanent=True) from None
        try:
            try:
                code, _ = connection.mail(message.from_address, _mail_options(connection, data, eight_bit))
            except (smtplib.SMTPServerDisconnected, OSError):
                if not reused:
                    raise
                # The relay closed an idle connection. Nothing of this message was sent: reconnect once.
                self._drop(connection)
                connection, _ = self._connection()
                code, _ = connection.mail(message.from_address, _mail_options(connection, data, eight_bit))
            if code != 250:
                self._reset(connection)
                raise _refused("the sender address was refused", [code], sized=True)
            refused = self._recipients(connection, message.to)
            code, _ = connection.data(data)
            if code != 250:
                self._reset(connection)
                raise _refused("the message was refused", [code], sized=True)
        except DeliveryFailed:
            raise
        except smtplib.SMTPResponseException as exc:
            self._drop(connection)
            raise _refused("the server answered an error", [exc.smtp_code], sized=True) from None
        except (smtplib.SMTPException, OSError) as exc:
            self._drop(connection)
            raise DeliveryFailed(f"The connection to the mail server failed ({type(exc).__name__}).") from None
        if refused:
            # Some recipients accepted, some not: our messages have one recipient, so this is rare.
            log.warning("smtp relay refused some recipients", extra={"refused": len(refused)})
        log.info("notification handed to smtp", extra={"bytes": len(data)})

    def _recipients(self, connection: smtplib.SMTP, recipients: tuple[str, ...]) -> dict[str, int]:
        """RCPT TO each recipient; the refused ones with their codes.

        :raises DeliveryFailed: every recipient was refused (permanent if all with 5xx).
        """
        refused: dict[str, int] = {}
        for recipient in recipients:
            code, _ = connection.rcpt(recipient)
            if code not in (250, 251):
                refused[recipient] = code
        if len(refused) == len(recipients):
            self._reset(connection)
            raise _refused("every recipient was refused", list(refused.values()))
        return refused

    def already_sent(self, message: OutgoingMessage) -> bool:
        """SMTP cannot look: always False (see the module docstring)."""
        return False

    def close(self) -> None:
        """Close every connection this sender opened."""
        with self._all_lock:
            connections, self._all = self._all, []
        for connection in connections:
            self._quit(connection)
        self._local = threading.local()

    # -- connections -------------------------------------------------------------------------

    def _connection(self) -> tuple[smtplib.SMTP, bool]:
        """This thread's open connection (True: reused), or a new one (False).

        A reused connection is not probed first (a NOOP per message halves the throughput of a
        draining backlog); :meth:`send` reconnects once if the relay closed it meanwhile.

        :raises DeliveryFailed: the relay cannot be reached or refuses the service.
        """
        current: smtplib.SMTP | None = getattr(self._local, "connection", None)
        if current is not None:
            return current, True
        connection = self._connect()
        self._local.connection = connection
        with self._all_lock:
            self._all.append(connection)
        return connection, False

    def _connect(self) -> smtplib.SMTP:
        e = self.endpoint
        connection: smtplib.SMTP | None = None
        try:
            if e.scheme == "smtps":
                connection = smtplib.SMTP_SSL(
                    e.host, e.port, local_hostname=self._local_hostname, timeout=self._timeout, context=self._tls
                )
            else:
                connection = smtplib.SMTP(e.host, e.port, local_hostname=self._local_hostname, timeout=self._timeout)
            connection.ehlo()
            if e.scheme == "smtp+starttls":
                connection.starttls(context=self._tls)
                connection.ehlo()
            if e.username and e.password:
                try:
                    connection.login(e.username, e.password)
                except smtplib.SMTPNotSupportedError:
                    raise
                except (smtplib.SMTPException, OSError) as exc:
                    # 535, or a server that hangs up on a bad password: the credentials, either way.
                    raise smtplib.SMTPAuthenticationError(535, type(exc).__name__.encode()) from None
            return connection
        except smtplib.SMTPAuthenticationError:
            self._quit(connection)
            log.error("the smtp relay refused the service's credentials; check ADDIN_SMTP_URL")
            raise DeliveryFailed(
                "The mail server refused this service's credentials (ADDIN_SMTP_URL).", retry_after=CONFIG_RETRY_AFTER
            ) from None
        except smtplib.SMTPNotSupportedError:
            self._quit(connection)
            raise DeliveryFailed(
                "The mail server does not offer what ADDIN_SMTP_URL asks for (STARTTLS or AUTH).",
                retry_after=CONFIG_RETRY_AFTER,
            ) from None
        except ssl.SSLError:
            self._quit(connection)
            raise DeliveryFailed(
                "The TLS connection to the mail server failed (certificate or protocol).",
                retry_after=CONFIG_RETRY_AFTER,
            ) from None
        except smtplib.SMTPResponseException as exc:
            self._quit(connection)
            raise DeliveryFailed(f"The mail server refused the connection ({exc.smtp_code}).") from None
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            self._quit(connection)
            raise DeliveryFailed(f"The mail server could not be reached ({type(exc).__name__}).") from None

    def _reset(self, connection: smtplib.SMTP) -> None:
        """After a refused transaction: RSET, or drop the connection if even that fails."""
        try:
            connection.rset()
        except (smtplib.SMTPException, OSError):
            self._drop(connection)

    def _drop(self, connection: smtplib.SMTP) -> None:
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None
        with self._all_lock:
            if connection in self._all:
                self._all.remove(connection)
        self._quit(connection)

    @staticmethod
    def _quit(connection: smtplib.SMTP | None) -> None:
        if connection is None:
            return
        try:
            connection.quit()
        except (smtplib.SMTPException, OSError):
            with contextlib.suppress(OSError):
                connection.close()


def _mail_options(connection: smtplib.SMTP, data: bytes, eight_bit: bool) -> list[str]:
    """The ``MAIL FROM`` parameters for ``data`` on this connection: its size when the relay takes
    ``SIZE`` (RFC 1870).

    :raises DeliveryFailed: ``too_large``: over the size the relay says it accepts.
    """
    options = ["BODY=8BITMIME"] if eight_bit else []
    if connection.has_extn("size"):
        limit = decimal(connection.esmtp_features.get("size", ""))
        if limit and len(data) > limit:
            raise DeliveryFailed(
                f"The mail server accepts messages of at most {limit} bytes; this one has {len(data)}.",
                permanent=True,
                too_large=True,
            )
        options.append(f"SIZE={len(data)}")
    return options


def _refused(what: str, codes: list[int], *, sized: bool = False) -> DeliveryFailed:
    """5xx everywhere → permanent; any 4xx (or no code) → retry. ``sized``: a reply to the message
    (``MAIL FROM`` with its declared size, or its data), where 552 means it is too large."""
    shown = ", ".join(str(c) for c in codes) or "no code"
    permanent = bool(codes) and all(500 <= c < 600 for c in codes)
    too_large = sized and codes == [552]
    return DeliveryFailed(f"The mail server refused: {what} ({shown}).", permanent=permanent, too_large=too_large)
