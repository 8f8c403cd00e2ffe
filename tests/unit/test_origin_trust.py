"""Which Authentication-Results and AuthAs headers the origin analysis believes, and the
verdict rules built on them."""

from __future__ import annotations

from addin_service.cases.origin import analyze_origin

ACCEPTED = ("contoso.com",)
EDGE_HOP = (
    "Received",
    "from smtp.example.net (203.0.113.66) by BN2PEPF000044A9.mail.protection.outlook.com "
    "(192.0.2.104) with Microsoft SMTP Server id 15.20.8356.11 via Frontend Transport; "
    "Sat, 18 Jan 2025 02:10:42 +0000",
)


def test_authserv_id_in_an_accepted_domain_above_the_edge_hop_is_trusted() -> None:
    headers = [
        (
            "Authentication-Results",
            "mx1.contoso.com; spf=pass smtp.mailfrom=contoso.com; dmarc=pass header.from=contoso.com",
        ),
        EDGE_HOP,
        ("From", "casey.lindqvist@contoso.com"),
    ]

    analysis = analyze_origin(headers, ACCEPTED)

    assert analysis.authentication[0].trusted
    assert (analysis.verdict, analysis.authenticated) == ("internal", True)


def test_topmost_authentication_results_from_a_foreign_authserv_id_is_not_trusted() -> None:
    headers = [
        ("Authentication-Results", "mx.example.net; dmarc=pass header.from=contoso.com"),
        EDGE_HOP,
        ("From", "casey.lindqvist@contoso.com"),
    ]

    analysis = analyze_origin(headers, ACCEPTED)

    assert not analysis.authentication[0].trusted
    assert "not ours" in analysis.authentication[0].trust
    assert analysis.authenticated is None


def test_microsoft_form_naming_our_tenant_is_parsed_and_trusted() -> None:
    value = (
        "spf=none (sender IP is 192.0.2.4) smtp.mailfrom=fabrikam.com; contoso.com; dkim=none "
        "(message not signed) header.d=none; contoso.com; dmarc=none action=none "
        "header.from=fabrikam.com; compauth=fail reason=001"
    )

    analysis = analyze_origin(
        [("Authentication-Results", value), EDGE_HOP, ("From", "chris@fabrikam.com")], ACCEPTED
    )

    (header,) = analysis.authentication
    assert (header.authserv_id, header.microsoft_form, header.trusted) == ("contoso.com", True, True)
    assert [r.method for r in header.results] == ["spf", "dkim", "dmarc", "compauth"]
    assert (analysis.verdict, analysis.authenticated) == ("external", False)


def test_microsoft_form_naming_another_tenant_is_not_ours() -> None:
    value = (
        "spf=pass (sender IP is 192.0.2.4) smtp.mailfrom=contoso.com; fabrikam.com; "
        "dmarc=pass header.from=contoso.com"
    )

    analysis = analyze_origin(
        [("Authentication-Results", value), EDGE_HOP, ("From", "a@contoso.com")], ACCEPTED
    )

    assert analysis.authentication[0].authserv_id == "fabrikam.com"
    assert not analysis.authentication[0].trusted


def test_configured_gateway_directly_below_our_hop_is_trusted() -> None:
    headers = [
        (
            "Authentication-Results",
            "dkim=none (message not signed) header.d=none;dmarc=none action=none header.from=contoso.com;",
        ),
        (
            "Received",
            "from gw1.gateway.example (198.51.100.9) by BN2PEPF000044A9.mail.protection.outlook.com; Sat, "
            "18 Jan 2025 02:10:42 +0000",
        ),
        (
            "Authentication-Results",
            "gw1.gateway.example; spf=pass smtp.mailfrom=contoso.com; dmarc=pass header.from=contoso.com",
        ),
        (
            "Received",
            "from smtp.example.net (203.0.113.66) by gw1.gateway.example; Sat, 18 Jan 2025 02:10:41 +0000",
        ),
        ("From", "casey.lindqvist@contoso.com"),
    ]

    analysis = analyze_origin(headers, ACCEPTED, trusted_authserv_ids=["GW1.gateway.example"])

    assert [h.trusted for h in analysis.authentication] == [True, True]
    assert (analysis.verdict, analysis.authenticated) == ("internal", True)


