"""Low-level, hostile-input-safe helpers for reading transport headers: unfolding, size and
nesting guards, address and domain extraction.

Everything here is pure (no I/O) and never raises on malformed input: problems are returned
as plain sentences so that :mod:`addin_service.cases.origin` can put them in front of an
investigator. The guards exist because the header block is chosen by whoever sent the
message; the standard library's address parser and ``authres`` both recurse on nested
comments and would otherwise hit ``RecursionError``, and both take tens of microseconds per
character (the address parser quadratic time on a run of double quotes). So each is handed
only short values and, per message, only a bounded amount of text (see
:func:`normalise_headers`); what they are not given is still searched for addresses by a
linear scan (:func:`addresses_in_text`), so padding a header cannot hide an address in it.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.headerregistry import AddressHeader, HeaderRegistry
from typing import TypeGuard

# A header value longer than this is recorded but only its first part is parsed.
MAX_PARSED_CHARS = 16_384
# Raw text kept in the analysis for one header (the full value is in headers.txt anyway).
MAX_KEPT_CHARS = 4_096
# Comment nesting deeper than this is never legitimate and makes recursive parsers blow up.
MAX_COMMENT_DEPTH = 16
# An address header value longer than this (RFC 5322's line is at most 998 characters) is not
# given to the standard library's parser, which takes up to ~40 ms for 1,000 hostile characters
# and grows quadratically; its addresses are found by the linear scan instead.
MAX_ADDRESS_PARSER_CHARS = 1_000
# Address headers of one kind (From, Sender, Reply-To) parsed one by one. A message may have
# only one of each; the values of any further ones are read together with the last of these,
# as one address list, so every address in them is still read.
MAX_SEPARATE_ADDRESS_HEADERS = 2
# Mailboxes taken from one address header value. Any other address in a From or Sender header
# is still found by the scan of its text (addresses_in_text), recorded as written in the header,
# and treated as a claimed sender by routing.
MAX_MAILBOXES_PER_HEADER = 16
# An Authentication-Results value (or ARC-Authentication-Results) longer than this is not given
# to authres, which takes ~16 microseconds per character of hostile text, twice when repaired.
MAX_AUTHRES_CHARS = 2_048
# Characters of Authentication-Results, and separately of ARC-Authentication-Results, given to
# authres per message, top first; headers below the first one over budget are not read.
# Ours are on top, and a real message has a few hundred characters of them.
MAX_AUTHRES_CHARS_PER_MESSAGE = 4_096

_ADDRESS_HEADERS = {"from": "From", "sender": "Sender", "reply-to": "Reply-To"}
_AUTHRES_HEADERS = {
    "authentication-results": "Authentication-Results",
    "arc-authentication-results": "ARC-Authentication-Results",
}

_HEADER_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
# Stands for a line break being unfolded, so that removing one never joins two others into a fold.
_MARK = "\ue000"
_BARE_BREAK = re.compile(r"[\r\n]+")
# Candidate mailboxes anywhere in a string (display names included). Deliberately generous:
# it only ever *adds* addresses to the set of claimed senders, which routing treats with caution.
# A run of local-part characters is taken whole (possessively) and, when an '@' and a domain
# follow it, its last 64 characters are the local part: one pass, linear in the text, where
# trying every start in a long run would be quadratic.
_ADDRESS_LIKE = re.compile(
    r"([A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]++)(?:@([A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?))?"
)
# RFC 2047 encoded words, and the white space between two of them (which is not part of the text).
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([BbQq])\?([^?\s]*)\?=")
_BETWEEN_ENCODED_WORDS = re.compile(r"(?<=\?=)\s+(?==\?)")
# Comments, quoted strings and quoted pairs, read one token at a time (see _without_comments), and
# with the punctuation of an address list too (see _scanned_mailboxes and _closed).
_QUOTING_TOKEN = re.compile(r'\\.?|[()"]|[^()"\\]+', re.DOTALL)
_ADDRESS_LIST_TOKEN = re.compile(r'\\.?|[()<>":]|[,;]+|[^()<>",:;\\]+', re.DOTALL)
# Codecs written in Python, slow on long input (punycode's decoding is quadratic): never used to
# decode an encoded word.
_SLOW_CODECS = frozenset({"punycode", "idna"})
# Characters that make a display name render differently from how it is stored.
_BIDI_AND_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")

_REGISTRY = HeaderRegistry()


@dataclass(frozen=True)
class Header:
    """One transport header as analysed: ``index`` is its position in the block as received
    (0 = top), whether or not headers above it were left out."""

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
    """Turn Exchange's (name, value) pairs into :class:`Header` objects, tolerating junk, and
    bound how much of them the parsers will be given.

    Returns the headers in their original order and the problems met, as sentences.
    Entries that are not (name, value) pairs are skipped and reported, never raised on.
    From (Sender, Reply-To) headers after the first MAX_SEPARATE_ADDRESS_HEADERS - 1 are read
    together: the last separate one holds all their values and the others are kept, empty,
    so that they are still counted. Authentication-Results and ARC-Authentication-Results
    below the first one over MAX_AUTHRES_CHARS_PER_MESSAGE are left out. Both are said.
    """
    names: list[str] = []
    values: list[str] = []
    problems: list[str] = []
    injected: list[str] = []
    skipped = 0
    for position, pair in enumerate(pairs):
        if not _is_pair(pair):
            skipped += 1
            continue
        raw_name, raw_value = pair[0], pair[1]
        name = _as_text(raw_name).strip()
        if raw_value is None:
            problems.append(f"Header {position + 1} ({name or 'no name'}) has no value; treated as empty.")
        value, had_bare_break = unfold(_as_text(raw_value))
        if had_bare_break:
            injected.append(name or f"#{position + 1}")
        if not name or not _HEADER_NAME.fullmatch(name):
            problems.append(
                f"Header {position + 1} has a malformed name ({shorten(name, 60)!r}); "
                "its value was kept but it matches no known header."
            )
        names.append(name)
        values.append(value)
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
    keys = [name.lower() for name in names]
    problems.extend(_join_extra_address_headers(keys, values))
    left_out, not_read = _authres_over_budget(keys, values)
    problems.extend(not_read)
    headers = [
        Header(index=i, name=name, key=key, value=value, truncated=len(value) > MAX_PARSED_CHARS)
        for i, (name, key, value) in enumerate(zip(names, keys, values, strict=True))
        if i not in left_out
    ]
    return headers, problems


def _join_extra_address_headers(keys: list[str], values: list[str]) -> list[str]:
    """Join the values of From (Sender, Reply-To) headers after the separate ones into the last
    separate one, in place, emptying theirs: however many there are, the address parser reads
    at most MAX_SEPARATE_ADDRESS_HEADERS values of each kind. Returns what was done, as sentences."""
    problems: list[str] = []
    separate = MAX_SEPARATE_ADDRESS_HEADERS - 1
    for key, label in _ADDRESS_HEADERS.items():
        positions = [i for i, k in enumerate(keys) if k == key]
        if len(positions) <= MAX_SEPARATE_ADDRESS_HEADERS:
            continue
        together = positions[separate:]
        values[together[0]] = ", ".join(_closed(values[i]) for i in together if values[i])
        for i in together[1:]:
            values[i] = ""
        problems.append(
            f"The message has {len(positions)} {label} headers: the first "
            + ("was" if separate == 1 else f"{separate} were")
            + f" read on {'its' if separate == 1 else 'their'} own and the other {len(together)} together, "
            "as one list of addresses."
        )
    return problems


def _closed(value: str) -> str:
    """``value`` with any quoted string, comment or angle bracket it leaves open closed (and a
    final backslash given something to escape), so that joined to the next header's value it
    cannot swallow it: each is read as it would have been on its own."""
    if not any(c in value for c in '"(<\\'):
        return value
    depth = 0
    quoted = in_angle = escaped = False
    for piece in _ADDRESS_LIST_TOKEN.findall(value):
        escaped = piece == "\\"
        if depth:
            depth += 1 if piece == "(" else -1 if piece == ")" else 0
        elif quoted:
            quoted = piece != '"'
        elif piece == '"':
            quoted = True
        elif piece == "(":
            depth = 1
        elif piece in "<>":
            in_angle = piece == "<"
    return value + (" " if escaped else "") + (")" * depth or '"' * quoted) + ">" * in_angle


def _authres_over_budget(keys: list[str], values: list[str]) -> tuple[set[int], list[str]]:
    """Positions of the Authentication-Results headers (and, counted apart, the
    ARC-Authentication-Results) from the first one, top down, that would take authres past
    MAX_AUTHRES_CHARS_PER_MESSAGE, and what was left out, as sentences. A value too long to be
    given to authres at all costs nothing."""
    left_out: set[int] = set()
    problems: list[str] = []
    for key, label in _AUTHRES_HEADERS.items():
        positions = [i for i, k in enumerate(keys) if k == key]
        spent = 0
        for read, i in enumerate(positions):
            cost = len(values[i]) if len(values[i]) <= MAX_AUTHRES_CHARS else 0
            if spent + cost > MAX_AUTHRES_CHARS_PER_MESSAGE:
                left_out.update(positions[read:])
                problems.append(
                    f"Only the first {read} of {len(positions)} {label} headers were read: this service "
                    f"parses at most {MAX_AUTHRES_CHARS_PER_MESSAGE} characters of them per message. The other "
                    f"{len(positions) - read}, lower in the header block, were left out of this analysis."
                )
                break
            spent += cost
    return left_out, problems


def _is_pair(item: object) -> TypeGuard[Sequence[object]]:
    if type(item) is tuple or type(item) is list:  # what Exchange gives, without the slower ABC check
        return len(item) == 2
    return isinstance(item, Sequence) and not isinstance(item, str | bytes) and len(item) == 2


def _as_text(value: object) -> str:
    if type(value) is str:
        return value
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
    if "\n" not in value and "\r" not in value:
        return value.strip(), False
    if _MARK in value:
        unfolded = _FOLD.sub("", value)
    else:  # the same as the regular expression, without its cost per fold (millions in 20 MB)
        marked = value.replace("\r\n ", _MARK + " ").replace("\r\n\t", _MARK + "\t")
        unfolded = marked.replace("\n ", _MARK + " ").replace("\n\t", _MARK + "\t").replace(_MARK, "")
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


def too_hostile_to_parse(text: str, max_chars: int = MAX_PARSED_CHARS) -> str | None:
    """Why ``text`` must not be handed to a recursive parser that reads at most ``max_chars``
    characters, or None when it is safe. Nesting is looked for only up to MAX_PARSED_CHARS."""
    if len(text) > MAX_PARSED_CHARS:
        return f"it is {len(text)} characters long (more than {min(max_chars, MAX_PARSED_CHARS)})"
    if text.count("(") > MAX_COMMENT_DEPTH and comment_depth(text) > MAX_COMMENT_DEPTH:
        return f"its comments are nested more than {MAX_COMMENT_DEPTH} levels deep"
    if len(text) > max_chars:
        return f"it is {len(text)} characters long (more than {max_chars})"
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

    Uses the standard library's RFC 5322 parser behind the nesting guard for values of up to
    MAX_ADDRESS_PARSER_CHARS; a longer value is read by a linear scan (angle brackets, quotes,
    comments and groups, not the full grammar). When neither finds a mailbox, every address
    seen in the text is one (as a claim, that errs on the side of caution). At most
    MAX_MAILBOXES_PER_HEADER are returned. Returns the mailboxes and the problems met.
    """
    if not value:
        return [], []
    problems: list[str] = []
    hostile = too_hostile_to_parse(value, MAX_ADDRESS_PARSER_CHARS)
    if hostile is None:
        parsed, parse_problems = _parsed_by_the_standard_library(value)
        mailboxes, problems = list(parsed), list(parse_problems)
    else:
        problems.append(f"it was not parsed because {hostile}; its mailboxes were read by a plain scan")
        mailboxes = _scanned_mailboxes(value)
    if not mailboxes:
        mailboxes = [Mailbox(display="", address=a) for a in addresses_in_text(value)[: MAX_MAILBOXES_PER_HEADER + 1]]
    if len(mailboxes) > MAX_MAILBOXES_PER_HEADER:
        problems.append(
            f"it holds more than {MAX_MAILBOXES_PER_HEADER} addresses; only the first {MAX_MAILBOXES_PER_HEADER} "
            "were read as its mailboxes"
        )
    return mailboxes[:MAX_MAILBOXES_PER_HEADER], problems


