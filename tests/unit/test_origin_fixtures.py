"""Origin analysis on realistic header sets (tests/fixtures/headers, described in its README)."""

from __future__ import annotations

import json
from pathlib import Path

from addin_service.cases.origin import OriginAnalysis, analyze_origin
from addin_service.cases.origin_headers import split_header_block

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "headers"
ACCEPTED = ("contoso.com",)


def load(name: str) -> list[tuple[str, str]]:
    return split_header_block((FIXTURES / name).read_text(encoding="utf-8"))


def analyse(name: str) -> OriginAnalysis:
    return analyze_origin(load(name), ACCEPTED)


def test_office365_internal_message_is_internal_and_authenticated() -> None:
    analysis = analyse("o365_internal.txt")

    assert (analysis.verdict, analysis.spoofed, analysis.authenticated) == ("internal", False, True)
    assert analysis.claims_internal_domain
    assert analysis.exchange_auth_as.auth_as == "Internal"
    assert analysis.exchange_auth_as.auth_mechanism == "04"
    assert analysis.exchange_auth_as.auth_source == "DM6PR11MB4123.namprd11.prod.outlook.com"
    assert "AuthAs=Internal" in analysis.reasons[0]


def test_office365_internal_message_names_its_sender() -> None:
    analysis = analyse("o365_internal.txt")

    assert analysis.from_address == "jordan.reyes@contoso.com"
    assert analysis.from_display == "Jordan Reyes"
    assert analysis.from_domain == "contoso.com"
    assert analysis.return_path == "jordan.reyes@contoso.com"
    assert analysis.claimed_senders == ("jordan.reyes@contoso.com",)


def test_office365_external_message_with_spf_dkim_dmarc_pass_is_authenticated_external() -> None:
    analysis = analyse("o365_external_pass.txt")

    assert (analysis.verdict, analysis.spoofed, analysis.authenticated) == ("external", False, True)
    assert not analysis.claims_internal_domain
    assert analysis.exchange_auth_as.auth_as == "Anonymous"


def test_exchange_online_authentication_results_without_authserv_id_are_parsed_and_trusted() -> None:
    (header,) = analyse("o365_external_pass.txt").authentication

    assert header.parsed and header.trusted and header.microsoft_form
    assert header.authserv_id is None
    assert [(r.method, r.result) for r in header.results] == [
        ("spf", "pass"),
        ("dkim", "pass"),
        ("dmarc", "pass"),
        ("compauth", "pass"),
    ]
    assert header.results[0].prop("smtp.mailfrom") == "fabrikam.com"
    assert header.results[2].prop("header.from") == "fabrikam.com"
    assert header.results[3].reason == "100"


def test_hops_are_listed_top_first_with_hosts_ips_and_utc_times() -> None:
    hops = analyse("o365_external_pass.txt").received

    assert len(hops) == 5
    entry = hops[3]
    assert entry.from_host == "mail.fabrikam.com"
    assert entry.from_ips == ("203.0.113.25",)
    assert entry.by_host == "BN2PEPF000044A9.mail.protection.outlook.com"
    assert entry.by_ips == ("192.0.2.104",)
    assert entry.via == "Frontend Transport"
    assert entry.timestamp == "2025-01-15T14:02:07Z"
    # The sender's own server wrote its time at -0800; it is normalised to UTC.
    assert hops[4].timestamp == "2025-01-15T14:02:05Z"
    assert hops[4].from_host == "fabrikam-mbx01.corp.fabrikam.com"


def test_gmail_message_forwarded_through_arc_sealer_is_external_and_not_authenticated() -> None:
    analysis = analyse("gmail_arc_forwarded.txt")

    assert (analysis.verdict, analysis.authenticated) == ("external", False)
    assert analysis.from_address == "riley.chen.1990@gmail.com"
    assert analysis.return_path == "alumni-bounces@lists.example.net"
    assert any("composite authentication passed" in r for r in analysis.reasons)


def test_arc_instances_are_recorded_and_said_to_be_unverified() -> None:
    analysis = analyse("gmail_arc_forwarded.txt")

    seal = next(h for h in analysis.arc if h.kind == "ARC-Seal")
    results = next(h for h in analysis.arc if h.kind == "ARC-Authentication-Results")
    assert (seal.instance, seal.cv, seal.domain, seal.selector) == (1, "none", "example.net", "arc-2024")
    assert {h.kind for h in analysis.arc if h.instance == 1} == {
        "ARC-Seal",
        "ARC-Message-Signature",
        "ARC-Authentication-Results",
    }
    assert results.authserv_id == "mx.lists.example.net"
    assert ("dmarc", "pass") in [(r.method, r.result) for r in results.results]
    assert any("not verified cryptographically" in r for r in analysis.reasons)


def test_forwarders_authentication_results_are_recorded_but_not_trusted() -> None:
    analysis = analyse("gmail_arc_forwarded.txt")

    forwarder = next(h for h in analysis.authentication if h.authserv_id == "mx.lists.example.net")
    assert forwarder.parsed
    assert not forwarder.trusted
    assert "below the hop into our mail system" in forwarder.trust


def test_internal_domain_with_dmarc_fail_and_anonymous_submission_is_spoofed_internal() -> None:
    analysis = analyse("spoofed_internal.txt")

    assert (analysis.verdict, analysis.spoofed, analysis.authenticated) == ("spoofed-internal", True, False)
    assert analysis.claims_internal_domain
    assert not analysis.is_internal
    assert analysis.return_path == "bounce-4471@bulk.example.net"
    assert "AuthAs=Anonymous" in analysis.reasons[0]


def test_message_without_any_authentication_evidence_is_decided_by_domain_and_says_so() -> None:
    analysis = analyse("no_auth_results.txt")

    assert analysis.verdict == "internal"
    assert analysis.authenticated is None
    assert analysis.authentication == ()
    assert analysis.exchange_auth_as.auth_as is None
    assert any("cannot be determined" in r for r in analysis.reasons)
    assert any("domain alone" in r for r in analysis.reasons)


def test_attacker_added_authentication_results_below_ours_are_not_trusted() -> None:
    analysis = analyse("fake_authres_below.txt")

    ours, fake = analysis.authentication
    assert ours.trusted and ours.authserv_id is None
    assert fake.authserv_id == "contoso.com"
    assert not fake.trusted
    assert (analysis.verdict, analysis.authenticated) == ("spoofed-internal", False)


def test_attacker_added_pass_cannot_turn_a_spoof_into_an_internal_message() -> None:
    # Our own result is neutral (no pass, no fail); only the forged header below says "pass".
    headers = [
        (name, "dkim=none (message not signed) header.d=none;dmarc=none action=none header.from=contoso.com;")
        if name == "Authentication-Results" and value.startswith("spf=softfail")
        else (name, value)
        for name, value in load("fake_authres_below.txt")
    ]

    analysis = analyze_origin(headers, ACCEPTED)

    assert analysis.verdict == "spoofed-internal"
    assert analysis.authenticated is False


def test_every_fixture_serialises_to_json() -> None:
    for path in sorted(FIXTURES.glob("*.txt")):
        document = json.loads(json.dumps(analyse(path.name).to_dict()))

        assert document["verdict"] in ("internal", "external", "spoofed-internal")
        assert isinstance(document["received"], list) and document["received"]
        assert all(isinstance(r, str) for r in document["reasons"])
