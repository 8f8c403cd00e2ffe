"""Low-level, hostile-input-safe helpers for reading transport headers: unfolding, size and
nesting guards, address and domain extraction.

Everything here is pure (no I/O) and never raises on malformed input: problems are returned
as plain sentences so that :mod:`addin_service.cases.origin` can put them in front of an
investigator. The guards exist because the header block is chosen by whoever sent the
message; the standard library's address parser and ``authres`` both recurse on nested
comments and would otherwise hit ``RecursionError`` or take quadratic time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.headerregistry import AddressHeader, HeaderRegistry

# A header value longer than this is recorded but only its first part is parsed.
MAX_PARSED_CHARS = 16_384
# Raw text kept in the analysis for one header (the full value is in headers.txt anyway).
MAX_KEPT_CHARS = 4_096
# Comment nesting deeper than this is never legitimate and makes recursive parsers blow up.
MAX_COMMENT_DEPTH = 16

_FOLD = re.compile(r"\r?\n(?=[ \t])")
_BARE_BREAK = re.compile(r"[\r\n]+")
# Candidate mailboxes anywhere in a string (display names included). Deliberately generous:
# it only ever *adds* addresses to the set of claimed senders, which routing treats with caution.
_ADDRESS_LIKE = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?"
)
# Characters that make a display name render differently from how it is stored.
_BIDI_AND_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")

_REGISTRY = HeaderRegistry()


@dataclass(frozen=True)
class Header:
    """One transport header as analysed: ``index`` is its position in the block (0 = top)."""

    index: int
    name: str  # as given, stripped
    key: str  # lower-case name, for lookups
    value: str  # unfolded, bare line breaks replaced by spaces
    truncated: bool  # value longer than MAX_PARSED_CHARS


@dataclass(frozen=True)
class Mailbox:
    """A mailbox from an address header: decoded display name and lower-case address."""

    display: str
    address: str


def normalise_headers(pairs: Iterable[object]) -> tuple[list[Header], list[str]]:
    """Turn Exchange's (name, value) pairs into :class:`Header` objects, tolerating junk.

    Returns the headers in their original order and the problems met, as sentences.
    Entries that are not (name, value) pairs are skipped and reported, never raised on.
    """
    headers: list[Header] = []
    problems: list[str] = []
    injected: list[str] = []
    skipped = 0
    for position, pair in enumerate(pairs):
        if not isinstance(pair, Sequence) or isinstance(pair, str | bytes) or len(pair) != 2:
            skipped += 1
            continue
        raw_name, raw_value = pair[0], pair[1]
        name = _as_text(raw_name).strip()
        if raw_value is None:
            problems.append(f"Header {position + 1} ({name or 'no name'}) has no value; treated as empty.")
        value, had_bare_break = unfold(_as_text(raw_value))
        if had_bare_break:
            injected.append(name or f"#{position + 1}")
        if not name or not re.fullmatch(r"[\x21-\x39\x3b-\x7e]+", name):
            problems.append(
                f"Header {position + 1} has a malformed name ({shorten(name, 60)!r}); "
                "its value was kept but it matches no known header."
            )
        headers.append(
            Header(
                index=len(headers),
                name=name,
                key=name.lower(),
                value=value,
                truncated=len(value) > MAX_PARSED_CHARS,
            )
        )
    if skipped:
        problems.append(
            f"{skipped} header entr{'y was' if skipped == 1 else 'ies were'} not a (name, value) pair and "
            "skipped."
        )
    if injected:
        problems.append(
            "These headers contain a line break that is not a valid continuation line, which can be "
            "a sign of header injection; the break was read as a space: "
            + ", ".join(sorted(set(injected)))
            + "."
        )
    return headers, problems


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def unfold(value: str) -> tuple[str, bool]:
    """RFC 5322 unfolding: drop CRLF before whitespace. Returns the text and whether a bare
    CR or LF (one not followed by whitespace) had to be replaced by a space."""
    unfolded = _FOLD.sub("", value)
    replaced = _BARE_BREAK.sub(" ", unfolded)
    return replaced.strip(), replaced != unfolded


def shorten(text: str, limit: int = MAX_KEPT_CHARS) -> str:
    """``text`` cut to ``limit`` characters, marked when cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} more characters not shown]"


def comment_depth(text: str) -> int:
    """Deepest parenthesis nesting in ``text`` (backslash escapes respected)."""
    depth = deepest = 0
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")" and depth:
            depth -= 1
    return deepest


