"""REPORT.html: a printable summary of an exported case, for the people who act on it.

Investigators, HR and the police are asked for a printout "with full headers"; this page puts each
report's facts, the sender's origin analysis, the hashes, the message text and the full transport
headers on paper, one report per page. It is made from the package files at export time and says
so: it is a reading aid, not evidence, and the files it summarises are beside it in the zip. A
package that did not pass the export's check is marked at the top of the page and on its own page,
with its problems and each file's hash as sealed next to the hash of what was found.

Everything shown comes from an untrusted message, so the page is rendered with autoescaping, the
message's HTML is never rendered (its text is extracted instead), there is no script and no remote
resource, and a Content-Security-Policy meta tag forbids both should anything slip through.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from addin_service.cases.origin import verdict_words
from addin_service.evidence.canonical import SHA256_PREFIX
from addin_service.evidence.fsio import FileDigest, read_regular
from addin_service.evidence.layout import HEADERS, MESSAGE, METADATA, PAYLOAD_FILES
from addin_service.evidence.ledger import LedgerEntry
from addin_service.evidence.ports import VerifyProblem

# Larger messages are listed with their hashes but not parsed: the email package holds the whole
# message (and its decoded parts) in memory.
MAX_PARSED_MESSAGE_BYTES = 32 * 1024 * 1024
MAX_BODY_CHARS = 200_000

_TEMPLATES = Path(__file__).resolve().parent / "templates"
_BLOCK_TAGS = frozenset(
    {"br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "hr"}
)
_SKIPPED_TAGS = frozenset({"script", "style", "head", "title", "template"})


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class MessageText:
    """What the page shows of the message itself."""

    body: str | None  # the text, or None when none could be had
    body_source: str  # where the text came from, or why there is none
    truncated: bool = False
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class FileIntegrity:
    """One payload file's sha256 and size as its manifest lists them (sealed) and as exported (found)."""

    name: str
    sealed_sha256: str | None = None
    sealed_size: int | None = None
    found_sha256: str | None = None
    found_size: int | None = None

    @property
    def matches(self) -> bool:
        return self.sealed_sha256 is not None and (self.sealed_sha256, self.sealed_size) == (
            self.found_sha256,
            self.found_size,
        )


@dataclass(frozen=True)
class PackageView:
    """One exported package, read from its files."""

    case_id: str
    report_id: str
    sequence: int
    manifest_sha256: str
    metadata: dict[str, Any] = field(default_factory=dict)
    headers: str = ""
    message_sha256: str | None = None
    message_size: int | None = None
    text: MessageText | None = None
    missing: tuple[str, ...] = ()
    filed: bool | None = None  # whether the case database records it as a report; None: not known
    problems: tuple[str, ...] = ()  # how it does not match what was sealed; empty when intact
    files: tuple[FileIntegrity, ...] = ()  # each payload file, as sealed and as exported

    @property
    def message(self) -> FileIntegrity:
        """message.eml as sealed and as exported."""
        return next((f for f in self.files if f.name == MESSAGE), FileIntegrity(MESSAGE))