def _scanned_mailboxes(value: str) -> list[Mailbox]:
    """The first MAX_MAILBOXES_PER_HEADER + 1 mailboxes of an address list, read in one pass:
    the address is what is in angle brackets (or, without them, the whole entry outside its
    comments) and the display name what is outside them, so that an address written in a display
    name stays a display name's, as the full parser would have it. Group names are dropped."""
    mailboxes: list[Mailbox] = []
    if "@" not in value and "=?" not in value:
        return mailboxes
    outside: list[str] = []
    inside: list[str] = []
    angled = in_angle = quoted = False
    depth = 0

    def end_entry() -> None:
        nonlocal angled
        found = addresses_in_text("".join(inside if angled else outside)) if inside or outside else []
        if found:
            display = _display_text("".join(outside)) if angled else ""
            mailboxes.extend(Mailbox(display if n == 0 else "", a) for n, a in enumerate(found))
        outside.clear()
        inside.clear()
        angled = False

    for token in _ADDRESS_LIST_TOKEN.finditer(value):
        text = token.group()
        part = inside if in_angle else outside
        if depth:
            if text == "(":
                depth += 1
            elif text == ")":
                depth -= 1
        elif quoted:
            if text == '"':
                quoted = False
            else:
                part.append(text[1:] if text[0] == "\\" else text)
        elif text[0] == "\\":
            part.append(text[1:])
        elif text == '"':
            quoted = True
        elif text == "(":
            depth = 1
            part.append(" ")
        elif text == ")":  # one that closes nothing
            part.append(" ")
        elif text == "<" and not in_angle:
            in_angle = angled = True
        elif text == ">" and in_angle:
            in_angle = False
        elif text[0] in ",;" and not in_angle:
            end_entry()
            if len(mailboxes) > MAX_MAILBOXES_PER_HEADER:
                break
        elif text == ":" and not in_angle and not angled:
            outside.clear()  # a group's name
        else:
            part.append(text)
    else:
        end_entry()
    return mailboxes


