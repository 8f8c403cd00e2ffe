"""The printable summary's reading of a message (addin_service.evidence.printable)."""

from __future__ import annotations

from addin_service.evidence.printable import MAX_BODY_CHARS, html_to_text, message_text


def mime(content_type: str, body: bytes, extra: bytes = b"") -> bytes:
    head = b"From: a@example.net\r\nSubject: s\r\nContent-Type: " + content_type.encode() + b"\r\n"
    return head + extra + b"\r\n" + body


def test_the_plain_text_part_is_preferred_over_html() -> None:
    alternative = (
        b"From: a@example.net\r\nContent-Type: multipart/alternative; boundary=x\r\n\r\n"
        b"--x\r\nContent-Type: text/html\r\n\r\n<p>html version</p>\r\n"
        b"--x\r\nContent-Type: text/plain\r\n\r\nplain version\r\n--x--\r\n"
    )
    text = message_text(alternative)
    assert text.body is not None and text.body.strip() == "plain version"
    assert "plain-text" in text.body_source


def test_html_becomes_text_without_scripts_styles_or_markup() -> None:
    html = "<style>b{}</style><script>x()</script><div>one<br>two</div><p>three &lt;4&gt;</p><!-- hidden -->"
    assert html_to_text(html) == "one\ntwo\n\nthree <4>"


def test_quoted_printable_and_charsets_are_decoded() -> None:
    encoding = b"Content-Transfer-Encoding: quoted-printable\r\n"
    text = message_text(mime("text/plain; charset=iso-8859-1", b"Gr=FC=DFe aus K=F6ln", encoding))
    assert text.body == "Grüße aus Köln"


def test_an_unknown_charset_still_gives_text() -> None:
    text = message_text(mime("text/plain; charset=x-no-such-charset", b"still readable \xff"))
    assert text.body is not None and text.body.startswith("still readable")


def test_a_message_without_any_text_part_says_so() -> None:
    text = message_text(mime("image/png", b"\x89PNG"))
    assert text.body is None and "no text" in text.body_source


def test_malformed_mime_never_raises() -> None:
    broken = b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n\x00\xff garbage"
    text = message_text(broken)
    assert text.body_source  # described, whatever the email package made of it


def test_very_long_text_is_cut_and_says_so() -> None:
    text = message_text(mime("text/plain", b"a" * (MAX_BODY_CHARS + 10)))
    assert text.truncated and text.body is not None and len(text.body) == MAX_BODY_CHARS


def test_attachments_are_listed_with_size_and_hash_not_opened() -> None:
    message = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b'--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="x.bin"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--\r\n"
    )
    [attachment] = message_text(message).attachments
    assert (attachment.name, attachment.size) == ("x.bin", 3)
    assert attachment.sha256 == "sha256:ae4b3280e56e2faf83f414a6e3dabe9d5fbe18976544c05fed121accb85b53fc"
