"""SmtpSender against a real SMTP server on loopback: what a recipient receives, and every failure."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from addin_service.demo.ews_seed import sample_messages
from addin_service.demo.tls import ThrowawayTls, make_throwaway_tls
from addin_service.errors import ConfigError
from addin_service.notify.ports import Attachment, DeliveryFailed, OutgoingMessage
from addin_service.notify.smtp import SmtpEndpoint, SmtpSender
from tests.fakes.smtp import SmtpServer, raw_attachment

REPORTED = sample_messages()["05-attachment-8bit"]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayTls:
    return make_throwaway_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def notification(*attachments: Attachment, to: str = "security@contoso.com", subject: str = "Report"
                 ) -> OutgoingMessage:
    return OutgoingMessage(
        message_id="<R-0123456789ABCDEF.security.0123456789abcdef@contoso.com>",
        from_address="report-harassment@contoso.com",
        to=(to,),
        subject=subject,
        text="Case HR-2026-7K3M9Q2X was filed.\n",
        html="<p>Case <b>HR-2026-7K3M9Q2X</b> was filed.</p>",
        urgent=True,
        attachments=attachments,
    )


_OPEN: list[SmtpSender] = []


@pytest.fixture(autouse=True)
def _close_senders() -> Iterator[None]:
    """Every sender a test makes is closed after it, as the service closes its own on shutdown."""
    yield
    while _OPEN:
        _OPEN.pop().close()


def sender(server: SmtpServer, tls: ThrowawayTls | None = None, url: str | None = None) -> SmtpSender:
    made = SmtpSender(url or server.url(), timeout=5, tls_context=tls.client_context() if tls else None)
    _OPEN.append(made)
    return made


def test_the_recipient_reads_both_parts_and_the_untouched_message(smtp: SmtpServer) -> None:
    sender(smtp).send(notification(Attachment("reported.eml", "message/rfc822", REPORTED)))

    [received] = smtp.wait_for(1)
    message = received.message()
    assert received.mail_from == "report-harassment@contoso.com"
    assert received.rcpt_tos == ("security@contoso.com",)
    assert "BODY=8BITMIME" in received.mail_options
    assert message["Importance"] == "high"
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and "HR-2026-7K3M9Q2X" in plain.get_content()
    assert html is not None and "<b>HR-2026-7K3M9Q2X</b>" in html.get_content()
    [attached] = list(message.iter_attachments())
    assert attached.get_content_type() == "message/rfc822"
    assert raw_attachment(received.data) == REPORTED


def test_a_server_without_8bitmime_gets_the_message_as_an_eml_file() -> None:
    with SmtpServer(eight_bit_mime=False) as smtp:
        sender(smtp).send(notification(Attachment("reported.eml", "message/rfc822", REPORTED)))
        [received] = smtp.wait_for(1)

    [attached] = list(received.message().iter_attachments())
    assert received.data.isascii()
    assert "BODY=8BITMIME" not in received.mail_options
    assert attached.get_content_type() == "application/octet-stream"
    assert attached.get_content() == REPORTED


def test_one_connection_carries_many_messages(smtp: SmtpServer) -> None:
    relay = sender(smtp)
    for index in range(5):
        relay.send(notification(to=f"person{index}@contoso.com"))

    assert len(smtp.wait_for(5)) == 5
    assert len(smtp._protocols) == 1


def test_starttls_with_authentication(tls: ThrowawayTls) -> None:
    with SmtpServer(tls=tls, credentials=("relay-user", "s3cret pass")) as smtp:
        sender(smtp, tls, smtp.url()).send(notification())
        assert len(smtp.wait_for(1)) == 1
        assert smtp.auth_attempts == 1


def test_implicit_tls_with_authentication(tls: ThrowawayTls) -> None:
    with SmtpServer(tls=tls, implicit_tls=True, credentials=("relay-user", "pw")) as smtp:
        sender(smtp, tls).send(notification())
        assert len(smtp.wait_for(1)) == 1


def test_a_certificate_the_service_does_not_trust_is_a_retryable_configuration_problem(tls: ThrowawayTls) -> None:
    with SmtpServer(tls=tls, credentials=("u", "p")) as smtp, pytest.raises(DeliveryFailed) as caught:
        sender(smtp, url=smtp.url()).send(notification())  # the system trust store only

    assert not caught.value.permanent
    assert caught.value.retry_after == 300


def test_wrong_credentials_are_retried_not_dropped(tls: ThrowawayTls) -> None:
    with SmtpServer(tls=tls, credentials=("u", "right")) as smtp, pytest.raises(DeliveryFailed) as caught:
        sender(smtp, tls, f"smtp+starttls://u:wrong@127.0.0.1:{smtp.port}").send(notification())

    assert not caught.value.permanent
    assert "credentials" in caught.value.detail
    assert "wrong" not in caught.value.detail


@pytest.mark.parametrize("stage", ["MAIL", "RCPT", "DATA"])
def test_a_4xx_reply_is_retried(smtp: SmtpServer, stage: str) -> None:
    smtp.refuse(stage, "451 4.3.0 Try again later")

    with pytest.raises(DeliveryFailed) as caught:
        sender(smtp).send(notification())

    assert not caught.value.permanent
    assert "451" in caught.value.detail


@pytest.mark.parametrize("stage", ["MAIL", "RCPT", "DATA"])
def test_a_5xx_reply_is_permanent(smtp: SmtpServer, stage: str) -> None:
    smtp.refuse(stage, "550 5.1.1 No such user")

    with pytest.raises(DeliveryFailed) as caught:
        sender(smtp).send(notification())

    assert caught.value.permanent


def test_the_message_size_is_declared(smtp: SmtpServer) -> None:
    sender(smtp).send(notification())

    [received] = smtp.wait_for(1)
    assert f"SIZE={len(received.data)}" in received.mail_options


def test_a_message_over_the_advertised_size_is_not_sent_and_refused_for_its_size() -> None:
    copy = Attachment("reported-message.eml", "message/rfc822", b"From: x@example.net\r\n\r\n" + b"v" * 30_000)
    with SmtpServer(data_size_limit=20_000) as small:
        relay = sender(small)
        with pytest.raises(DeliveryFailed) as caught:
            relay.send(notification(copy))

        assert caught.value.permanent and caught.value.too_large
        relay.send(notification())  # the connection is still good, and a smaller message goes
        assert len(small.wait_for(1)) == 1


@pytest.mark.parametrize(
    ("stage", "reply", "too_large"),
    [
        ("DATA", "552 5.3.4 Message too big for system", True),
        ("MAIL", "552 5.3.4 Message size exceeds fixed maximum message size", True),
        ("DATA", "554 5.6.0 Message rejected", False),
        ("RCPT", "552 5.2.2 Mailbox full", False),  # the recipient's storage, not this message's size
    ],
)
def test_552_to_the_message_is_a_refusal_for_its_size(
    smtp: SmtpServer, stage: str, reply: str, too_large: bool
) -> None:
    smtp.refuse(stage, reply)

    with pytest.raises(DeliveryFailed) as caught:
        sender(smtp).send(notification())

    assert caught.value.permanent
    assert caught.value.too_large is too_large


def test_the_connection_survives_a_refused_message(smtp: SmtpServer) -> None:
    relay = sender(smtp)
    smtp.refuse("RCPT", "550 5.1.1 No such user")
    with pytest.raises(DeliveryFailed):
        relay.send(notification(to="gone@contoso.com"))

    relay.send(notification())

    assert [r.rcpt_tos for r in smtp.wait_for(1)] == [("security@contoso.com",)]


def test_a_server_that_is_not_there_is_retried() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(DeliveryFailed) as caught:
        SmtpSender(f"smtp://127.0.0.1:{port}", timeout=2).send(notification())

    assert not caught.value.permanent


def test_a_dropped_connection_is_retried_and_the_next_send_reconnects(smtp: SmtpServer) -> None:
    relay = sender(smtp)
    relay.send(notification())
    for protocol in smtp._protocols:
        assert smtp._loop is not None
        smtp._loop.call_soon_threadsafe(protocol.transport.close)  # type: ignore[union-attr]
    smtp.wait_for(1)

    relay.send(notification(to="again@contoso.com"))

    assert [r.rcpt_tos[0] for r in smtp.wait_for(2)] == ["security@contoso.com", "again@contoso.com"]


def test_smtp_cannot_know_what_was_sent() -> None:
    assert SmtpSender("smtp://127.0.0.1:25").already_sent(notification()) is False


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://relay.contoso.com", "must be smtp://"),
        ("smtp://user:pw@relay.contoso.com", "in clear"),
        ("smtp+starttls://user@relay.contoso.com", "both a user name and a password"),
        ("smtps://relay.contoso.com:notaport", "not a valid URL"),
    ],
)
def test_a_bad_smtp_url_names_the_variable_but_never_shows_the_password(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SmtpEndpoint.parse(url)

    assert caught.value.variable == "ADDIN_SMTP_URL"
    assert problem in caught.value.detail
    assert "pw" not in caught.value.detail


def test_the_smtp_url_picks_default_ports_and_unquotes_credentials() -> None:
    endpoint = SmtpEndpoint.parse("smtp+starttls://relay%40contoso.com:p%3Ass@mail.contoso.com")

    assert (endpoint.host, endpoint.port, endpoint.username, endpoint.password) == (
        "mail.contoso.com", 587, "relay@contoso.com", "p:ss"
    )
    assert "p:ss" not in repr(endpoint)
    assert SmtpEndpoint.parse("smtps://mail.contoso.com").port == 465
    assert SmtpEndpoint.parse("smtp://localhost").port == 25


def test_the_relay_can_be_on_this_machine_with_a_password(tmp_path: Path) -> None:
    assert SmtpEndpoint.parse("smtp://u:p@127.0.0.1:2525").username == "u"
