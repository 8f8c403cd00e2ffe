"""``Authentication-Results`` and ARC headers, read with the ``authres`` library.

Microsoft 365 writes ``Authentication-Results`` in a form RFC 8601 does not allow: it leaves
out the authserv-id and sometimes inserts the recipient's domain as a bare segment, e.g.::

    spf=pass (sender IP is 203.0.113.25) smtp.mailfrom=fabrikam.com; contoso.com;
     dkim=pass (signature was verified) header.d=fabrikam.com;dmarc=pass action=none
     header.from=fabrikam.com;compauth=pass reason=100

``authres`` rejects that, so when (and only when) a value does not parse as written, this
module makes three small, documented repairs before asking ``authres`` again: it puts a
placeholder authserv-id in front when the value starts with ``method=result``, it lifts out
bare-domain segments (recording the first as the authserv-id), and it drops empty segments
(trailing ``;``). The results themselves are always read by ``authres``; when it still
cannot parse a value the failure is recorded and no results are taken from it.

``authres`` copies the rest of the value for every token it reads, so it is given values of at
most ``MAX_AUTHRES_CHARS`` (a real one has a few hundred characters), each parse is remembered,
and :func:`~addin_service.cases.origin_headers.normalise_headers` bounds how many characters of
these headers one message can make it read. Pure; never raises.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import authres

from addin_service.cases.origin_headers import MAX_AUTHRES_CHARS, MAX_KEPT_CHARS, shorten, too_hostile_to_parse
from addin_service.untrusted_numbers import decimal

# Stands in for Microsoft's missing authserv-id while authres parses; never shown.
_PLACEHOLDER_ID = "authserv-id-absent.invalid"
_DOMAIN_SEGMENT = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
_ARC_INSTANCE = re.compile(r"\s*i\s*=\s*(\d{1,3})\s*;(.*)\Z", re.DOTALL)
# A value that starts with ``method=`` has no authserv-id (Microsoft 365's form): authres would
# either fail on it or take the method result for the id, so it goes straight to the repairs.
_STARTS_WITH_RESULT = re.compile(r"[A-Za-z0-9._-]+\s*=")


@dataclass(frozen=True)
class AuthMethodResult:
    """One ``method=result`` clause: ``properties`` are ``("header.from", "contoso.com")`` pairs."""

    method: str
    result: str
    reason: str | None = None
    properties: tuple[tuple[str, str], ...] = ()

    def prop(self, name: str) -> str | None:
        """The value of property ``name`` (e.g. ``"header.from"``), case-insensitively."""
        wanted = name.lower()
        for key, value in self.properties:
            if key == wanted:
                return value
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "result": self.result,
            "reason": self.reason,
            "properties": {key: value for key, value in self.properties},
        }


@dataclass(frozen=True)
class AuthResultsHeader:
    """One ``Authentication-Results`` header, parsed, with the decision whether it is ours.

    ``position`` is its index in the header block (0 = top). ``trusted`` and ``trust`` are
    set by the origin analysis (see :mod:`addin_service.cases.origin`).
    """

    position: int
    authserv_id: str | None
    microsoft_form: bool
    parsed: bool
    parse_error: str | None
    results: tuple[AuthMethodResult, ...]
    repairs: tuple[str, ...]
    raw: str
    trusted: bool = False
    trust: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "authserv_id": self.authserv_id,
            "microsoft_form": self.microsoft_form,
            "parsed": self.parsed,
            "parse_error": self.parse_error,
            "results": [r.to_dict() for r in self.results],
            "repairs": list(self.repairs),
            "trusted": self.trusted,
            "trust": self.trust,
            "raw": self.raw,
        }


@dataclass(frozen=True)
class ArcHeader:
    """One ARC header (RFC 8617). Recorded as found; signatures are not verified."""

    position: int
    kind: Literal["ARC-Seal", "ARC-Message-Signature", "ARC-Authentication-Results"]
    instance: int | None
    cv: str | None = None  # chain validation status, ARC-Seal only
    domain: str | None = None  # d= of the seal or signature
    selector: str | None = None  # s= of the seal or signature
    authserv_id: str | None = None  # ARC-Authentication-Results only
    results: tuple[AuthMethodResult, ...] = ()
    problems: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "header": self.kind,
            "i": self.instance,
            "cv": self.cv,
            "d": self.domain,
            "s": self.selector,
            "authserv_id": self.authserv_id,
            "results": [r.to_dict() for r in self.results],
            "problems": list(self.problems),
        }


@dataclass(frozen=True)
class _Parsed:
    authserv_id: str | None
    microsoft_form: bool
    results: tuple[AuthMethodResult, ...]
    error: str | None
    repairs: tuple[str, ...]


def parse_authentication_results(position: int, value: str) -> AuthResultsHeader:
    """Parse one unfolded ``Authentication-Results`` value. Never raises; not yet trusted."""
    parsed = _parsed(value)
    return AuthResultsHeader(
        position=position,
        authserv_id=parsed.authserv_id,
        microsoft_form=parsed.microsoft_form,
        parsed=parsed.error is None,
        parse_error=parsed.error,
        results=parsed.results,
        repairs=parsed.repairs,
        raw=shorten(value, MAX_KEPT_CHARS),
    )


def _parsed(value: str) -> _Parsed:
    """The parse of one Authentication-Results value (or the part of an
    ARC-Authentication-Results after ``i=``), remembered when it was handed to authres."""
    return _parse_remembered(value) if len(value) <= MAX_AUTHRES_CHARS else _parse_value(value)


# One message reaches many mailboxes with the same Authentication-Results (a campaign reported by
# everyone who got it), and authres takes milliseconds per value: parsing is pure and its result
# immutable, so the latest values (each at most MAX_AUTHRES_CHARS long) are remembered.
@functools.lru_cache(maxsize=256)
def _parse_remembered(value: str) -> _Parsed:
    return _parse_value(value)


def _parse_value(value: str) -> _Parsed:
    hostile = too_hostile_to_parse(value, MAX_AUTHRES_CHARS)
    if hostile is not None:
        return _Parsed(None, False, (), f"not parsed because {hostile}", ())
    text = value.strip()
    error: str | None = None
    if not _STARTS_WITH_RESULT.match(text):
        header, error = _authres(text)
        if header is not None and "=" not in str(getattr(header, "authserv_id", "")):
            return _Parsed(_authserv_id(header), False, _results(header), None, ())
    # authres reads "spf=pass; dkim=pass" as authserv-id "spf=pass" ('=' is atext): that is
    # Microsoft's id-less form too, so it takes the repair path below.
    error = error or "the first token is a method result, not an authserv-id"

    segments = _split_resinfo(text)
    non_empty = [segment for segment in segments if segment]
    if not non_empty:
        return _Parsed(None, False, (), f"authres could not parse it: {error}", ())
    repairs: list[str] = []
    microsoft_form = "=" in _outside_comments(non_empty[0])
    if microsoft_form:
        repairs.append("it has no authserv-id (the form Microsoft 365 writes); a placeholder was used")
        kept, rest = [_PLACEHOLDER_ID], non_empty
    else:
        kept, rest = [non_empty[0]], non_empty[1:]
    bare: list[str] = []
    for segment in rest:
        if "=" not in _outside_comments(segment) and _DOMAIN_SEGMENT.fullmatch(segment):
            bare.append(segment.lower())
        else:
            kept.append(segment)
    first_id = bare[0] if bare else None
    if bare:
        repairs.append(
            "segments naming only a domain (" + ", ".join(dict.fromkeys(bare)) + ") were read as the "
            "authserv-id, as Microsoft 365 writes it"
        )
    if len(non_empty) != len(segments):
        repairs.append("empty segments (such as a trailing ';') were dropped")
    if not repairs:
        return _Parsed(None, False, (), f"authres could not parse it: {error}", ())
    header, second_error = _authres("; ".join(kept))
    if header is None:
        return _Parsed(
            first_id,
            microsoft_form,
            (),
            f"authres could not parse it: {second_error or error}",
            tuple(repairs),
        )
    authserv_id = first_id if microsoft_form else (_authserv_id(header) or first_id)
    return _Parsed(authserv_id, microsoft_form, _results(header), None, tuple(repairs))


def _authres(text: str) -> tuple[Any, str | None]:
    """authres's parse, with every exception turned into a message (it raises its own
    ``SyntaxError`` and, on odd input, ``ValueError`` or ``AttributeError``)."""
    try:
        return authres.all_features().parse_value(text), None
    except Exception as exc:  # a third-party parser on attacker-chosen text
        return None, shorten(f"{type(exc).__name__}: {exc}", 200)


def _authserv_id(header: Any) -> str | None:
    found = getattr(header, "authserv_id", None)
    if not found or str(found) == _PLACEHOLDER_ID:
        return None
    return str(found).lower()


def _results(header: Any) -> tuple[AuthMethodResult, ...]:
    results: list[AuthMethodResult] = []
    for item in getattr(header, "results", None) or []:
        method = getattr(item, "method", None)
        result = getattr(item, "result", None)
        if not method or not result:
            continue
        reason = getattr(item, "reason", None)
        properties = tuple(
            (f"{str(p.type).lower()}.{str(p.name).lower()}", "" if p.value is None else str(p.value))
            for p in getattr(item, "properties", None) or []
        )
        results.append(
            AuthMethodResult(
                method=str(method).lower(),
                result=str(result).lower(),
                reason=None if reason is None else str(reason),
                properties=properties,
            )
        )
    return tuple(results)


def _split_resinfo(text: str) -> list[str]:
    """Split on ';' outside comments and quoted strings; segments stripped (may be empty)."""
    segments: list[str] = []
    depth = 0
    quoted = escaped = False
    start = 0
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif quoted:
            quoted = char != '"'
        elif char == '"':
            quoted = True
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif char == ";" and depth == 0:
            segments.append(text[start:i].strip())
            start = i + 1
    segments.append(text[start:].strip())
    return segments


def _outside_comments(segment: str) -> str:
    out: list[str] = []
    depth = 0
    for char in segment:
        if char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out)


def parse_arc(position: int, name: str, value: str) -> ArcHeader:
    """Record an ARC header's instance, cv, d= and s= (and the results of an
    ARC-Authentication-Results). Never raises; nothing is verified."""
    problems: list[str] = []
    hostile = too_hostile_to_parse(value)
    if hostile is not None:
        kind = _arc_kind(name)
        return ArcHeader(position, kind, None, problems=(f"not read because {hostile}",))
    kind = _arc_kind(name)
    if kind == "ARC-Authentication-Results":
        match = _ARC_INSTANCE.match(value)
        if not match:
            return ArcHeader(position, kind, None, problems=("it does not start with i=<number>;",))
        parsed = _parsed(match.group(2))
        if parsed.error:
            problems.append(parsed.error)
        return ArcHeader(
            position,
            kind,
            int(match.group(1)),
            authserv_id=parsed.authserv_id,
            results=parsed.results,
            problems=tuple(problems),
        )
    tags: dict[str, str] = {}
    for part in value.split(";"):
        key, equals, tag_value = part.partition("=")
        if equals:
            tags.setdefault(key.strip().lower(), "".join(tag_value.split()))
    instance = decimal(tags.get("i"), max_digits=3)
    if instance is None:
        problems.append("it has no valid i= tag")
    cv = tags.get("cv")
    if kind == "ARC-Seal" and cv is None:
        problems.append("it has no cv= tag")
    return ArcHeader(
        position,
        kind,
        instance,
        cv=cv.lower() if cv else None,
        domain=(tags.get("d") or "").lower() or None,
        selector=tags.get("s") or None,
        problems=tuple(problems),
    )


def _arc_kind(name: str) -> Literal["ARC-Seal", "ARC-Message-Signature", "ARC-Authentication-Results"]:
    lowered = name.lower()
    if lowered == "arc-seal":
        return "ARC-Seal"
    if lowered == "arc-message-signature":
        return "ARC-Message-Signature"
    return "ARC-Authentication-Results"