def test_gateway_authserv_id_is_not_trusted_unless_configured() -> None:
    headers = [
        (
            "Authentication-Results",
            "dkim=none (message not signed) header.d=none;dmarc=none action=none header.from=contoso.com;",
        ),
        (
            "Received",
            "from gw1.gateway.example (198.51.100.9) by BN2PEPF000044A9.mail.protection.outlook.com; Sat, "
            "18 Jan 2025 02:10:42 +0000",
        ),
        (
            "Authentication-Results",
            "gw1.gateway.example; spf=pass smtp.mailfrom=contoso.com; dmarc=pass header.from=contoso.com",
        ),
        ("From", "casey.lindqvist@contoso.com"),
    ]

    analysis = analyze_origin(headers, ACCEPTED)

    assert [h.trusted for h in analysis.authentication] == [True, False]
    assert analysis.verdict == "spoofed-internal"


def test_forged_gateway_result_two_hops_down_is_not_trusted() -> None:
    headers = [
        ("Authentication-Results", "dmarc=none action=none header.from=contoso.com"),
        (
            "Received",
            "from gw1.gateway.example by BN2PEPF000044A9.mail.protection.outlook.com; Sat, 18 Jan 2025 "
            "02:10:42 +0000",
        ),
        (
            "Received",
            "from smtp.example.net (203.0.113.66) by gw1.gateway.example; Sat, 18 Jan 2025 02:10:41 +0000",
        ),
        ("Authentication-Results", "gw1.gateway.example; dmarc=pass header.from=contoso.com"),
        ("From", "casey.lindqvist@contoso.com"),
    ]

    analysis = analyze_origin(headers, ACCEPTED, trusted_authserv_ids=["gw1.gateway.example"])

    assert [h.trusted for h in analysis.authentication] == [True, False]
    assert analysis.verdict == "spoofed-internal"


def test_unparseable_authentication_results_is_recorded_and_not_used() -> None:
    headers = [("Authentication-Results", "contoso.com; dmarc="), EDGE_HOP, ("From", "a@contoso.com")]

    analysis = analyze_origin(headers, ACCEPTED)

    (header,) = analysis.authentication
    assert not header.parsed and not header.trusted
    assert header.parse_error and "authres" in header.parse_error
    assert analysis.authenticated is None
    assert any("could not be parsed" in r for r in analysis.reasons)


def test_dmarc_result_about_another_from_domain_does_not_authenticate() -> None:
    headers = [
        ("Authentication-Results", "mx1.contoso.com; dmarc=pass header.from=fabrikam.com"),
        EDGE_HOP,
        ("From", "casey.lindqvist@contoso.com"),
    ]

    analysis = analyze_origin(headers, ACCEPTED)

    assert (analysis.verdict, analysis.authenticated) == ("spoofed-internal", False)


def test_dkim_pass_from_a_subdomain_is_aligned() -> None:
    headers = [
        ("Authentication-Results", "dkim=pass header.d=mail.contoso.com"),
        EDGE_HOP,
        ("From", "a@contoso.com"),
    ]

    analysis = analyze_origin(headers, ACCEPTED)

    assert (analysis.verdict, analysis.authenticated) == ("internal", True)


def test_spf_pass_for_an_unrelated_envelope_domain_is_not_aligned() -> None:
    headers = [
        ("Authentication-Results", "spf=pass smtp.mailfrom=bulk.example.net; dkim=none header.d=none"),
        EDGE_HOP,
        ("From", "a@contoso.com"),
    ]

    analysis = analyze_origin(headers, ACCEPTED)

    assert analysis.verdict == "spoofed-internal"


