"""Origin analysis: who really sent a reported message, read from its transport headers.

The answer decides who is told (see :mod:`addin_service.cases.routing`) and goes, with the
reasons in plain sentences, into ``metadata.json`` and the case. Pure: no I/O; never raises
on any header content.

How the verdict is reached (DESIGN "Routing"):

* A message *claims an internal domain* when a From or Sender address is in an accepted
  domain or a subdomain of one.
* Exchange's own ``X-MS-Exchange-Organization-AuthAs`` is the strongest evidence: Exchange
  sets it and its header firewall removes any copy sent from outside. ``Internal`` means the
  message was submitted inside the organisation. If several copies disagree, the least
  trusted value is used (``Anonymous`` < ``External`` < ``Partner`` < ``Internal``).
* ``Authentication-Results`` count only when they are *ours*. Headers are prepended as a
  message travels, so the ones our system wrote sit above everything the sender could write.
  Ours are: the Authentication-Results headers above the first ``Received`` header below the
  topmost Authentication-Results header (that ``Received`` records the hop into our system),
  whose authserv-id is absent (the form Exchange Online writes), in an accepted domain, or in
  ``trusted_authserv_ids``. A header with an authserv-id in ``trusted_authserv_ids`` directly
  below that hop (a gateway in front of Exchange) extends the trusted zone by one hop, and so
  on. When no ``Received`` header lies below the topmost one, nothing anchors it: the sender's
  software may have written it (our servers wrote none), so only a configured authserv-id counts.
  Everything else is recorded, marked untrusted, and never used for the verdict.
* Claims internal (issue 4: "failed DMARC, or that Exchange marks Anonymous, is external and
  spoofed"): AuthAs=Internal → ``internal``, unless our results record a DMARC failure
  (``spoofed-internal``). AuthAs=Anonymous → ``spoofed-internal``, even with an aligned pass (a pass
  shows the domain's owner allowed the server, not that a person inside sent it). AuthAs External
  or Partner → ``spoofed-internal`` unless our results show an aligned pass (then ``external``: a
  partner allowed to send as our domain, not a person inside). Without AuthAs, our results
  decide: DMARC or compauth failure, or no aligned pass at all → ``spoofed-internal``;
  an aligned pass → ``internal``. With no evidence at all the domain alone decides and
  ``authenticated`` is None. A Sender-only claim (From outside) is never authenticated by
  DMARC, so it is ``spoofed-internal`` unless AuthAs=Internal.
* ARC headers are recorded (instance, cv, d=) but never verified cryptographically, so they
  never change the verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from addin_service.cases.origin_authres import (
    ArcHeader,
    AuthMethodResult,
    AuthResultsHeader,
    parse_arc,
    parse_authentication_results,
)
from addin_service.cases.origin_headers import (
    Header,
    Mailbox,
    addresses_in_text,
    domain_of,
    has_invisible_characters,
    in_domains,
    normalise_address,
    normalise_headers,
    parse_mailboxes,
    shorten,
)
from addin_service.cases.origin_received import ReceivedHop, parse_received, parse_utc

Verdict = Literal["internal", "external", "spoofed-internal"]
# Each verdict in words, for people (notifications, the printable report): lower case, to go in a sentence.
VERDICT_TEXT: dict[str, str] = {
    "internal": "inside the organisation",
    "external": "outside the organisation",
    "spoofed-internal": "outside the organisation, made to look as if it came from inside (spoofed)",
}


def verdict_words(verdict: str | None) -> str:
    """A verdict in words, lower case: "not determined" when there is none, an unknown one as it is."""
    return VERDICT_TEXT.get(verdict, verdict) if verdict else "not determined"

AUTH_AS = "x-ms-exchange-organization-authas"
AUTH_SOURCE = "x-ms-exchange-organization-authsource"
AUTH_MECHANISM = "x-ms-exchange-organization-authmechanism"
_AUTH_AS_ORDER = {"anonymous": 0, "external": 1, "partner": 2, "internal": 3}
_AUTH_AS_NAMES = {
    "anonymous": "Anonymous",
    "external": "External",
    "partner": "Partner",
    "internal": "Internal",
}

MAX_RECEIVED = 100  # hops parsed; more are counted, not read
MAX_AUTH_HEADERS = 50  # Authentication-Results (and each ARC header kind) parsed
CLOCK_SKEW_SECONDS = 600  # a lower hop later than the one above by more than this is noted


@dataclass(frozen=True)
class ExchangeAuth:
    """What Exchange recorded about how the message entered the organisation."""

    auth_as: str | None  # the value used: Internal / Anonymous / Partner / External, or as written
    auth_source: str | None
    auth_mechanism: str | None  # recorded as written (e.g. "04"); not interpreted
    seen: tuple[str, ...] = ()  # every AuthAs value, top first
    conflicting: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "auth_as": self.auth_as,
            "auth_source": self.auth_source,
            "auth_mechanism": self.auth_mechanism,
            "seen": list(self.seen),
            "conflicting": self.conflicting,
        }


@dataclass(frozen=True)
class OriginAnalysis:
    """The result of :func:`analyze_origin`. ``to_dict()`` is JSON-serialisable.

    ``claimed_senders`` holds every From and Sender address (lower-case);
    ``display_name_addresses`` holds addresses written elsewhere in those headers (inside a
    display name, a comment or an unreadable part). Routing treats both as claims.
    """

    verdict: Verdict
    spoofed: bool
    authenticated: bool | None
    reasons: tuple[str, ...]
    from_address: str | None
    from_display: str | None
    sender_address: str | None
    return_path: str | None
    reply_to: tuple[str, ...]
    from_domain: str | None
    claims_internal_domain: bool
    claimed_senders: tuple[str, ...]
    display_name_addresses: tuple[str, ...]
    received: tuple[ReceivedHop, ...]
    authentication: tuple[AuthResultsHeader, ...]
    arc: tuple[ArcHeader, ...]
    exchange_auth_as: ExchangeAuth

    @property
    def is_internal(self) -> bool:
        """Internal for routing (spoofed-internal counts as external)."""
        return self.verdict == "internal"

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "spoofed": self.spoofed,
            "authenticated": self.authenticated,
            "reasons": list(self.reasons),
            "from_address": self.from_address,
            "from_display": self.from_display,
            "sender_address": self.sender_address,
            "return_path": self.return_path,
            "reply_to": list(self.reply_to),
            "from_domain": self.from_domain,
            "claims_internal_domain": self.claims_internal_domain,
            "claimed_senders": list(self.claimed_senders),
            "display_name_addresses": list(self.display_name_addresses),
            "received": [hop.to_dict() for hop in self.received],
            "authentication": [header.to_dict() for header in self.authentication],
            "arc": [header.to_dict() for header in self.arc],
            "exchange_auth_as": self.exchange_auth_as.to_dict(),
        }


def analyze_origin(
    headers: Sequence[tuple[str, str]],
    accepted_domains: Iterable[str],
    *,
    trusted_authserv_ids: Iterable[str] = (),
) -> OriginAnalysis:
    """Decide whether the message is internal, external or a spoof of an internal sender.

    ``headers`` are the transport headers exactly as Exchange returned them (order kept, top
    first; values may be folded or malformed). ``accepted_domains`` are the organisation's
    accepted domains (subdomains included). ``trusted_authserv_ids`` names extra
    authserv-ids that are ours (e.g. an on-premises gateway such as ``mx1.contoso.com``).
    Never raises: every problem becomes a sentence in ``reasons``.
    """
    accepted = tuple(
        dict.fromkeys(d.strip().lower().rstrip(".") for d in accepted_domains if d and d.strip())
    )
    trusted_ids = frozenset(i.strip().lower() for i in trusted_authserv_ids if i and i.strip())
    block, problems = normalise_headers(headers)
    by_key: dict[str, list[Header]] = {}
    for header in block:
        by_key.setdefault(header.key, []).append(header)
    notes: list[str] = []
    if not accepted:
        notes.append("No accepted domains are configured, so no sender can be recognised as internal.")

    senders = _read_senders(by_key, notes)
    hops = _read_received(by_key.get("received", []), notes)
    exchange = _read_exchange_auth(by_key, notes)
    submitted_inside = exchange.auth_as == "Internal"  # the least trusted of its values: never guessed
    auth_headers = _read_authentication_results(block, by_key, accepted, trusted_ids, notes, submitted_inside)
    arc = _read_arc(by_key, notes)

    internal_claim = next((a for a in senders.claimed if in_domains(domain_of(a), accepted)), None)
    from_internal = bool(in_domains(senders.from_domain, accepted))
    evidence = _Evidence.collect(auth_headers, senders.from_domain)
    verdict, authenticated, verdict_reasons = _decide(
        internal_claim=internal_claim,
        from_internal=from_internal,
        senders=senders,
        exchange=exchange,
        evidence=evidence,
    )
    reasons = [*verdict_reasons, *evidence.describe(), *notes, *problems]
    return OriginAnalysis(
        verdict=verdict,
        spoofed=verdict == "spoofed-internal",
        authenticated=authenticated,
        reasons=tuple(dict.fromkeys(reasons)),
        from_address=senders.from_address,
        from_display=senders.from_display,
        sender_address=senders.sender_address,
        return_path=senders.return_path,
        reply_to=senders.reply_to,
        from_domain=senders.from_domain,
        claims_internal_domain=internal_claim is not None,
        claimed_senders=senders.claimed,
        display_name_addresses=senders.display_name_addresses,
        received=hops,
        authentication=auth_headers,
        arc=arc,
        exchange_auth_as=exchange,
    )


# --- who the message says it is from ------------------------------------------------------


@dataclass(frozen=True)
class _Senders:
    from_address: str | None
    from_addresses: tuple[str, ...]
    from_display: str | None
    from_domain: str | None
    sender_address: str | None
    return_path: str | None
    reply_to: tuple[str, ...]
    claimed: tuple[str, ...]
    display_name_addresses: tuple[str, ...]


def _read_senders(by_key: dict[str, list[Header]], notes: list[str]) -> _Senders:
    from_boxes = _mailboxes(by_key.get("from", []), "From", notes)
    sender_boxes = _mailboxes(by_key.get("sender", []), "Sender", notes)
    reply_boxes = _mailboxes(by_key.get("reply-to", []), "Reply-To", notes)

    from_headers = by_key.get("from", [])
    if not from_headers:
        notes.append("The message has no From header.")
    elif len(from_headers) > 1:
        notes.append(
            f"The message has {len(from_headers)} From headers (a message may have only one); "
            "every address in them is treated as a claimed sender."
        )
    if len(from_boxes) > 1:
        notes.append(
            "The From headers name more than one address ("
            + ", ".join(m.address for m in from_boxes[:5])
            + ")."
        )
    if len(by_key.get("sender", [])) > 1:
        notes.append(
            "The message has more than one Sender header; every address in them is treated as a claimed "
            "sender."
        )

    first = from_boxes[0] if from_boxes else None
    claimed = tuple(dict.fromkeys(m.address for m in [*from_boxes, *sender_boxes]))

    hidden: dict[str, None] = {}
    for box in [*from_boxes, *sender_boxes]:
        for address in addresses_in_text(box.display):
            if address != box.address:
                hidden.setdefault(address, None)
                notes.append(
                    f"The display name of {box.address} shows the address {address}: a common way to make a "
                    "message look as if it came from someone else."
                )
        if has_invisible_characters(box.display):
            notes.append(
                f"The display name of {box.address} contains invisible or text-direction characters, "
                "which can make it look like a different name."
            )
    for header in [*by_key.get("from", []), *by_key.get("sender", [])]:
        for address in addresses_in_text(header.value):
            if address not in claimed:
                hidden.setdefault(address, None)

    return_path = None
    for header in by_key.get("return-path", [])[:1]:
        candidates = addresses_in_text(header.value)
        return_path = candidates[0] if candidates else (normalise_address(header.value) or None)
    sender_address = sender_boxes[0].address if sender_boxes else None
    if sender_address and first and sender_address != first.address:
        notes.append(f"The Sender ({sender_address}) differs from the From address ({first.address}).")
    return _Senders(
        from_address=first.address if first else None,
        from_addresses=tuple(dict.fromkeys(m.address for m in from_boxes)),
        from_display=(first.display or None) if first else None,
        from_domain=domain_of(first.address) if first else None,
        sender_address=sender_address,
        return_path=return_path,
        reply_to=tuple(dict.fromkeys(m.address for m in reply_boxes)),
        claimed=claimed,
        display_name_addresses=tuple(hidden),
    )


def _mailboxes(headers: list[Header], label: str, notes: list[str]) -> list[Mailbox]:
    found: list[Mailbox] = []
    for header in headers:
        boxes, problems = parse_mailboxes(header.value)
        for problem in problems:
            notes.append(f"The {label} header could not be read cleanly: {problem}.")
        if header.value and not boxes:
            notes.append(f"The {label} header holds no readable address ({shorten(header.value, 80)!r}).")
        found.extend(boxes)
    unique: dict[str, Mailbox] = {}
    for box in found:
        unique.setdefault(box.address, box)
    return list(unique.values())


# --- hops ---------------------------------------------------------------------------------


def _read_received(headers: list[Header], notes: list[str]) -> tuple[ReceivedHop, ...]:
    hops = tuple(parse_received(position, h.value) for position, h in enumerate(headers[:MAX_RECEIVED]))
    if len(headers) > MAX_RECEIVED:
        notes.append(f"Only the first {MAX_RECEIVED} of {len(headers)} Received headers were read.")
    unreadable = [hop.position for hop in hops if hop.problems]
    if unreadable:
        notes.append(
            f"{len(unreadable)} Received header(s) could not be read completely (positions "
            f"{', '.join(str(p) for p in unreadable[:10])}; 0 is the topmost); see each hop's problems."
        )
    for upper, lower in zip(hops, hops[1:], strict=False):
        if upper.timestamp and lower.timestamp:
            skew = (parse_utc(lower.timestamp) - parse_utc(upper.timestamp)).total_seconds()
            if skew > CLOCK_SKEW_SECONDS:
                notes.append(
                    f"Received header {lower.position} claims a later time ({lower.timestamp}) than "
                    f"the one above it ({upper.timestamp}); headers below our own servers can be written "
                    "by the sender."
                )
    return hops


# --- Exchange's own verdict ---------------------------------------------------------------


def _read_exchange_auth(by_key: dict[str, list[Header]], notes: list[str]) -> ExchangeAuth:
    values = [h.value.strip() for h in by_key.get(AUTH_AS, [])]
    seen = tuple(_AUTH_AS_NAMES.get(v.lower(), v) for v in values)
    source = next((h.value.strip() for h in by_key.get(AUTH_SOURCE, []) if h.value.strip()), None)
    mechanism = next((h.value.strip() for h in by_key.get(AUTH_MECHANISM, []) if h.value.strip()), None)
    if not seen:
        return ExchangeAuth(None, source, mechanism)
    unknown = [v for v in seen if v.lower() not in _AUTH_AS_ORDER]
    if unknown:
        notes.append(
            "X-MS-Exchange-Organization-AuthAs has a value this service does not know "
            f"({shorten(unknown[0], 40)!r}); it is not treated as Internal."
        )
    distinct = tuple(dict.fromkeys(seen))
    conflicting = len(distinct) > 1
    # The least trusted value wins: a conflict must never make a message look internal.
    chosen = min(distinct, key=lambda v: _AUTH_AS_ORDER.get(v.lower(), -1))
    if conflicting:
        notes.append(
            "X-MS-Exchange-Organization-AuthAs appears more than once with different values ("
            + ", ".join(distinct)
            + f"); the least trusted, {chosen}, was used."
        )
    return ExchangeAuth(chosen, source, mechanism, seen=seen, conflicting=conflicting)


# --- Authentication-Results and ARC -------------------------------------------------------


_CAME_INSIDE = (
    "not trusted: Exchange marked the message as submitted inside our organisation, so it passed no gateway "
    "of ours; only Exchange Online's own header could be ours, and this one came with the message, where the "
    "sender could have written it"
)
_BELOW_EXCHANGE_ONLINE = (
    "not trusted: Exchange Online's own header is the topmost one, and this one lies below it, so it came "
    "with the message, where the sender could have written it"
)


def _read_authentication_results(
    block: list[Header],
    by_key: dict[str, list[Header]],
    accepted: tuple[str, ...],
    trusted_ids: frozenset[str],
    notes: list[str],
    submitted_inside: bool = False,
) -> tuple[AuthResultsHeader, ...]:
    """Which Authentication-Results our own mail system wrote. ``submitted_inside``: Exchange marked
    the message as submitted inside the organisation (AuthAs=Internal), so it came through no
    gateway of ours, and only Exchange Online's own header, on top, can be ours."""
    found = by_key.get("authentication-results", [])
    if len(found) > MAX_AUTH_HEADERS:
        notes.append(
            f"Only the first {MAX_AUTH_HEADERS} of {len(found)} Authentication-Results headers were read."
        )
    parsed = [parse_authentication_results(h.index, h.value) for h in found[:MAX_AUTH_HEADERS]]
    if not parsed:
        return ()
    received_at = [h.index for h in block if h.key == "received"]

    def next_received(after: int) -> int | None:
        return next((r for r in received_at if r > after), None)

    def ours(header: AuthResultsHeader) -> bool:
        if header.authserv_id is None:
            return header.microsoft_form
        return bool(in_domains(header.authserv_id, accepted)) or header.authserv_id in trusted_ids

    trusted: dict[int, str] = {}
    first_hop = next_received(parsed[0].position)
    boundary = first_hop
    # Exchange Online writes one header, in its own form, above everything the message arrived with.
    # When the topmost header has that form, any other above the first Received came with the
    # message: for a message submitted inside (no hop in from outside is recorded), the sender may
    # have added it together with a Received that only looks like that hop.
    exchange_online = parsed[0].microsoft_form
    came_with_message: dict[int, str] = {}  # position → why it is not ours
    for header in parsed:
        if submitted_inside and not (header is parsed[0] and exchange_online):
            came_with_message[header.position] = _CAME_INSIDE
            continue
        # With no Received below the topmost header, no server recorded a hop before it was written, so
        # the sender's own software may have written it when our system writes none. Only an authserv-id
        # the admin named as ours (whose server removes forged copies, RFC 8601 section 5) is trusted then.
        anchored = boundary is not None or header.authserv_id in trusted_ids
        above_hop = boundary is None or header.position < boundary
        if exchange_online and header is not parsed[0] and above_hop and header.authserv_id not in trusted_ids:
            came_with_message[header.position] = _BELOW_EXCHANGE_ONLINE
            continue
        if anchored and above_hop and ours(header):
            if header.authserv_id is None:
                who = "no authserv-id, the form Exchange Online writes"
            elif header.authserv_id in trusted_ids:
                who = f"authserv-id {header.authserv_id}, configured as ours"
            else:
                who = f"authserv-id {header.authserv_id}, one of our accepted domains"
            trusted[header.position] = f"written by our mail system (above the hop into it; {who})"
    while boundary is not None and trusted_ids and not submitted_inside:
        following = next_received(boundary)
        gateway = [
            h
            for h in parsed
            if h.position > boundary
            and (following is None or h.position < following)
            and h.authserv_id in trusted_ids
        ]
        if not gateway:
            break
        for header in gateway:
            trusted[header.position] = (
                f"written by {header.authserv_id}, a configured gateway, on the hop below ours"
            )
        boundary = following

    result: list[AuthResultsHeader] = []
    for header in parsed:
        if not header.parsed:
            result.append(replace(header, trust="not used: it could not be parsed"))
        elif header.position in trusted:
            result.append(replace(header, trusted=True, trust=trusted[header.position]))
        elif header.position in came_with_message:
            result.append(replace(header, trust=came_with_message[header.position]))
        elif first_hop is not None and header.position > first_hop:
            result.append(
                replace(
                    header,
                    trust="not trusted: it lies below the hop into our mail system, where the sender or any "
                    "server on the way could have written it",
                )
            )
        elif first_hop is None and ours(header):  # not anchored (see above)
            result.append(
                replace(
                    header,
                    trust="not trusted: no Received header lies below it, so it was written before any server "
                    "recorded a hop, where the sender could have written it",
                )
            )
        else:
            result.append(
                replace(
                    header,
                    trust=f"not trusted: its authserv-id ({header.authserv_id or 'none'}) is not ours",
                )
            )
    failed = [h for h in result if not h.parsed]
    if failed:
        notes.append(
            f"{len(failed)} Authentication-Results header(s) could not be parsed; they were recorded "
            f"and not used (first problem: {failed[0].parse_error})."
        )
    ignored = [h for h in result if h.parsed and not h.trusted]
    if ignored:
        notes.append(
            f"{len(ignored)} Authentication-Results header(s) were not written by our mail system and were "
            "ignored for the verdict (they could have been added by the sender)."
        )
    return tuple(result)