def _display_text(text: str) -> str:
    """A display name read from the raw text outside angle brackets: encoded words decoded,
    white space collapsed (quote marks and comments are already gone) and, as kept raw text,
    cut to MAX_KEPT_CHARS; an address past the cut is still found in the header's text."""
    if "=?" in text:
        text = _ENCODED_WORD.sub(_decoded_word, _BETWEEN_ENCODED_WORDS.sub("", text))
    return shorten(" ".join(text.split()))


# The same From header reaches many mailboxes (a campaign reported by everyone who got it) and may
# be repeated within one message: parsing is pure and its result immutable, so the latest values
# (each at most MAX_ADDRESS_PARSER_CHARS long) are remembered.
@functools.lru_cache(maxsize=256)
def _parsed_by_the_standard_library(value: str) -> tuple[tuple[Mailbox, ...], tuple[str, ...]]:
    try:
        parsed = _REGISTRY("from", value)
        if not isinstance(parsed, AddressHeader):  # pragma: no cover - "from" is always one
            return (), ()
        mailboxes = tuple(
            Mailbox(display=str(a.display_name), address=normalise_address(str(a.addr_spec)))
            for a in parsed.addresses
            if a.addr_spec
        )
        problems: tuple[str, ...] = ()
        if parsed.defects:
            problems = ("it is not well formed (" + "; ".join(str(d) for d in parsed.defects[:3]) + ")",)
    except Exception as exc:  # the stdlib parser has known failure modes on hostile input
        return (), (f"the address parser could not read it ({type(exc).__name__})",)
    return tuple(m for m in mailboxes if "@" in m.address), problems