def too_hostile_to_parse(text: str) -> str | None:
    """Why ``text`` must not be handed to a recursive parser, or None when it is safe."""
    if len(text) > MAX_PARSED_CHARS:
        return f"it is {len(text)} characters long (more than {MAX_PARSED_CHARS})"
    if comment_depth(text) > MAX_COMMENT_DEPTH:
        return f"its comments are nested more than {MAX_COMMENT_DEPTH} levels deep"
    return None


def normalise_address(address: str) -> str:
    """Lower-case, trimmed address without angle brackets, quotes or a proxy-address prefix
    (``SMTP:``, ``smtp:``, ``sip:``, ``x500:``), so directory aliases compare equal."""
    text = address.strip().strip("<>").strip().strip('"').strip()
    lowered = text.lower()
    for prefix in ("smtp:", "sip:", "x500:"):
        if lowered.startswith(prefix):
            lowered = lowered[len(prefix) :]
            break
    return lowered.rstrip(".")


def domain_of(address: str | None) -> str | None:
    """The lower-case domain of ``address`` (IDNA-encoded when not ASCII), or None."""
    if not address or "@" not in address:
        return None
    domain = address.rsplit("@", 1)[1].strip().strip("[]").rstrip(".").lower()
    if not domain:
        return None
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return domain
    return domain


def in_domains(domain: str | None, domains: Iterable[str]) -> str | None:
    """The entry of ``domains`` that ``domain`` equals or is a subdomain of, or None."""
    if not domain:
        return None
    for candidate in domains:
        candidate = candidate.strip().lower().rstrip(".")
        if candidate and (domain == candidate or domain.endswith("." + candidate)):
            return candidate
    return None


def parse_mailboxes(value: str) -> tuple[list[Mailbox], list[str]]:
    """Mailboxes in an address header value (From, Sender, Reply-To...), decoded.

    Uses the standard library's RFC 5322 parser behind the size and nesting guards; when it
    cannot cope, falls back to the addresses that can be seen in the text. Returns the
    mailboxes and the problems met.
    """
    problems: list[str] = []
    hostile = too_hostile_to_parse(value)
    if hostile is None:
        try:
            parsed = _REGISTRY("from", value)
            if not isinstance(parsed, AddressHeader):  # pragma: no cover - "from" is always one
                return _scanned(value), problems
            mailboxes = [
                Mailbox(display=str(a.display_name), address=normalise_address(str(a.addr_spec)))
                for a in parsed.addresses
                if a.addr_spec
            ]
            if parsed.defects:
                problems.append(
                    "it is not well formed (" + "; ".join(str(d) for d in parsed.defects[:3]) + ")"
                )
            return [m for m in mailboxes if "@" in m.address] or _scanned(value), problems
        except Exception as exc:  # the stdlib parser has known failure modes on hostile input
            problems.append(f"the address parser could not read it ({type(exc).__name__})")
    else:
        problems.append(f"it was not parsed because {hostile}")
    return _scanned(value), problems


def _scanned(value: str) -> list[Mailbox]:
    return [Mailbox(display="", address=a) for a in addresses_in_text(value)]


def addresses_in_text(text: str) -> list[str]:
    """Every address-looking token in ``text``, normalised, in order, without duplicates."""
    seen: dict[str, None] = {}
    for match in _ADDRESS_LIKE.finditer(text):
        address = normalise_address(match.group(0))
        if "@" in address and "." in address.rsplit("@", 1)[1]:
            seen.setdefault(address, None)
    return list(seen)


def has_invisible_characters(text: str) -> bool:
    """Whether ``text`` holds bidirectional overrides or zero-width characters."""
    return bool(_BIDI_AND_INVISIBLE.search(text))


def split_header_block(text: str) -> list[tuple[str, str]]:
    """Split a raw header section (as in ``headers.txt`` or the top of ``message.eml``) into
    (name, value) pairs, keeping folded continuation lines inside the value as received.

    Stops at the first empty line. A line that is neither ``Name: value`` nor a continuation
    becomes a pair with an empty name so that the analysis reports it instead of losing it.
    """
    pairs: list[list[str]] = []
    for line in re.split(r"\r\n|\n|\r", text):
        if line == "":
            break
        if line[0] in " \t" and pairs:
            pairs[-1][1] += "\r\n" + line
            continue
        name, colon, value = line.partition(":")
        if colon and name and not name[0].isspace():
            pairs.append([name, value[1:] if value.startswith(" ") else value])
        else:
            pairs.append(["", line])
    return [(name, value) for name, value in pairs]