def _read_arc(by_key: dict[str, list[Header]], notes: list[str]) -> tuple[ArcHeader, ...]:
    headers: list[ArcHeader] = []
    for key in ("arc-seal", "arc-message-signature", "arc-authentication-results"):
        found = by_key.get(key, [])
        headers.extend(parse_arc(h.index, h.name, h.value) for h in found[:MAX_AUTH_HEADERS])
        if len(found) > MAX_AUTH_HEADERS:
            notes.append(
                f"Only the first {MAX_AUTH_HEADERS} of {len(found)} {found[0].name} headers were read."
            )
    if not headers:
        return ()
    headers.sort(key=lambda h: h.position)
    instances = sorted({h.instance for h in headers if h.instance is not None})
    seals = {h.instance: h for h in headers if h.kind == "ARC-Seal" and h.instance is not None}
    latest = seals.get(max(seals)) if seals else None
    shown = ", ".join(f"i={i}" for i in instances) or "none readable"
    summary = f"The message carries an ARC chain with instance(s) {shown}"
    if latest:
        summary += f"; the latest seal (i={latest.instance}, d={latest.domain}) says cv={latest.cv}"
    summary += (
        ". ARC signatures were not verified cryptographically by this service, so the chain is "
        "recorded for investigators and does not affect the verdict."
    )
    notes.append(summary)
    for instance in instances:
        kinds = {h.kind for h in headers if h.instance == instance}
        if len(kinds) < 3:
            notes.append(f"ARC instance i={instance} is incomplete (it has only {', '.join(sorted(kinds))}).")
    if instances and instances != list(range(1, len(instances) + 1)):
        notes.append("ARC instances are not numbered 1, 2, 3...: the chain is malformed.")
    return tuple(headers)


