"""REPORT.html in a case export: the printable summary, made through the whole service from a
hostile message, and read back as a person (or a browser) would."""

from __future__ import annotations

import hashlib
import json
import zipfile
from html.parser import HTMLParser
from pathlib import Path

from addin_service.evidence.files import FileEvidenceStore
from tests.fakes.stack import REPORTER, running_stack

HOSTILE = (
    b'From: "<img src=x onerror=alert(1)> Sam" <sam@fabrikam.example>\r\n'
    b"To: alex@contoso.com\r\n"
    b"Subject: <script>alert('subject')</script> you will regret this\r\n"
    b"Date: Tue, 25 Nov 2026 09:00:00 +0000\r\n"
    b"Message-ID: <hostile-1@fabrikam.example>\r\n"
    b"Received: from mx.fabrikam.example (192.0.2.7) by mx01.contoso.com; Tue, 25 Nov 2026 09:00:05 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b"<html><head><style>p{color:red}</style><script>steal()</script></head><body>"
    b"<p>I know where you live.</p><img src=\"http://tracker.evil.example/pixel.png\">"
    b"<p>Answer me &amp; <b>now</b>.</p></body></html>\r\n"
    b"--b1\r\n"
    b"Content-Type: application/pdf\r\n"
    b'Content-Disposition: attachment; filename="photo of your house.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQKJcOkw7zDtsOfCg==\r\n"
    b"--b1--\r\n"
)


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(name for name, _ in attrs)


def exported_report(tmp_path: Path, mime: bytes, **body: object) -> tuple[str, dict[str, object], Path]:
    with running_stack(tmp_path) as stack:
        item_id = stack.add_message(mime)
        response = stack.report(item_id, note="He said <b>this</b> in the car park.", **body)
        assert response.status_code == 201, response.get_json()
        filed = response.get_json()
        store = FileEvidenceStore(stack.evidence_root)
        out = tmp_path / "case.zip"
        store.export_case(filed["case_id"], out)
    with zipfile.ZipFile(out) as zf:
        page = zf.read("REPORT.html").decode("utf-8")
        zf.extractall(tmp_path / "unzipped")
    return page, filed, tmp_path / "unzipped" / filed["case_id"] / filed["report_id"]


def test_the_page_shows_the_report_the_message_and_its_full_headers(tmp_path: Path) -> None:
    page, filed, package = exported_report(tmp_path, HOSTILE, feels_unsafe=True)

    assert f"Case {filed['case_id']}" in page and f"Report {filed['report_id']}" in page
    assert REPORTER in page and "Yes" in page  # who reported; felt unsafe
    assert "He said &lt;b&gt;this&lt;/b&gt; in the car park." in page
    assert "I know where you live." in page and "Answer me &amp; now." in page
    assert "photo of your house.pdf" in page
    assert "Received: from mx.fabrikam.example (192.0.2.7)" in page
    message_sha256 = "sha256:" + hashlib.sha256((package / "message.eml").read_bytes()).hexdigest()
    manifest = json.loads((package / "manifest.json").read_bytes())
    assert message_sha256 == manifest["files"]["message.eml"]["sha256"] and message_sha256 in page
    assert "a reading aid" in page


def test_nothing_from_the_message_can_run_or_load_anything(tmp_path: Path) -> None:
    page, _, _ = exported_report(tmp_path, HOSTILE)

    elements = _Elements()
    elements.feed(page)
    assert "script" not in elements.tags and "img" not in elements.tags
    assert not {"src", "href", "onerror", "style"} & set(elements.attributes)
    assert "tracker.evil.example" not in page and "steal()" not in page
    assert "&lt;script&gt;alert(&#39;subject&#39;)&lt;/script&gt;" in page
    assert "default-src 'none'" in page


def test_a_plain_text_message_is_shown_as_written(tmp_path: Path) -> None:
    mime = (
        b"From: Sam <sam@fabrikam.example>\r\nTo: alex@contoso.com\r\nSubject: plain\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nLine one <not a tag>\r\n  indented line two\r\n"
    )
    page, _, _ = exported_report(tmp_path, mime)
    assert "Line one &lt;not a tag&gt;\n  indented line two" in page
    assert "plain-text part" in page


def test_an_edited_message_is_marked_damaged_with_the_hash_it_was_filed_with(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        response = stack.report(stack.add_message(HOSTILE))
        assert response.status_code == 201, response.get_json()
        filed = response.get_json()
        message = stack.evidence_root / filed["case_id"] / filed["report_id"] / "message.eml"
        message.parent.chmod(0o755)
        message.chmod(0o644)
        message.write_bytes(message.read_bytes().replace(b"I know where you live.", b"I know where you work."))
        out = tmp_path / "case.zip"
        result = FileEvidenceStore(stack.evidence_root).export_case(filed["case_id"], out)
    with zipfile.ZipFile(out) as zf:
        page = zf.read("REPORT.html").decode("utf-8")

    found = "sha256:" + hashlib.sha256(message.read_bytes()).hexdigest()
    assert [p.problem for p in result.problems] == [
        "message.eml does not match its sha256 in the manifest (it was edited)"
    ]
    assert page.count("DAMAGED EVIDENCE") == 2  # at the top, and on the report's own page
    assert f"message.eml as sealed (manifest.json)</th><td class=\"hash\">{filed['sha256']}" in page
    assert f"message.eml as found (this export)</th><td class=\"hash\">{found}" in page
