"""What one message can make the origin analysis parse is bounded, and what is not parsed is still
scanned: padding a header or repeating it hides no address and is said in the reasons.

No timings here (house rule): each test checks that a limit applies, by what the analysis says
and finds, and that the slow parsers were not given what they must not be given.
"""

from __future__ import annotations

import base64
import random
import re

from addin_service.cases import origin_authres, origin_headers
from addin_service.cases.origin import analyze_origin
from addin_service.cases.origin_headers import (
    MAX_ADDRESS_PARSER_CHARS,
    MAX_AUTHRES_CHARS,
    MAX_AUTHRES_CHARS_PER_MESSAGE,
    MAX_MAILBOXES_PER_HEADER,
    addresses_in_text,
    parse_mailboxes,
    unfold,
)

ACCEPTED = ("contoso.com",)
EDGE_HOP = (
    "Received",
    "from smtp.example.net (203.0.113.66) by BN2PEPF000044A9.mail.protection.outlook.com "
    "(192.0.2.104) with Microsoft SMTP Server id 15.20.8356.11 via Frontend Transport; "
    "Sat, 18 Jan 2025 02:10:42 +0000",
)
SUPERVISOR = "morgan.lee@contoso.com"


def test_a_from_header_of_16000_quotes_is_read_by_the_plain_scan_and_still_yields_its_address() -> None:
    value = '"' * 16_001 + f" <{SUPERVISOR}>"
    origin_headers._parsed_by_the_standard_library.cache_clear()

    analysis = analyze_origin([EDGE_HOP, ("From", value)], ACCEPTED)

    assert analysis.claimed_senders == (SUPERVISOR,)
    assert origin_headers._parsed_by_the_standard_library.cache_info().misses == 0
    assert any(
        f"it is {len(value)} characters long (more than {MAX_ADDRESS_PARSER_CHARS}); its mailboxes were read by "
        "a plain scan" in r
        for r in analysis.reasons
    )


def test_an_address_in_the_display_name_of_a_long_from_header_stays_a_display_name_address() -> None:
    # Routing lets only the message's own sender address silence the security mailbox.
    padding = " " * MAX_ADDRESS_PARSER_CHARS
    value = f'"security@contoso.com{padding}" <x81@fabrikam.com>'

    analysis = analyze_origin([EDGE_HOP, ("From", value)], ACCEPTED)

    assert analysis.claimed_senders == ("x81@fabrikam.com",)
    assert analysis.display_name_addresses == ("security@contoso.com",)
    assert any("shows the address security@contoso.com" in r for r in analysis.reasons)


def test_an_address_in_an_encoded_display_name_of_a_long_from_header_is_still_a_claim() -> None:
    hidden = base64.b64encode(SUPERVISOR.encode()).decode()
    value = "(padding) " * 200 + f"=?utf-8?B?{hidden}?= <x81@fabrikam.com>"

    analysis = analyze_origin([EDGE_HOP, ("From", value)], ACCEPTED)

    assert analysis.claimed_senders == ("x81@fabrikam.com",)
    assert SUPERVISOR in analysis.display_name_addresses


def test_a_quoted_local_part_in_a_long_from_header_is_still_a_claimed_sender() -> None:
    value = '"morgan.lee"@contoso.com' + " (padding)" * 200

    analysis = analyze_origin([EDGE_HOP, ("From", value)], ACCEPTED)

    assert analysis.claimed_senders == (SUPERVISOR,)
    assert analysis.claims_internal_domain


def test_twelve_thousand_from_headers_are_counted_and_read_together_without_losing_the_last() -> None:
    headers = [EDGE_HOP] + [("From", f"u{i}@fabrikam.com") for i in range(11_999)] + [("From", SUPERVISOR)]

    analysis = analyze_origin(headers, ACCEPTED)

    assert analysis.from_address == "u0@fabrikam.com"
    assert SUPERVISOR in (*analysis.claimed_senders, *analysis.display_name_addresses)
    assert len(analysis.claimed_senders) <= 2 * MAX_MAILBOXES_PER_HEADER
    assert (
        "The message has 12000 From headers: the first was read on its own and the other 11999 together, as one "
        "list of addresses." in analysis.reasons
    )
    assert any("The message has 12000 From headers (a message may have only one)" in r for r in analysis.reasons)


def test_an_open_quote_in_one_from_header_does_not_swallow_the_next_one() -> None:
    headers = [("From", "x81@fabrikam.com"), ("From", '"Jordan'), ("From", f"Morgan <{SUPERVISOR}>")]

    analysis = analyze_origin(headers, ACCEPTED)

    assert analysis.claimed_senders == ("x81@fabrikam.com", SUPERVISOR)
    assert analysis.claims_internal_domain