def addresses_in_text(text: str) -> list[str]:
    """Every address-looking token in ``text``, normalised, in order, without duplicates.

    First those written plainly, then those that show only once RFC 2047 encoded words are
    decoded and comments, quote marks and the space around '@' and '.' are taken out, as an
    address parser would read ``=?utf-8?B?...?=`` or ``"jordan.reyes" (x) @ contoso.com``. The
    scan is linear in the length of ``text``, so it is safe on any value the parser is not given.
    """
    if "@" not in text and "=?" not in text:
        return []
    seen: dict[str, None] = {}
    for reading in _readings(text):
        for local, domain in _ADDRESS_LIKE.findall(reading):
            if "." in domain:
                # No angle bracket, quote, space, prefix or final dot can be in what matched, so
                # lower case is all that normalise_address would do to it.
                seen.setdefault(f"{local[-64:]}@{domain}".lower(), None)
    return list(seen)


def _readings(text: str) -> list[str]:
    """``text`` as written, with its encoded words decoded, and that without quoting."""
    readings = [text]
    decoded = _ENCODED_WORD.sub(_decoded_word, _BETWEEN_ENCODED_WORDS.sub("", text)) if "=?" in text else text
    if decoded != text:
        readings.append(decoded)
    plain = _without_quoting(decoded)
    if plain != decoded:
        readings.append(plain)
    return readings