def test_conflicting_auth_as_headers_use_the_least_trusted_value() -> None:
    headers = [
        ("From", "jordan.reyes@contoso.com"),
        ("X-MS-Exchange-Organization-AuthAs", "Internal"),
        ("X-MS-Exchange-Organization-AuthAs", "anonymous"),
    ]

    analysis = analyze_origin(headers, ACCEPTED)

    assert analysis.exchange_auth_as.conflicting
    assert analysis.exchange_auth_as.seen == ("Internal", "Anonymous")
    assert analysis.exchange_auth_as.auth_as == "Anonymous"
    assert analysis.verdict == "spoofed-internal"


def test_unknown_auth_as_value_is_never_treated_as_internal() -> None:
    analysis = analyze_origin(
        [("From", "jordan.reyes@contoso.com"), ("X-MS-Exchange-Organization-AuthAs", "Trusted")], ACCEPTED
    )

    assert analysis.verdict == "spoofed-internal"
    assert any("does not know" in r for r in analysis.reasons)


def test_anonymous_submission_claiming_our_domain_is_a_spoof_even_with_an_aligned_pass() -> None:
    headers = [
        (
            "Authentication-Results",
            "dkim=pass (signature was verified) header.d=contoso.com;dmarc=pass action=none "
            "header.from=contoso.com",
        ),
        EDGE_HOP,
        ("From", "newsletter@contoso.com"),
        ("X-MS-Exchange-Organization-AuthAs", "Anonymous"),
    ]

    analysis = analyze_origin(headers, ACCEPTED)

    assert (analysis.verdict, analysis.spoofed, analysis.authenticated) == ("spoofed-internal", True, False)
    assert any("anonymously" in r and "aligned pass" in r for r in analysis.reasons)


def test_a_partner_submission_claiming_our_domain_with_an_aligned_pass_is_external() -> None:
    headers = [
        ("Authentication-Results", "dmarc=pass action=none header.from=contoso.com"),
        EDGE_HOP,
        ("From", "payroll@contoso.com"),
        ("X-MS-Exchange-Organization-AuthAs", "Partner"),
    ]

    analysis = analyze_origin(headers, ACCEPTED)

    assert (analysis.verdict, analysis.spoofed, analysis.authenticated) == ("external", False, True)


def test_auth_as_internal_with_a_dmarc_failure_is_a_spoof_and_says_both() -> None:
    headers = [
        ("Authentication-Results", "dmarc=fail action=none header.from=contoso.com"),
        EDGE_HOP,
        ("From", "jordan.reyes@contoso.com"),
        ("X-MS-Exchange-Organization-AuthAs", "Internal"),
    ]

    analysis = analyze_origin(headers, ACCEPTED)

    assert (analysis.verdict, analysis.spoofed, analysis.authenticated) == ("spoofed-internal", True, False)
    assert any("AuthAs=Internal" in r and "DMARC failure" in r for r in analysis.reasons)


def test_auth_as_internal_wins_over_a_compauth_failure_alone_and_says_so() -> None:
    headers = [
        ("Authentication-Results", "dmarc=none action=none header.from=contoso.com;compauth=fail reason=001"),
        EDGE_HOP,
        ("From", "jordan.reyes@contoso.com"),
        ("X-MS-Exchange-Organization-AuthAs", "Internal"),
    ]

    analysis = analyze_origin(headers, ACCEPTED)

    assert analysis.verdict == "internal"
    assert any("investigators should check" in r for r in analysis.reasons)


# A message straight from the sender's own software: every Received header above the forged one.
OUR_HOP = ("Received", "from attacker.example (203.0.113.9) by mail.contoso.com; Sat, 18 Jan 2025 02:10:42 +0000")