def read_package(
    folder: Path,
    entry: LedgerEntry,
    exported: Mapping[str, tuple[str, int]],
    *,
    listed: Mapping[str, FileDigest] | None = None,
    problems: Sequence[str] = (),
) -> PackageView:
    """Read what the page needs from a package folder. ``exported``: the files just put in the zip,
    with their sha256 (hex) and size; any other file is named as missing and not read. ``listed``:
    what the package's manifest lists for each payload file; ``problems``: how the package does not
    match what was sealed (from the export's check)."""
    missing: list[str] = []

    def read(name: str) -> bytes | None:
        if name in exported:
            try:
                return read_regular(folder / name)
            except OSError:
                pass
        missing.append(name)
        return None

    metadata: dict[str, Any] = {}
    raw_metadata = read(METADATA)
    if raw_metadata is not None:
        try:
            loaded = json.loads(raw_metadata)
            metadata = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            missing.append(METADATA)
    raw_headers = read(HEADERS)
    headers = raw_headers.decode("utf-8", errors="replace").replace("\r\n", "\n") if raw_headers else ""
    digest, size = exported.get(MESSAGE, (None, None))
    text: MessageText | None = None
    if size is not None and size > MAX_PARSED_MESSAGE_BYTES:
        text = MessageText(None, f"not summarised here: larger than {MAX_PARSED_MESSAGE_BYTES} bytes")
    else:
        raw_message = read(MESSAGE)
        text = message_text(raw_message) if raw_message is not None else None
    sealed = listed or {}
    files = tuple(
        FileIntegrity(
            name,
            sealed_sha256=sealed[name].sha256 if name in sealed else None,
            sealed_size=sealed[name].size if name in sealed else None,
            found_sha256=SHA256_PREFIX + exported[name][0] if name in exported else None,
            found_size=exported[name][1] if name in exported else None,
        )
        for name in PAYLOAD_FILES
    )
    return PackageView(
        case_id=entry.case_id,
        report_id=entry.report_id,
        sequence=entry.sequence,
        manifest_sha256=entry.manifest_sha256,
        metadata=metadata,
        headers=headers,
        message_sha256=f"sha256:{digest}" if digest else None,
        message_size=size,
        text=text,
        missing=tuple(missing),
        problems=tuple(problems),
        files=files,
    )


def message_text(raw: bytes) -> MessageText:
    """The message's readable text (its plain-text part, else its HTML part as text) and its
    attachments. Never raises: a message the email package cannot read is described instead."""
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
        attachments = tuple(_attachments(message))
        body_part = message.get_body(preferencelist=("plain", "html")) if isinstance(message, EmailMessage) else None
        if body_part is None:
            return MessageText(None, "the message has no text or HTML part", attachments=attachments)
        content = _decoded_text(body_part)
        source = "the message's plain-text part"
        if body_part.get_content_subtype() == "html":
            content = html_to_text(content)
            source = "the message's HTML part, shown as text (never rendered)"
    except Exception:  # noqa: BLE001 - any message, however malformed, must still get a page
        return MessageText(None, "the message could not be read as MIME; see message.eml")
    content = content.replace("\r\n", "\n")
    truncated = len(content) > MAX_BODY_CHARS
    return MessageText(content[:MAX_BODY_CHARS], source, truncated=truncated, attachments=attachments)


def _decoded_text(part: Message) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        if isinstance(content, str):
            return content
    except (LookupError, UnicodeError, ValueError):
        pass
    payload = part.get_payload(decode=True)
    return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""


def _attachments(message: Message) -> list[Attachment]:
    found: list[Attachment] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        name = part.get_filename()
        if name is None and part.get_content_disposition() != "attachment":
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        found.append(
            Attachment(
                name=str(name or "(no name)"),
                content_type=part.get_content_type(),
                size=len(data),
                sha256="sha256:" + hashlib.sha256(data).hexdigest(),
            )
        )
    return found


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping += 1
        elif tag in _BLOCK_TAGS:
            self.pieces.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.pieces.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.pieces.append(data)


def html_to_text(html: str) -> str:
    """The text of an HTML body: tags dropped, scripts and styles left out, blocks on new lines."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    lines = [" ".join(line.split()) for line in "".join(extractor.pieces).splitlines()]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(_TEMPLATES)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["verdict"] = lambda value: verdict_words(str(value) if value else None).capitalize()
    return env


_ENV = _environment()


def render_report(
    *,
    case_id: str,
    packages: list[PackageView],
    exported_at: str,
    fingerprint: str,
    problems: Sequence[VerifyProblem] = (),
) -> bytes:
    """REPORT.html for one export, as UTF-8 bytes. ``problems``: everything the export's check found
    wrong with the case's reports (including those whose package is missing), listed at the top."""
    template = _ENV.get_template("printable_report.html.j2")
    damaged = sorted({problem.report_id for problem in problems if problem.report_id})
    return template.render(
        case_id=case_id,
        packages=packages,
        exported_at=exported_at,
        fingerprint=fingerprint,
        problems=problems,
        damaged=damaged,
    ).encode("utf-8")