def _decoded_word(match: re.Match[str]) -> str:
    """One RFC 2047 encoded word as text; left as written when it cannot be decoded."""
    charset, encoding, payload = match.group(1).split("*", 1)[0], match.group(2), match.group(3)
    try:
        if encoding in "Bb":
            raw = base64.b64decode(payload + "=" * (-len(payload) % 4))
        else:
            raw = binascii.a2b_qp(payload.encode("ascii", "replace"), header=True)
    except (ValueError, binascii.Error):
        return match.group(0)
    try:
        if codecs.lookup(charset).name in _SLOW_CODECS:
            return raw.decode("latin-1")
        return raw.decode(charset, "replace")
    except Exception:  # a codec named by the sender: unknown, not a text codec, or failing
        return raw.decode("latin-1")


def _without_quoting(text: str) -> str:
    """``text`` as an address parser reads it: each comment becomes a space, quote marks and the
    backslash of a quoted pair go, and white space around '@' and '.' is dropped."""
    # With no parenthesis or backslash nothing is a comment or a quoted pair: only quote marks go.
    commentless = _without_comments(text) if any(c in text for c in "()\\") else text.replace('"', "")
    spaced = " ".join(commentless.split())
    return spaced.replace(" @", "@").replace("@ ", "@").replace(" .", ".").replace(". ", ".")


def _without_comments(text: str) -> str:
    """``text`` with each comment replaced by a space and quote marks and quoted pairs' backslashes
    removed; a parenthesis inside a quoted string is text, as in RFC 5322."""
    parts: list[str] = []
    depth = 0
    quoted = False
    for token in _QUOTING_TOKEN.findall(text):
        first = token[0]
        if first == "\\":
            if not depth:
                parts.append(token[1:])
        elif depth:
            if first == "(":
                depth += 1
            elif first == ")":
                depth -= 1
                if not depth:
                    parts.append(" ")
        elif quoted:
            if first == '"':
                quoted = False
            else:
                parts.append(token)
        elif first == '"':
            quoted = True
        elif first == "(":
            depth = 1
        elif first == ")":
            parts.append(" ")
        else:
            parts.append(token)
    return "".join(parts)


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