def test_a_pass_forged_by_the_sender_below_every_hop_is_not_trusted() -> None:
    for forged in (
        "contoso.com; dmarc=pass header.from=contoso.com",  # our accepted domain as authserv-id
        "spf=pass smtp.mailfrom=contoso.com; dmarc=pass action=none header.from=contoso.com",  # Microsoft's form
    ):
        headers = [OUR_HOP, ("Authentication-Results", forged), ("From", "boss@contoso.com")]

        analysis = analyze_origin(headers, ACCEPTED)

        assert not analysis.authentication[0].trusted, forged
        assert "no Received header lies below it" in analysis.authentication[0].trust
        assert analysis.authenticated is None


def test_a_forged_pass_cannot_clear_an_anonymous_submission() -> None:
    headers = [
        OUR_HOP,
        ("Authentication-Results", "contoso.com; dmarc=pass header.from=contoso.com"),
        ("From", "boss@contoso.com"),
        ("X-MS-Exchange-Organization-AuthAs", "Anonymous"),
    ]

    analysis = analyze_origin(headers, ACCEPTED)

    assert (analysis.verdict, analysis.spoofed, analysis.authenticated) == ("spoofed-internal", True, False)


def test_a_configured_authserv_id_is_trusted_with_no_hop_below_it() -> None:
    headers = [
        OUR_HOP,
        ("Authentication-Results", "gw.contoso-mail.net; dmarc=fail header.from=contoso.com"),
        ("From", "boss@contoso.com"),
    ]

    trusted = analyze_origin(headers, ACCEPTED, trusted_authserv_ids=["gw.contoso-mail.net"])
    untrusted = analyze_origin(headers, ACCEPTED)

    assert trusted.authentication[0].trusted and trusted.verdict == "spoofed-internal"
    assert not untrusted.authentication[0].trusted and untrusted.verdict == "internal"


def test_internal_claim_in_sender_header_only_is_a_spoof() -> None:
    headers = [
        ("From", "riley.chen.1990@gmail.com"),
        ("Sender", "jordan.reyes@contoso.com"),
        ("X-MS-Exchange-Organization-AuthAs", "Anonymous"),
    ]

    analysis = analyze_origin(headers, ACCEPTED)

    assert analysis.claims_internal_domain
    assert analysis.verdict == "spoofed-internal"
    assert analysis.claimed_senders == ("riley.chen.1990@gmail.com", "jordan.reyes@contoso.com")


def test_subdomain_of_an_accepted_domain_claims_internal() -> None:
    analysis = analyze_origin(
        [("From", "ops@eu.contoso.com"), ("X-MS-Exchange-Organization-AuthAs", "Internal")], ACCEPTED
    )

    assert analysis.claims_internal_domain
    assert analysis.verdict == "internal"


def test_lookalike_domain_is_not_internal() -> None:
    analysis = analyze_origin(
        [("From", "jordan.reyes@contoso.com.example.net"), ("X-MS-Exchange-Organization-AuthAs", "Internal")],
        ACCEPTED,
    )

    assert not analysis.claims_internal_domain
    assert analysis.verdict == "external"
    assert any("submitted inside our organisation" in r for r in analysis.reasons)


def test_without_accepted_domains_nothing_is_internal_and_the_reason_says_why() -> None:
    analysis = analyze_origin(
        [("From", "jordan.reyes@contoso.com"), ("X-MS-Exchange-Organization-AuthAs", "Internal")], []
    )

    assert analysis.verdict == "external"
    assert any("No accepted domains are configured" in r for r in analysis.reasons)


def test_signature_for_a_bare_top_level_domain_is_not_aligned() -> None:
    headers = [("Authentication-Results", "dkim=pass header.d=com"), EDGE_HOP, ("From", "a@contoso.com")]

    analysis = analyze_origin(headers, ACCEPTED)

    assert analysis.verdict == "spoofed-internal"


