"""Reading Received headers into hops."""

from __future__ import annotations

from addin_service.cases.origin import analyze_origin
from addin_service.cases.origin_received import parse_received, utc_timestamp


def test_postfix_hop_with_comments_yields_hosts_ip_protocol_id_and_recipient() -> None:
    hop = parse_received(
        0,
        "from mail-yw1-f170.google.com (mail-yw1-f170.google.com [198.51.100.170]) "
        "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)) by mx.lists.example.net "
        "(Postfix) with ESMTPS id 4YXk2b0Qz9sP for <alumni@lists.example.net>; "
        "Wed, 15 Jan 2025 06:01:38 -0800 (PST)",
    )

    assert hop.from_host == "mail-yw1-f170.google.com"
    assert hop.from_ips == ("198.51.100.170",)
    assert hop.by_host == "mx.lists.example.net"
    assert hop.with_protocol == "ESMTPS"
    assert hop.smtp_id == "4YXk2b0Qz9sP"
    assert hop.for_address == "alumni@lists.example.net"
    assert hop.timestamp == "2025-01-15T14:01:38Z"
    assert hop.problems == ()


def test_hop_with_only_a_by_clause_is_read() -> None:
    hop = parse_received(
        5, "by 2001:db8:9::12 with SMTP id r18mr1234567ywe.22; Wed, 15 Jan 2025 06:01:37 -0800"
    )

    assert (hop.position, hop.from_host, hop.by_host, hop.by_ips) == (
        5,
        None,
        "2001:db8:9::12",
        ("2001:db8:9::12",),
    )


def test_ipv6_literals_with_prefix_and_zone_are_normalised() -> None:
    hop = parse_received(
        0,
        "from EX01.contoso.com ([IPv6:2001:DB8::5c3a%12]) by EX02.contoso.com; Mon, 4 Sep 2017 03:00:01 "
        "-0700",
    )

    assert hop.from_ips == ("2001:db8::5c3a",)


def test_unreadable_date_is_recorded_as_a_problem() -> None:
    hop = parse_received(0, "from a.example by b.example; the day after tomorrow")

    assert hop.timestamp is None
    assert any("date could not be read" in p for p in hop.problems)


def test_missing_date_is_recorded_as_a_problem() -> None:
    hop = parse_received(0, "from a.example by b.example with SMTP")

    assert hop.timestamp is None
    assert hop.by_host == "b.example"
    assert any("no date" in p for p in hop.problems)


def test_junk_is_kept_raw_and_described() -> None:
    hop = parse_received(0, "this is not a received header at all")

    assert (hop.from_host, hop.by_host) == (None, None)
    assert hop.raw == "this is not a received header at all"
    assert any("neither a 'from' nor a 'by' host" in p for p in hop.problems)


def test_dates_are_normalised_to_utc_and_zoneless_dates_are_utc() -> None:
    assert utc_timestamp("Tue, 14 Jan 2025 01:12:40 -0800 (PST)") == "2025-01-14T09:12:40Z"
    assert utc_timestamp("14 Jan 2025 09:30:11 -0000") == "2025-01-14T09:30:11Z"
    assert utc_timestamp("Tue, 14 Jan 2025 09:12:44 +9999") is None


def test_a_lower_hop_claiming_a_later_time_is_pointed_out() -> None:
    headers = [
        ("Received", "from mx.example.net by EX01.contoso.com; Sat, 18 Jan 2025 02:10:42 +0000"),
        ("Received", "from forged.example by mx.example.net; Sat, 18 Jan 2025 09:00:00 +0000"),
    ]

    analysis = analyze_origin(headers, ("contoso.com",))

    assert any("claims a later time" in r for r in analysis.reasons)
