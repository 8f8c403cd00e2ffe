"""The origin analysis never raises, whatever the headers hold, and says what was wrong."""

from __future__ import annotations

import json
import random
import time

from addin_service.cases.origin import analyze_origin
from addin_service.cases.origin_headers import split_header_block

ACCEPTED = ("contoso.com",)


def test_missing_from_is_reported_and_the_message_is_external() -> None:
    analysis = analyze_origin([("To", "sam.patel@contoso.com"), ("Subject", "hi")], ACCEPTED)

    assert analysis.from_address is None
    assert analysis.verdict == "external"
    assert analysis.claimed_senders == ()
    assert "The message has no From header." in analysis.reasons


def test_every_address_of_multiple_from_headers_is_a_claimed_sender() -> None:
    headers = [("From", "riley.chen.1990@gmail.com"), ("From", "Jordan Reyes <jordan.reyes@contoso.com>")]

    analysis = analyze_origin(headers, ACCEPTED)

    assert analysis.claimed_senders == ("riley.chen.1990@gmail.com", "jordan.reyes@contoso.com")
    assert analysis.from_address == "riley.chen.1990@gmail.com"
    assert analysis.claims_internal_domain
    assert any("2 From headers" in r for r in analysis.reasons)


def test_a_later_from_address_claiming_our_domain_is_named_in_the_verdict() -> None:
    headers = [("From", "a1@example.net, a2@example.net, Jordan <jordan.reyes@contoso.com>")]

    analysis = analyze_origin(headers, ACCEPTED)

    assert analysis.verdict == "spoofed-internal"
    assert analysis.reasons[0].startswith(
        "A later address in the From header (jordan.reyes@contoso.com) claims one of our domains but the "
        "first From address (a1@example.net) does not"
    )


def test_a_sender_header_claiming_our_domain_is_named_in_the_verdict() -> None:
    headers = [("From", "a1@example.net"), ("Sender", "jordan.reyes@contoso.com")]

    analysis = analyze_origin(headers, ACCEPTED)

    assert analysis.verdict == "spoofed-internal"
    assert analysis.reasons[0].startswith("The Sender header (jordan.reyes@contoso.com) claims one of our domains")


def test_encoded_word_display_name_is_decoded() -> None:
    analysis = analyze_origin(
        [("From", "=?utf-8?Q?J=C3=B6rg_M=C3=BCller?= <Jorg.Muller@Contoso.com>")], ACCEPTED
    )

    assert analysis.from_display == "Jörg Müller"
    assert analysis.from_address == "jorg.muller@contoso.com"


def test_address_hidden_in_an_encoded_display_name_is_recorded_as_a_claim() -> None:
    # The display name decodes to "jordan.reyes@contoso.com"; the real address is outside.
    headers = [("From", "=?utf-8?B?am9yZGFuLnJleWVzQGNvbnRvc28uY29t?= <x81@fabrikam.com>")]

    analysis = analyze_origin(headers, ACCEPTED)

    assert analysis.from_address == "x81@fabrikam.com"
    assert analysis.display_name_addresses == ("jordan.reyes@contoso.com",)
    assert any("shows the address jordan.reyes@contoso.com" in r for r in analysis.reasons)


def test_text_direction_characters_in_a_display_name_are_flagged() -> None:
    analysis = analyze_origin([("From", '"Jordan \u202eseyeR" <x81@fabrikam.com>')], ACCEPTED)

    assert any("text-direction" in r for r in analysis.reasons)


def test_folded_values_are_unfolded() -> None:
    analysis = analyze_origin([("From", "Jordan Reyes\r\n <jordan.reyes@contoso.com>")], ACCEPTED)

    assert (analysis.from_display, analysis.from_address) == ("Jordan Reyes", "jordan.reyes@contoso.com")


def test_bare_line_break_in_a_value_is_flagged_as_possible_injection() -> None:
    headers = [
        ("From", "x81@fabrikam.com\r\nSender: jordan.reyes@contoso.com"),
        ("Subject", "hi\nBcc: a@b.example"),
    ]

    analysis = analyze_origin(headers, ACCEPTED)

    assert any("header injection" in r and "From" in r and "Subject" in r for r in analysis.reasons)
    # What was injected into From stays visible as a claim, never as a separate header.
    assert analysis.sender_address is None
    assert "jordan.reyes@contoso.com" in analysis.display_name_addresses


def test_entries_that_are_not_name_value_pairs_are_skipped_and_counted() -> None:
    headers: list[object] = [
        ("From", None),
        (None, "orphan value"),
        ("only-a-name",),
        "From: someone@contoso.com",
        42,
        ("X-Bytes", b"\xff\xfe raw"),
        ("From", "jordan.reyes@contoso.com"),
    ]

    analysis = analyze_origin(headers, ACCEPTED)  # type: ignore[arg-type]

    assert analysis.from_address == "jordan.reyes@contoso.com"
    assert any("3 header entries were not a (name, value) pair" in r for r in analysis.reasons)
    assert any("malformed name" in r for r in analysis.reasons)
    assert any("has no value" in r for r in analysis.reasons)