def test_dmarc_failure_outweighs_an_aligned_dkim_pass() -> None:
    headers = [
        (
            "Authentication-Results",
            "dkim=pass header.d=contoso.com;dmarc=fail action=none header.from=contoso.com",
        ),
        EDGE_HOP,
        ("From", "jordan.reyes@contoso.com"),
        ("X-MS-Exchange-Organization-AuthAs", "Anonymous"),
    ]

    analysis = analyze_origin(headers, ACCEPTED)

    assert (analysis.verdict, analysis.authenticated) == ("spoofed-internal", False)


def test_microsoft_form_whose_first_result_has_no_properties_keeps_that_result() -> None:
    # authres alone would take "spf=pass" for the authserv-id and lose the SPF result.
    headers = [
        ("Authentication-Results", "spf=pass; dkim=pass header.d=contoso.com"),
        EDGE_HOP,
        ("From", "a@contoso.com"),
    ]

    (header,) = analyze_origin(headers, ACCEPTED).authentication

    assert header.authserv_id is None
    assert [(r.method, r.result) for r in header.results] == [("spf", "pass"), ("dkim", "pass")]


INTERNAL_SUBMISSION = [
    (
        "Received",
        "from DM6PR11MB4123.namprd11.prod.outlook.com (2001:db8:4c1::1a) by "
        "BN6PR11MB1875.namprd11.prod.outlook.com with HTTPS; Tue, 14 Jan 2025 09:30:12 +0000",
    ),
    (
        "Authentication-Results",
        "dkim=none (message not signed) header.d=none;dmarc=none action=none header.from=contoso.com;",
    ),
]
SUBMITTED = [("From", "Jordan Reyes <jordan.reyes@contoso.com>"), ("X-MS-Exchange-Organization-AuthAs", "Internal")]


def test_a_failure_an_internal_sender_wrote_below_exchange_onlines_header_is_not_trusted() -> None:
    # A routing audit: an internal sender adds a result and a Received that looks like the hop in, to be
    # taken for an outsider (Office of Investigations, "NOT authenticated") instead of Internal Affairs.
    for forged in ("contoso.com; dmarc=fail header.from=contoso.com", "dmarc=fail action=none header.from=contoso.com"):
        headers = [
            *INTERNAL_SUBMISSION,
            ("Authentication-Results", forged),
            ("Received", "from x.invalid by y.invalid; Tue, 14 Jan 2025 09:30:10 +0000"),
            *SUBMITTED,
        ]

        analysis = analyze_origin(headers, ACCEPTED)

        assert (analysis.verdict, analysis.authenticated) == ("internal", True), forged
        assert [h.trusted for h in analysis.authentication] == [True, False]
        assert "came with the message" in analysis.authentication[1].trust


def test_a_result_added_to_a_message_submitted_inside_is_never_ours() -> None:
    # Exchange Server writes no Authentication-Results, and a listed gateway never saw internal mail:
    # whatever result an internal sender adds, with a Received that looks like a hop, came with it.
    on_premises = [
        (
            "Received",
            "from EX01.contoso.com (10.0.0.5) by EX02.contoso.com (10.0.0.6) with mapi id 15.2.1544.4; "
            "Tue, 14 Jan 2025 09:30:11 +0000",
        )
    ]
    for authserv_id in ("contoso.com", "mx.gw.example"):
        forged = f"{authserv_id}; dmarc=fail header.from=contoso.com"
        headers = [
            *on_premises,
            ("Authentication-Results", forged),
            ("Received", "from x.invalid by y.invalid; Tue, 14 Jan 2025 09:30:10 +0000"),
            *SUBMITTED,
        ]

        analysis = analyze_origin(headers, ACCEPTED, trusted_authserv_ids=("mx.gw.example",))

        assert (analysis.verdict, analysis.authenticated) == ("internal", True), forged
        assert not analysis.authentication[0].trusted
        assert "submitted inside our organisation" in analysis.authentication[0].trust
