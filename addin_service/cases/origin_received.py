"""Reading ``Received`` headers into hops an investigator can follow.

``Received`` has no grammar that real servers keep to (Exchange, Postfix, Gmail and spam
tools all write it differently), so this is a tolerant tokenizer, not a validator: it picks
out the ``from``/``by``/``with``/``via``/``id``/``for`` clauses, the IP addresses written in
the ``from`` and ``by`` clauses and their comments, and the date after the last ``;``.
Anything it cannot read stays in ``raw`` and is described in ``problems``. Pure; never raises.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from addin_service.cases.origin_headers import MAX_COMMENT_DEPTH, MAX_KEPT_CHARS, MAX_PARSED_CHARS, shorten

_KEYWORDS = ("from", "by", "via", "with", "id", "for")


@dataclass(frozen=True)
class ReceivedHop:
    """One ``Received`` header. ``position`` 0 is the topmost header, i.e. the last hop."""

    position: int
    from_host: str | None
    from_ips: tuple[str, ...]
    by_host: str | None
    by_ips: tuple[str, ...]
    with_protocol: str | None
    via: str | None
    smtp_id: str | None
    for_address: str | None
    timestamp: str | None  # UTC, ISO 8601 with Z, when the date could be read
    raw: str
    problems: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "from_host": self.from_host,
            "from_ips": list(self.from_ips),
            "by_host": self.by_host,
            "by_ips": list(self.by_ips),
            "with": self.with_protocol,
            "via": self.via,
            "id": self.smtp_id,
            "for": self.for_address,
            "timestamp": self.timestamp,
            "raw": self.raw,
            "problems": list(self.problems),
        }


def parse_received(position: int, value: str) -> ReceivedHop:
    """Read one unfolded ``Received`` value. Never raises."""
    problems: list[str] = []
    text = value
    if len(text) > MAX_PARSED_CHARS:
        problems.append(f"only the first {MAX_PARSED_CHARS} of {len(text)} characters were read")
        text = text[:MAX_PARSED_CHARS]
    clauses_text, semicolon, date_text = text.rpartition(";")
    if not semicolon:
        clauses_text, date_text = text, ""
        problems.append("it has no date (no ';' before a date)")
    timestamp = None
    if date_text.strip():
        timestamp = utc_timestamp(date_text)
        if timestamp is None:
            problems.append(f"its date could not be read ({shorten(date_text.strip(), 80)!r})")

    words: dict[str, list[str]] = {}
    comments: dict[str, list[str]] = {}
    current: str | None = None
    tokens, deep = _tokens(clauses_text)
    if deep:
        problems.append(f"comments nested more than {MAX_COMMENT_DEPTH} levels deep were not read")
    for kind, token in tokens:
        if kind == "comment":
            if current is not None:
                comments.setdefault(current, []).append(token)
            continue
        keyword = token.lower()
        if keyword in _KEYWORDS:
            if keyword in words:
                problems.append(f"it has more than one '{keyword}' clause; the first was kept")
                current = f"{keyword}#repeated"
            else:
                current = keyword
            words.setdefault(current, [])
            continue
        if current is None:
            problems.append(f"it starts with text outside any clause ({shorten(token, 40)!r})")
            current = "#unclaimed"
        words.setdefault(current, []).append(token)

    def first(clause: str) -> str | None:
        found = words.get(clause) or []
        return found[0] if found else None

    def joined(clause: str) -> str | None:
        found = words.get(clause) or []
        return " ".join(found) if found else None

    for_address = first("for")
    if for_address:
        for_address = for_address.strip("<>")
    hop = ReceivedHop(
        position=position,
        from_host=_host(first("from")),
        from_ips=_ips(words.get("from", []) + comments.get("from", [])),
        by_host=_host(first("by")),
        by_ips=_ips(words.get("by", []) + comments.get("by", [])),
        with_protocol=joined("with"),
        via=joined("via"),
        smtp_id=first("id"),
        for_address=for_address or None,
        timestamp=timestamp,
        raw=shorten(value, MAX_KEPT_CHARS),
        problems=tuple(dict.fromkeys(problems)),
    )
    if hop.from_host is None and hop.by_host is None:
        return _with_problem(hop, "neither a 'from' nor a 'by' host could be found")
    return hop


def _with_problem(hop: ReceivedHop, problem: str) -> ReceivedHop:
    return ReceivedHop(**{**hop.__dict__, "problems": (*hop.problems, problem)})


def _host(word: str | None) -> str | None:
    if not word:
        return None
    return word.strip("[]").rstrip(".") or None


def _tokens(text: str) -> tuple[list[tuple[str, str]], bool]:
    """Words and comments; bracketed literals stay one word. Returns (tokens, too_deep)."""
    tokens: list[tuple[str, str]] = []
    too_deep = False
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif char == "(":
            depth, j, escaped = 0, i, False
            while j < n:
                c = text[j]
                if escaped:
                    escaped = False
                elif c == "\\":
                    escaped = True
                elif c == "(":
                    depth += 1
                    too_deep = too_deep or depth > MAX_COMMENT_DEPTH
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            tokens.append(("comment", text[i + 1 : j]))
            i = j + 1
        elif char in "[<":
            close = "]" if char == "[" else ">"
            j = text.find(close, i + 1)
            j = n - 1 if j < 0 else j
            tokens.append(("word", text[i : j + 1]))
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] != "(":
                j += 1
            tokens.append(("word", text[i:j]))
            i = j
    return tokens, too_deep


def _ips(parts: list[str]) -> tuple[str, ...]:
    """IP addresses written anywhere in these words and comments, in order, each once."""
    found: dict[str, None] = {}
    for part in parts:
        for piece in (
            part.replace("(", " ")
            .replace(")", " ")
            .replace("[", " ")
            .replace("]", " ")
            .replace(",", " ")
            .replace("=", " ")
            .split()
        ):
            candidate = piece.rstrip(".;")
            if candidate.lower().startswith("ipv6:"):
                candidate = candidate[5:]
            candidate = candidate.split("%", 1)[0]
            if not candidate or not any(c.isdigit() for c in candidate):
                continue
            try:
                found.setdefault(str(ipaddress.ip_address(candidate)), None)
            except ValueError:
                continue
    return tuple(found)


def utc_timestamp(text: str) -> str | None:
    """An RFC 5322 date as UTC ``YYYY-MM-DDTHH:MM:SSZ``, or None when it cannot be read.

    A date without a zone (``-0000``) is taken as UTC, which is what RFC 5322 says it means.
    """
    try:
        moment = parsedate_to_datetime(text.strip())
    except (ValueError, TypeError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError):
        return None


def parse_utc(timestamp: str) -> datetime:
    """The inverse of :func:`utc_timestamp`, for comparing hops."""
    return datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