def test_deeply_nested_comments_do_not_break_the_parsers() -> None:
    nested = "(" * 5000 + "x" + ")" * 5000
    headers = [
        ("From", f"{nested} <jordan.reyes@contoso.com>"),
        ("Authentication-Results", f"contoso.com; dmarc=pass {nested} header.from=contoso.com"),
        ("Received", f"from a.example {nested} by b.example; Sat, 18 Jan 2025 02:10:42 +0000"),
        ("ARC-Authentication-Results", f"i=1; mx.example.net; dmarc=pass {nested}"),
    ]

    analysis = analyze_origin(headers, ACCEPTED)

    assert analysis.claimed_senders == ("jordan.reyes@contoso.com",)
    assert not analysis.authentication[0].parsed
    assert "nested" in (analysis.authentication[0].parse_error or "")
    assert analysis.received[0].by_host == "b.example"
    assert analysis.arc[0].problems


def test_200_kilobyte_headers_are_handled_quickly_and_reported() -> None:
    huge = "A" * 200_000
    headers = [
        ("X-Junk", huge),
        ("Received", f"from a.example ({huge}) by b.example; Sat, 18 Jan 2025 02:10:42 +0000"),
        ("Authentication-Results", f"contoso.com; spf=pass ({huge}) smtp.mailfrom=contoso.com"),
        ("From", f'"{huge}" <jordan.reyes@contoso.com>'),
        ("Subject", huge + ";" * 1000),
    ]

    started = time.perf_counter()
    analysis = analyze_origin(headers, ACCEPTED)
    elapsed = time.perf_counter() - started

    assert elapsed < 5, f"took {elapsed:.1f}s: a parser is not linear in the header size"
    assert analysis.claimed_senders == ("jordan.reyes@contoso.com",)
    assert "characters long" in (analysis.authentication[0].parse_error or "")
    assert analysis.received[0].problems
    assert len(json.dumps(analysis.to_dict())) < 100_000


def test_received_header_block_of_thousands_of_hops_is_capped() -> None:
    headers = [
        ("Received", f"from h{i}.example by h{i + 1}.example; Sat, 18 Jan 2025 02:10:42 +0000")
        for i in range(3000)
    ]

    analysis = analyze_origin(headers, ACCEPTED)

    assert len(analysis.received) == 100
    assert any("Only the first 100 of 3000 Received headers" in r for r in analysis.reasons)


def test_random_junk_never_raises_and_always_serialises() -> None:
    rng = random.Random(20250118)
    names = [
        "From",
        "Sender",
        "Reply-To",
        "Return-Path",
        "Received",
        "Authentication-Results",
        "ARC-Seal",
        "ARC-Authentication-Results",
        "ARC-Message-Signature",
        "X-MS-Exchange-Organization-AuthAs",
        "",
    ]
    alphabet = 'abc@.;=()<>"\\ \r\n\t[]:,iIdDsvcv=1contoso.comspfdkimdmarcpass\u202e\x00=?utf-8?Q?'

    for _ in range(300):
        headers = [
            (rng.choice(names), "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120))))
            for _ in range(rng.randint(0, 12))
        ]

        analysis = analyze_origin(headers, ACCEPTED)

        assert analysis.verdict in ("internal", "external", "spoofed-internal")
        json.dumps(analysis.to_dict())


def test_digits_that_are_not_ascii_are_a_problem_of_the_header_never_a_crash() -> None:
    # "²".isdigit() is True but int("²") raises: a sender could have made their message unreportable.
    headers = [
        ("ARC-Seal", "i=²; a=rsa-sha256; cv=none; d=evil.example; s=k; b=AAAA"),
        ("ARC-Authentication-Results", "i=①; mx.contoso.com; dmarc=pass header.from=contoso.com"),
        ("From", "Jordan Reyes <jordan.reyes@contoso.com>"),
    ]

    analysis = analyze_origin(headers, ACCEPTED)

    assert [arc.problems for arc in analysis.arc] == [
        ("it has no valid i= tag",),
        ("it does not start with i=<number>;",),
    ]
    json.dumps(analysis.to_dict())


def test_split_header_block_keeps_folding_and_stops_at_the_body() -> None:
    text = (
        "From: Jordan\r\n <jordan.reyes@contoso.com>\r\nnot a header line\r\nSubject: x\r\n\r\nBody: no\r\n"
    )

    assert split_header_block(text) == [
        ("From", "Jordan\r\n <jordan.reyes@contoso.com>"),
        ("", "not a header line"),
        ("Subject", "x"),
    ]


def test_authentication_results_parsed_once_per_value_and_long_values_never_remembered() -> None:
    from addin_service.cases import origin_authres
    from addin_service.cases.origin_headers import MAX_PARSED_CHARS

    origin_authres._parse_remembered.cache_clear()
    value = "mx.contoso.com; spf=pass smtp.mailfrom=example.net; dkim=pass header.d=example.net; dmarc=pass"
    first = origin_authres.parse_authentication_results(0, value)
    again = origin_authres.parse_authentication_results(3, value)
    huge = "mx.contoso.com; spf=pass (" + "x" * MAX_PARSED_CHARS + ")"
    refused = origin_authres.parse_authentication_results(1, huge)

    assert (first.results, first.authserv_id) == (again.results, again.authserv_id)
    assert [r.method for r in first.results] == ["spf", "dkim", "dmarc"]
    assert again.position == 3
    assert origin_authres._parse_remembered.cache_info().hits == 1
    assert origin_authres._parse_remembered.cache_info().currsize == 1
    assert not refused.parsed and refused.parse_error is not None