# --- the decision -------------------------------------------------------------------------


def _aligned(domain: str | None, from_domain: str | None) -> bool:
    """Relaxed alignment approximated without a public-suffix list: equal, or one a subdomain
    of the other, where the shorter still has a dot (so "com" never aligns)."""
    if not domain or not from_domain:
        return False
    shorter, longer = sorted((domain, from_domain), key=len)
    return "." in shorter and (shorter == longer or longer.endswith("." + shorter))


def _domain_in(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip().lower()
    return domain_of(value) if "@" in value else value.rstrip(".")


@dataclass(frozen=True)
class _Evidence:
    """What our own Authentication-Results say about the From domain."""

    trusted_results: tuple[AuthMethodResult, ...]
    from_domain: str | None

    @classmethod
    def collect(cls, headers: tuple[AuthResultsHeader, ...], from_domain: str | None) -> _Evidence:
        return cls(tuple(r for h in headers if h.trusted for r in h.results), from_domain)

    @property
    def present(self) -> bool:
        return bool(self.trusted_results)

    def _of(self, method: str) -> list[AuthMethodResult]:
        return [r for r in self.trusted_results if r.method == method]

    def _dmarc(self) -> list[AuthMethodResult]:
        # Only DMARC results about this From domain (a second From could have been evaluated).
        return [
            r
            for r in self._of("dmarc")
            if r.prop("header.from") in (None, "")
            or _aligned(_domain_in(r.prop("header.from")), self.from_domain)
        ]

    @property
    def dmarc_pass(self) -> bool:
        return any(r.result == "pass" for r in self._dmarc())

    @property
    def dmarc_fail(self) -> bool:
        return any(r.result == "fail" for r in self._dmarc())

    @property
    def compauth_fail(self) -> bool:
        return any(r.result == "fail" for r in self._of("compauth"))

    @property
    def spf_aligned_pass(self) -> bool:
        return any(
            r.result == "pass" and _aligned(_domain_in(r.prop("smtp.mailfrom")), self.from_domain)
            for r in self._of("spf")
        )

    @property
    def dkim_aligned_pass(self) -> bool:
        return any(
            r.result == "pass"
            and (
                _aligned(_domain_in(r.prop("header.d")), self.from_domain)
                or _aligned(_domain_in(r.prop("header.i")), self.from_domain)
            )
            for r in self._of("dkim")
        )

    @property
    def failed(self) -> bool:
        return self.dmarc_fail or self.compauth_fail

    @property
    def aligned_pass(self) -> bool:
        return not self.failed and (self.dmarc_pass or self.spf_aligned_pass or self.dkim_aligned_pass)

    def describe(self) -> list[str]:
        if not self.present:
            return []
        parts = []
        for method in ("spf", "dkim", "dmarc", "compauth"):
            results = self._of(method)
            if results:
                shown = ", ".join(r.result + (f" (reason {r.reason})" if r.reason else "") for r in results)
                parts.append(f"{method.upper() if method != 'compauth' else 'compauth'}={shown}")
        if not parts:
            return ["Our mail system's Authentication-Results hold no SPF, DKIM, DMARC or compauth result."]
        sentence = "Our mail system recorded: " + "; ".join(parts) + "."
        if any(r.result == "pass" for r in self._of("compauth")) and not self.aligned_pass:
            sentence += (
                " Microsoft's composite authentication passed although no aligned SPF, DKIM or DMARC "
                "pass was recorded (for example on the strength of an ARC chain); this service does not "
                "count that as authentication."
            )
        return [sentence]


def _decide(
    *,
    internal_claim: str | None,
    from_internal: bool,
    senders: _Senders,
    exchange: ExchangeAuth,
    evidence: _Evidence,
) -> tuple[Verdict, bool | None, list[str]]:
    """``internal_claim`` is the first From or Sender address in one of our domains, if any."""
    claims_internal = internal_claim is not None
    auth_as = exchange.auth_as
    claimed = senders.from_address if from_internal else internal_claim
    where = f"AuthAs={auth_as}"
    if exchange.auth_source:
        where += f", AuthSource={exchange.auth_source}"
    spoof = "It is treated as a spoof of an internal sender."
    no_evidence = (
        "There is no Authentication-Results header from our mail system and no "
        "X-MS-Exchange-Organization-AuthAs header, so whether the sender is authenticated "
        "cannot be determined."
    )

    if not claims_internal:
        outside = senders.from_address or "no From address"
        reasons = [f"The sender ({outside}) is not in one of our accepted domains."]
        if auth_as == "Internal":
            reasons.append(
                f"Exchange marked the message as submitted inside our organisation ({where}) although "
                "the sender address is outside it: an internal application, relay or person may have "
                "sent it under an outside name."
            )
        if not evidence.present:
            return "external", None, [*reasons, no_evidence]
        if evidence.aligned_pass:
            reasons.append(
                "Our mail system authenticated the sender's domain (aligned SPF, DKIM or DMARC pass)."
            )
        else:
            reasons.append(
                "Our mail system could not authenticate the sender's domain (no aligned SPF, DKIM or "
                "DMARC pass)."
            )
        return "external", evidence.aligned_pass, reasons

    if auth_as == "Internal":
        marked = (
            f"The sender ({claimed}) is in one of our accepted domains and Exchange marked the message "
            f"as submitted inside our organisation ({where})"
        )
        if evidence.dmarc_fail:
            return (
                "spoofed-internal",
                False,
                [
                    f"{marked}, but our mail system recorded a DMARC failure for that domain. A message that "
                    f"claims our domain and fails DMARC is not accepted as internal. {spoof} Investigators "
                    "should check the headers: an internal relay that breaks DMARC would look the same."
                ],
            )
        reasons = [marked + "."]
        if evidence.failed:
            reasons.append(
                "Our Authentication-Results nevertheless record a compauth failure; Exchange's own marking "
                "was preferred, and investigators should check the headers."
            )
        return "internal", True, reasons

    if not from_internal:
        # Only Sender, or a From address after the first, claims our domain: DMARC checks neither.
        why = f"Exchange did not mark it as internal ({where})" if auth_as else "nothing authenticates it"
        later_from = internal_claim in senders.from_addresses
        which = "A later address in the From header" if later_from else "The Sender header"
        return (
            "spoofed-internal",
            False,
            [
                f"{which} ({internal_claim}) claims one of our domains but the first From address "
                f"({senders.from_address or 'none'}) does not, and {why}. {spoof}"
            ],
        )

    if auth_as == "Anonymous":
        detail = ""
        if evidence.aligned_pass:
            detail = (
                " Our mail system recorded an aligned pass for the domain, but a pass proves only that the "
                "domain's owner allowed the sending server, not that a person inside sent it; a service that "
                "may send as our domain should reach Exchange through a connector, not anonymously."
            )
        elif evidence.failed:
            detail = " Our mail system also recorded a DMARC or compauth failure."
        return (
            "spoofed-internal",
            False,
            [
                f"The sender ({claimed}) claims one of our accepted domains, but Exchange received the "
                f"message anonymously from outside the organisation ({where}).{detail} {spoof}"
            ],
        )

    if auth_as is not None:
        if evidence.aligned_pass:
            return (
                "external",
                True,
                [
                    f"The sender ({claimed}) is in one of our accepted domains and passed authentication, "
                    f"but Exchange received the message from outside the organisation ({where}), for "
                    "example from a service allowed to send as our domain. It is treated as external, "
                    "not as spoofed."
                ],
            )
        detail = " Our mail system also recorded a DMARC or compauth failure." if evidence.failed else ""
        return (
            "spoofed-internal",
            False,
            [
                f"The sender ({claimed}) claims one of our accepted domains, but Exchange received the "
                f"message from outside the organisation without authenticating it ({where}).{detail} {spoof}"
            ],
        )

    if not evidence.present:
        return (
            "internal",
            None,
            [
                f"The sender ({claimed}) is in one of our accepted domains; with no authentication evidence "
                "the verdict rests on the domain alone.",
                no_evidence,
            ],
        )
    if evidence.failed:
        return (
            "spoofed-internal",
            False,
            [
                f"The sender ({claimed}) claims one of our accepted domains but failed DMARC or Microsoft's "
                f"composite authentication at our mail system. {spoof}"
            ],
        )
    if evidence.aligned_pass:
        return (
            "internal",
            True,
            [
                f"The sender ({claimed}) is in one of our accepted domains and our mail system recorded an "
                "aligned SPF, DKIM or DMARC pass."
            ],
        )
    return (
        "spoofed-internal",
        False,
        [
            f"The sender ({claimed}) claims one of our accepted domains but our mail system could not "
            f"authenticate it (no aligned SPF, DKIM or DMARC pass). {spoof}"
        ],
    )