def test_addresses_after_the_sixteenth_of_one_header_are_still_claims_and_the_cut_is_said() -> None:
    value = ", ".join(f"u{i}@fabrikam.com" for i in range(40)) + f", Morgan <{SUPERVISOR}>"

    analysis = analyze_origin([EDGE_HOP, ("From", value)], ACCEPTED)

    assert len(analysis.claimed_senders) == MAX_MAILBOXES_PER_HEADER
    assert SUPERVISOR in analysis.display_name_addresses
    assert any(f"it holds more than {MAX_MAILBOXES_PER_HEADER} addresses" in r for r in analysis.reasons)


def test_realistic_from_values_are_still_read_by_the_full_parser() -> None:
    mailboxes, problems = parse_mailboxes('"Lee, Morgan" <Morgan.Lee@Contoso.com>')

    assert [(m.display, m.address) for m in mailboxes] == [("Lee, Morgan", SUPERVISOR)]
    assert problems == []


def test_authentication_results_beyond_the_per_message_budget_are_left_out_and_counted() -> None:
    ours = "spf=pass (sender IP is 203.0.113.66) smtp.mailfrom=contoso.com; dmarc=pass header.from=contoso.com"
    forged = "mx.example.net; dmarc=pass header.from=contoso.com (" + "x" * 300 + ")"
    headers = [("Authentication-Results", ours), EDGE_HOP] + [("Authentication-Results", forged)] * 60
    headers.append(("From", SUPERVISOR))
    read = 1 + (MAX_AUTHRES_CHARS_PER_MESSAGE - len(ours)) // len(forged)

    analysis = analyze_origin(headers, ACCEPTED)

    assert len(analysis.authentication) == read
    assert analysis.authentication[0].trusted
    assert (analysis.verdict, analysis.authenticated) == ("internal", True)
    assert any(
        f"Only the first {read} of 61 Authentication-Results headers were read" in r and f"other {61 - read}" in r
        for r in analysis.reasons
    )


def test_arc_authentication_results_beyond_the_per_message_budget_are_left_out_and_counted() -> None:
    value = "i=1; mx.example.net; dkim=pass header.d=example.net (" + "x" * 900 + ")"
    headers = [("ARC-Authentication-Results", value)] * 50 + [("From", SUPERVISOR)]
    read = MAX_AUTHRES_CHARS_PER_MESSAGE // len(value)

    analysis = analyze_origin(headers, ACCEPTED)

    assert len(analysis.arc) == read
    assert any(
        f"Only the first {read} of 50 ARC-Authentication-Results headers were read" in r for r in analysis.reasons
    )


def test_arc_authentication_results_are_parsed_once_per_value() -> None:
    origin_authres._parse_remembered.cache_clear()
    value = "i=2; mx.microsoft.com 1; spf=pass smtp.mailfrom=contoso.com; dmarc=pass header.from=contoso.com"

    first = origin_authres.parse_arc(0, "ARC-Authentication-Results", value)
    again = origin_authres.parse_arc(7, "ARC-Authentication-Results", value)

    assert first.results == again.results and [r.method for r in first.results] == ["spf", "dmarc"]
    assert origin_authres._parse_remembered.cache_info().hits == 1


def test_an_authentication_results_value_longer_than_authres_is_given_is_recorded_unparsed() -> None:
    value = "mx.contoso.com; spf=pass (" + "x" * MAX_AUTHRES_CHARS + ") smtp.mailfrom=contoso.com"

    header = origin_authres.parse_authentication_results(0, value)

    assert not header.parsed
    assert header.parse_error == (
        f"not parsed because it is {len(value)} characters long (more than {MAX_AUTHRES_CHARS})"
    )


def test_addresses_in_text_sees_through_encoded_words_quoting_comments_and_spaces() -> None:
    text = (
        "=?utf-8?Q?morgan.lee=40contoso.com?= <a@fabrikam.com>, \"sam\"@contoso.com, "
        "jo(comment)@contoso.com, kim @ contoso . com"
    )

    assert addresses_in_text(text) == [
        "a@fabrikam.com",
        "morgan.lee@contoso.com",
        "sam@contoso.com",
        "jo@contoso.com",
        "kim@contoso.com",
    ]


def test_a_local_part_longer_than_64_characters_is_read_as_its_last_64() -> None:
    assert addresses_in_text("x" * 70 + "@fabrikam.com") == ["x" * 64 + "@fabrikam.com"]


def test_unfolding_follows_the_rfc_rule_however_the_line_breaks_are_arranged() -> None:
    fold, bare = re.compile(r"\r?\n(?=[ \t])"), re.compile(r"[\r\n]+")

    def by_the_rule(value: str) -> tuple[str, bool]:
        unfolded = fold.sub("", value)
        replaced = bare.sub(" ", unfolded)
        return replaced.strip(), replaced != unfolded

    rng = random.Random(20250118)
    for _ in range(5_000):
        value = "".join(rng.choice("\r\n \tab\ue000") for _ in range(rng.randint(0, 14)))

        assert unfold(value) == by_the_rule(value), repr(value)
