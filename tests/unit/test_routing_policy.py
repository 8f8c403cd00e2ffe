"""The routing policy: who is told about a report, and who must never be."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import replace

from addin_service.cases.origin import OriginAnalysis, analyze_origin
from addin_service.cases.routing import (
    PlannedNotification,
    RoutingContext,
    RoutingMailboxes,
    RoutingPlan,
    SupervisorSource,
    describe_for_reporter,
    plan_notifications,
)

REPORTER = "sam.patel@contoso.com"
SUPERVISOR = "jordan.reyes@contoso.com"
SKIP_LEVEL = "casey.lindqvist@contoso.com"
DIRECTOR = "morgan.ito@contoso.com"
CHAIN = (SUPERVISOR, SKIP_LEVEL, DIRECTOR)
MAILBOXES = RoutingMailboxes(
    security="security@contoso.com",
    fallback="hr-helpdesk@contoso.com",
    internal_affairs="internal.affairs@contoso.com",
    investigations="investigations@contoso.com",
)


def origin(
    from_: str = "riley.chen.1990@gmail.com", auth_as: str | None = "Anonymous", **more: str
) -> OriginAnalysis:
    """A real analysis of a minimal header set: From, optional Sender, Exchange's AuthAs."""
    headers = [("From", from_)]
    if "sender" in more:
        headers.append(("Sender", more["sender"]))
    if auth_as:
        headers.append(("X-MS-Exchange-Organization-AuthAs", auth_as))
    return analyze_origin(headers, ["contoso.com"])


def plan(
    analysis: OriginAnalysis | None = None,
    *,
    chain: tuple[str, ...] = CHAIN,
    source: SupervisorSource = "directory",
    aliases: Mapping[str, Collection[str]] | None = None,
    mailboxes: RoutingMailboxes = MAILBOXES,
    feels_unsafe: bool = False,
    campaign: bool = False,
    campaign_told: frozenset[str] = frozenset(),
    security_team: frozenset[str] = frozenset(),
    also_claimed: frozenset[str] = frozenset(),
    case_senders: frozenset[str] = frozenset(),
) -> RoutingPlan:
    return plan_notifications(
        RoutingContext(
            reporter=REPORTER,
            supervisor_chain=chain,
            supervisor_source=source,
            origin=analysis or origin(),
            mailboxes=mailboxes,
            feels_unsafe=feels_unsafe,
            campaign=campaign,
            campaign_told=campaign_told,
            aliases=aliases or {},
            security_team=security_team,
            also_claimed=also_claimed,
            case_senders=case_senders,
        )
    )


def recipients(result: RoutingPlan) -> dict[str, str]:
    return {n.role: n.to for n in result.notifications}


def told(result: RoutingPlan) -> set[str]:
    return {n.to for n in result.notifications}


def only(result: RoutingPlan, role: str) -> PlannedNotification:
    (notification,) = [n for n in result.notifications if n.role == role]
    return notification


# --- the supervisor -----------------------------------------------------------------------


def test_supervisor_is_told_when_someone_else_sent_the_message() -> None:
    result = plan(origin("riley.chen.1990@gmail.com"))

    assert recipients(result)["supervisor"] == SUPERVISOR
    assert "skip-level" not in recipients(result)
    assert not result.conflict_of_interest


def test_report_from_supervisor_goes_to_skip_level_manager_and_investigators() -> None:
    result = plan(origin(SUPERVISOR, auth_as="Internal"))

    assert SUPERVISOR not in told(result)
    assert recipients(result)["skip-level"] == SKIP_LEVEL
    assert recipients(result)["internal-affairs"] == "internal.affairs@contoso.com"
    assert result.conflict_of_interest
    assert "authenticated by our mail system" in (result.conflict_note or "")  # every recipient reads it once
    assert "authenticated" not in only(result, "skip-level").reason
    assert result.conflict_note and SUPERVISOR in result.conflict_note


def test_unauthenticated_message_claiming_to_be_from_supervisor_still_skips_them_and_says_so() -> None:
    spoof = origin(SUPERVISOR, auth_as="Anonymous")

    result = plan(spoof)

    assert spoof.verdict == "spoofed-internal"
    assert SUPERVISOR not in told(result)
    assert recipients(result)["skip-level"] == SKIP_LEVEL
    assert recipients(result)["investigations"] == "investigations@contoso.com"
    assert "NOT authenticated" in (result.conflict_note or "")
    assert "in the reporter's management chain" in only(result, "investigations").reason


def test_supervisor_matched_by_alias_only_is_not_told() -> None:
    aliases = {SUPERVISOR: {"SMTP:Jordan.Reyes@contoso.com", "smtp:J.Reyes@Contoso.onmicrosoft.com"}}

    result = plan(origin("j.reyes@contoso.onmicrosoft.com", auth_as="Internal"), aliases=aliases)

    assert SUPERVISOR not in told(result)
    assert recipients(result)["skip-level"] == SKIP_LEVEL
    assert result.conflict_of_interest


def test_supervisor_with_a_subaddress_tag_is_still_the_supervisor() -> None:
    """Exchange delivers jordan.reyes+hr@ to jordan.reyes@: it is their address."""
    result = plan(origin('"Jordan Reyes" <Jordan.Reyes+hr@contoso.com>', auth_as="Internal"))

    assert SUPERVISOR not in told(result)
    assert recipients(result)["skip-level"] == SKIP_LEVEL
    assert result.conflict_of_interest


def test_an_alias_with_a_subaddress_tag_is_matched_too() -> None:
    aliases = {SUPERVISOR: {"smtp:j.reyes@contoso.onmicrosoft.com"}}

    result = plan(origin("j.reyes+x@contoso.onmicrosoft.com", auth_as="Internal"), aliases=aliases)

    assert SUPERVISOR not in told(result)


def test_a_plus_in_another_persons_address_matches_nobody_else() -> None:
    result = plan(origin("jordan+reyes@contoso.com", auth_as="Internal"))

    assert recipients(result)["supervisor"] == SUPERVISOR
    assert not result.conflict_of_interest


def test_a_supervisor_named_as_sender_earlier_in_the_case_is_not_told_about_its_next_report() -> None:
    """The next message of the case comes from the outsider alone: the supervisor is still a sender."""
    earlier = frozenset({"riley.chen.1990@gmail.com", SUPERVISOR})

    result = plan(origin("riley.chen.1990@gmail.com"), case_senders=earlier)

    assert SUPERVISOR not in told(result)
    assert recipients(result)["skip-level"] == SKIP_LEVEL
    assert recipients(result)["investigations"] == "investigations@contoso.com"
    assert result.conflict_of_interest
    assert any(f"Earlier reports in this case name {SUPERVISOR}" in d for d in result.decisions)


def test_a_case_sender_known_by_an_alias_is_matched_through_the_directory() -> None:
    aliases = {SUPERVISOR: {"smtp:j.reyes@contoso.onmicrosoft.com"}}

    result = plan(case_senders=frozenset({"j.reyes@contoso.onmicrosoft.com"}), aliases=aliases)

    assert SUPERVISOR not in told(result)


def test_the_plan_names_the_senders_to_keep_with_the_case_including_managers_matched_by_alias() -> None:
    aliases = {SUPERVISOR: {"smtp:j.reyes@contoso.onmicrosoft.com"}}
    sent_by_alias = origin("riley.chen.1990@gmail.com", sender="J.Reyes@contoso.onmicrosoft.com")

    result = plan(sent_by_alias, aliases=aliases)

    assert set(result.senders) == {"riley.chen.1990@gmail.com", "j.reyes@contoso.onmicrosoft.com", SUPERVISOR}


def test_the_plan_keeps_every_address_the_directory_knows_for_a_sender_outside_the_chain() -> None:
    """Written to by an alias, by someone who is not this reporter's manager but may be the next
    reporter's: their case link and their queued notifications are checked by primary address."""
    aliases = {"drew.park@contoso.com": {"smtp:dp@contoso.com"}}

    result = plan(origin("dp@contoso.com", auth_as="Internal"), aliases=aliases)

    assert set(result.senders) == {"dp@contoso.com", "drew.park@contoso.com"}


def test_without_earlier_senders_the_plan_keeps_only_this_messages_senders() -> None:
    result = plan(origin("riley.chen.1990@gmail.com"))

    assert result.senders == ("riley.chen.1990@gmail.com",)
    assert not any("Earlier reports" in d for d in result.decisions)


def test_supervisor_match_ignores_letter_case() -> None:
    result = plan(
        origin("JORDAN.Reyes@Contoso.COM", auth_as="Internal"), chain=("Jordan.Reyes@contoso.com", SKIP_LEVEL)
    )

    assert {n.to for n in result.notifications} & {SUPERVISOR, "jordan.reyes@contoso.com"} == set()


def test_sender_who_is_both_supervisor_and_skip_level_is_skipped_up_the_chain() -> None:
    both = origin(SUPERVISOR, auth_as="Internal", sender=SKIP_LEVEL)

    result = plan(both)

    assert told(result).isdisjoint({SUPERVISOR, SKIP_LEVEL})
    assert recipients(result)["skip-level"] == DIRECTOR
    assert any(SKIP_LEVEL in d and "skipped" in d for d in result.decisions)


def test_sender_higher_in_the_chain_is_never_told_and_investigators_are_alerted() -> None:
    result = plan(origin(SKIP_LEVEL, auth_as="Internal"))

    assert recipients(result)["supervisor"] == SUPERVISOR
    assert SKIP_LEVEL not in told(result)
    assert result.conflict_of_interest
    assert "internal-affairs" in recipients(result)
    assert result.conflict_note and "Do not escalate" in result.conflict_note


def test_when_the_whole_chain_is_the_sender_the_fallback_mailbox_is_told() -> None:
    result = plan(origin(SUPERVISOR, auth_as="Internal"), chain=(SUPERVISOR,))

    assert SUPERVISOR not in told(result)
    assert recipients(result)["fallback"] == "hr-helpdesk@contoso.com"


def test_address_in_the_display_name_counts_as_a_claim_to_be_the_supervisor() -> None:
    lookalike = origin(f'"{SUPERVISOR}" <x81@fabrikam.com>')

    result = plan(lookalike)

    assert SUPERVISOR not in told(result)
    assert recipients(result)["skip-level"] == SKIP_LEVEL


def test_sender_reported_by_exchange_counts_as_a_claim() -> None:
    result = plan(origin("riley.chen.1990@gmail.com"), also_claimed=frozenset({SUPERVISOR.upper()}))

    assert SUPERVISOR not in told(result)


def test_no_supervisor_found_goes_to_fallback() -> None:
    result = plan(chain=(), source="fallback")

    assert recipients(result)["fallback"] == "hr-helpdesk@contoso.com"
    assert "supervisor" not in recipients(result)
    assert any("No supervisor was found" in d for d in result.decisions)


def test_addresses_from_a_fallback_source_are_told_as_fallback_not_as_supervisor() -> None:
    result = plan(chain=("facilities-managers@contoso.com",), source="fallback")

    assert "supervisor" not in recipients(result)
    fallbacks = {n.to for n in result.notifications if n.role == "fallback"}
    assert fallbacks == {"facilities-managers@contoso.com", "hr-helpdesk@contoso.com"}


def test_reporter_listed_in_their_own_chain_is_skipped() -> None:
    result = plan(chain=(REPORTER.upper(), SUPERVISOR))

    assert recipients(result)["supervisor"] == SUPERVISOR
    assert any("lists the reporter" in d for d in result.decisions)


# --- the investigators --------------------------------------------------------------------


def test_internal_sender_goes_to_internal_affairs() -> None:
    result = plan(origin("taylor.kim@contoso.com", auth_as="Internal"))

    assert "internal-affairs" in recipients(result)
    assert "investigations" not in recipients(result)


def test_external_sender_goes_to_office_of_investigations() -> None:
    result = plan(origin("riley.chen.1990@gmail.com"))

    assert "investigations" in recipients(result)
    assert "internal-affairs" not in recipients(result)


def test_spoofed_internal_sender_goes_to_investigations_not_internal_affairs() -> None:
    result = plan(origin("taylor.kim@contoso.com", auth_as="Anonymous"))

    assert "investigations" in recipients(result)
    assert "internal-affairs" not in recipients(result)
    assert "spoofed" in only(result, "investigations").reason


def test_unconfigured_investigators_are_recorded_not_invented() -> None:
    result = plan(
        origin("taylor.kim@contoso.com", auth_as="Internal"),
        mailboxes=RoutingMailboxes(security="security@contoso.com", fallback="hr-helpdesk@contoso.com"),
    )

    assert "internal-affairs" not in recipients(result)
    assert any("ADDIN_INTERNAL_AFFAIRS_MAILBOX" in d for d in result.decisions)


def test_conflict_of_interest_without_internal_affairs_tells_the_other_investigators() -> None:
    mailboxes = RoutingMailboxes(
        security="security@contoso.com",
        fallback="hr-helpdesk@contoso.com",
        investigations="investigations@contoso.com",
    )

    result = plan(origin(SUPERVISOR, auth_as="Internal"), mailboxes=mailboxes)

    assert recipients(result)["investigations"] == "investigations@contoso.com"


# --- the security team --------------------------------------------------------------------


def test_security_team_is_told_of_every_case_with_the_message_attached() -> None:
    result = plan()

    assert only(result, "security").to == "security@contoso.com"
    assert only(result, "security").attach_message


def test_sender_in_security_team_routes_to_fallback_instead_of_security_mailbox() -> None:
    aliases = {"security@contoso.com": {"soc@contoso.com"}}

    result = plan(origin("soc@contoso.com", auth_as="Internal"), aliases=aliases)

    assert "security@contoso.com" not in told(result)
    assert recipients(result)["fallback"] == "hr-helpdesk@contoso.com"
    assert any("security mailbox is not told" in d for d in result.decisions)


def test_listed_security_team_member_as_sender_routes_to_fallback() -> None:
    result = plan(
        origin("avery.soc@contoso.com", auth_as="Internal"),
        security_team=frozenset({"Avery.SOC@contoso.com"}),
    )

    assert "security" not in recipients(result)
    assert recipients(result)["fallback"] == "hr-helpdesk@contoso.com"


def test_in_a_campaign_the_security_team_and_investigators_are_told_once_and_managers_every_time() -> None:
    first = plan(campaign=True)
    later = plan(campaign=True, campaign_told=frozenset({"security@contoso.com", "investigations@contoso.com"}))

    assert {n.role for n in first.notifications if n.once_per_campaign} == {"security", "investigations"}
    assert set(recipients(later)) == {"supervisor", "reporter"}
    assert later.already_told == ("investigations", "security")
    assert sum("already told about this campaign" in d for d in later.decisions) == 2


def test_outside_a_campaign_nothing_is_told_once_only() -> None:
    result = plan(campaign_told=frozenset({"security@contoso.com"}))

    assert "security" in recipients(result)
    assert not any(n.once_per_campaign for n in result.notifications)


def test_one_mailbox_for_security_and_investigations_is_told_once_per_campaign() -> None:
    shared = replace(MAILBOXES, investigations="security@contoso.com")

    first = plan(campaign=True, mailboxes=shared)
    later = plan(campaign=True, mailboxes=shared, campaign_told=frozenset({"security@contoso.com"}))

    assert only(first, "investigations").once_per_campaign and only(first, "investigations").also_as == ("security",)
    assert "security@contoso.com" not in recipients(later).values()
    assert set(later.already_told) == {"investigations", "security"}


def test_investigators_told_for_a_conflict_of_interest_are_told_for_every_such_report() -> None:
    told = frozenset({"security@contoso.com", "investigations@contoso.com", "internal.affairs@contoso.com"})

    result = plan(origin(SUPERVISOR, auth_as="Internal"), campaign=True, campaign_told=told)

    assert result.conflict_of_interest
    assert "internal-affairs" in recipients(result)
    assert not only(result, "internal-affairs").once_per_campaign
    assert "security" not in recipients(result)


def test_a_stand_in_for_the_supervisor_is_never_told_once_only() -> None:
    shared = replace(MAILBOXES, investigations="hr-helpdesk@contoso.com")

    result = plan(chain=(), campaign=True, mailboxes=shared, campaign_told=frozenset({"hr-helpdesk@contoso.com"}))

    stand_in = only(result, "investigations")
    assert (stand_in.to, stand_in.also_as) == ("hr-helpdesk@contoso.com", ("fallback",))
    assert not stand_in.once_per_campaign


# --- the reporter, urgency and one message per person ------------------------------------


def test_reporter_always_gets_a_receipt_without_the_message() -> None:
    receipt = only(plan(chain=(), mailboxes=RoutingMailboxes()), "reporter")

    assert receipt.to == REPORTER
    assert not receipt.attach_message


def test_feeling_unsafe_makes_every_notification_urgent() -> None:
    result = plan(feels_unsafe=True)

    assert len(result.notifications) >= 4
    assert all(n.urgent for n in result.notifications)


def test_without_feeling_unsafe_nothing_is_urgent() -> None:
    assert not any(n.urgent for n in plan().notifications)


def test_same_address_in_two_roles_receives_one_notification_as_the_more_specific_role() -> None:
    shared = RoutingMailboxes(
        security="soc@contoso.com", fallback="SOC@contoso.com", investigations="oi@contoso.com"
    )

    result = plan(chain=(), mailboxes=shared)

    to_soc = [n for n in result.notifications if n.to == "soc@contoso.com"]
    assert len(to_soc) == 1
    assert (to_soc[0].role, to_soc[0].also_as) == ("security", ("fallback",))
    assert len(result.notifications) == len(told(result))


def test_supervisor_who_is_also_the_security_mailbox_never_gets_the_message_attached() -> None:
    result = plan(mailboxes=RoutingMailboxes(security=SUPERVISOR, fallback="hr-helpdesk@contoso.com"))

    (to_supervisor,) = [n for n in result.notifications if n.to == SUPERVISOR]
    assert to_supervisor.role == "supervisor"
    assert not to_supervisor.attach_message


def test_fallback_mailbox_that_is_the_sender_is_never_told() -> None:
    result = plan(origin("hr-helpdesk@contoso.com", auth_as="Internal"), chain=())

    assert "hr-helpdesk@contoso.com" not in told(result)
    assert any("dropped" in d for d in result.decisions)


# --- what is shown and stored -------------------------------------------------------------


def test_reporter_sees_roles_but_no_addresses() -> None:
    result = plan(origin(SUPERVISOR, auth_as="Internal"))

    shown = describe_for_reporter(result)

    assert {"role": "skip-level", "status": "queued"} in shown
    assert all(set(entry) == {"role", "status"} for entry in shown)
    assert "@" not in json.dumps(shown)


def test_plan_is_stored_as_json_with_its_decisions() -> None:
    document = json.loads(json.dumps(plan(origin(SUPERVISOR, auth_as="Anonymous")).to_dict()))

    assert document["conflict_of_interest"] is True
    assert document["sender_authenticated"] is False
    assert any("supervisor is not told" in d for d in document["decisions"])
    assert {n["role"] for n in document["notifications"]} >= {
        "skip-level",
        "investigations",
        "security",
        "reporter",
    }


def test_mailboxes_that_are_aliases_of_each_other_receive_one_notification() -> None:
    aliases = {"security@contoso.com": ["smtp:hr-helpdesk@contoso.com"]}

    result = plan(chain=(), aliases=aliases)

    assert [n.role for n in result.notifications if n.role in ("security", "fallback")] == ["security"]
    assert only(result, "security").also_as == ("fallback",)


def test_supervisor_listed_twice_under_different_aliases_counts_once() -> None:
    aliases = {SUPERVISOR: ["jr@contoso.com"]}

    result = plan(chain=(SUPERVISOR, "jr@contoso.com", SKIP_LEVEL), aliases=aliases)

    assert any("appears twice" in d for d in result.decisions)
    assert recipients(result)["supervisor"] == SUPERVISOR


# --- names written in a display name cannot silence the configured mailboxes ----------------


def test_mailboxes_named_only_in_a_display_name_are_still_told() -> None:
    # An outsider writes every mailbox and the supervisor into the display name of a forged From.
    named = " ".join(
        ("security@contoso.com", "hr-helpdesk@contoso.com", "investigations@contoso.com", SUPERVISOR)
    )
    result = plan(origin(f'"{named}" <x@evil.example>', auth_as="Anonymous"))

    assert recipients(result)["security"] == "security@contoso.com"
    assert recipients(result)["investigations"] == "investigations@contoso.com"
    assert recipients(result)["skip-level"] == SKIP_LEVEL  # a person named there still gets a stand-in
    assert SUPERVISOR not in told(result)
    assert any("is told all the same" in d for d in result.decisions)


def test_a_mailbox_named_by_an_earlier_report_of_the_case_is_still_told() -> None:
    result = plan(case_senders=frozenset({"security@contoso.com", "investigations@contoso.com"}))

    assert recipients(result)["security"] == "security@contoso.com"
    assert recipients(result)["investigations"] == "investigations@contoso.com"


def test_an_investigators_mailbox_that_sent_the_message_has_a_stand_in() -> None:
    result = plan(origin("investigations@contoso.com", auth_as="Anonymous"))

    assert "investigations@contoso.com" not in told(result)
    assert recipients(result)["internal-affairs"] == "internal.affairs@contoso.com"
    assert any("mailbox is the message's sender address" in d for d in result.decisions)


def test_without_other_investigators_the_fallback_stands_in_for_a_sending_investigators_mailbox() -> None:
    mailboxes = replace(MAILBOXES, internal_affairs=None)

    result = plan(origin("investigations@contoso.com", auth_as="Anonymous"), mailboxes=mailboxes)

    assert "investigations@contoso.com" not in told(result)
    assert recipients(result)["fallback"] == "hr-helpdesk@contoso.com"


def test_the_plan_names_the_mailbox_in_the_security_teams_place_for_escalations() -> None:
    named_only = origin('"security@contoso.com" <x@evil.example>')
    from_the_team = origin("avery.soc@contoso.com", auth_as="Internal")

    assert plan().security_stand_in == "security@contoso.com"
    assert plan(named_only).security_stand_in == "security@contoso.com"
    assert plan(from_the_team, security_team=frozenset({"avery.soc@contoso.com"})).security_stand_in == (
        "hr-helpdesk@contoso.com"
    )
    assert plan(mailboxes=replace(MAILBOXES, security=None)).security_stand_in == "hr-helpdesk@contoso.com"
    sent_by_security = origin("security@contoso.com", auth_as="Internal")
    assert plan(sent_by_security, mailboxes=replace(MAILBOXES, fallback=None)).security_stand_in == (
        "security@contoso.com"  # nobody else can stand in: see the next test
    )


def test_a_case_always_reaches_the_security_team_or_the_fallback_mailbox() -> None:
    # A routing re-check: From may list any number of addresses (Sender then says who sent it).
    listed = "security@contoso.com, hr-helpdesk@contoso.com, investigations@contoso.com, internal.affairs@contoso.com"
    many_authors = origin(f"{listed}, {SUPERVISOR}", sender="x@evil.example")
    security_and_fallback = origin("security@contoso.com", sender="hr-helpdesk@contoso.com")

    # Only the first From address counts as the message's own: the fallback stands in for security.
    assert recipients(plan(many_authors)) == {
        "reporter": REPORTER,
        "skip-level": SKIP_LEVEL,
        "investigations": "investigations@contoso.com",
        "fallback": "hr-helpdesk@contoso.com",
    }
    result = plan(security_and_fallback)
    assert recipients(result)["security"] == "security@contoso.com"
    assert any("told all the same, because every case must reach the security team" in d for d in result.decisions)


def test_checking_against_an_index_of_ids_agrees_with_checking_one_by_one() -> None:
    # Routing checks every earlier case sender against every claimed address through ids_of, so that a
    # message naming thousands of addresses costs linear time; the answers must stay the same.
    from addin_service.cases.routing import People

    people = People(
        {SUPERVISOR: {"j.reyes@contoso.com", "boss+hr@contoso.com"}, "security@contoso.com": {"soc@contoso.com"}}
    )
    candidates = [SUPERVISOR, "J.Reyes+x@contoso.com", "soc@contoso.com", "riley@example.net", "boss@contoso.com", ""]
    for count in range(len(candidates) + 1):
        index = people.ids_of(candidates[:count])
        for address in candidates:
            assert bool(people.ids(address) & index) == people.matches_any(address, candidates[:count]), address


def test_addresses_of_ours_the_directory_was_not_asked_about_keep_the_supervisor_out_as_a_precaution() -> None:
    # The directory is asked about a few claimed senders only; a supervisor's alias may be among the rest.
    context_plan = plan_notifications(
        RoutingContext(
            reporter=REPORTER,
            supervisor_chain=CHAIN,
            supervisor_source="directory",
            origin=origin("j0@contoso.com", auth_as="Internal"),
            mailboxes=MAILBOXES,
            not_looked_up=("morgan.lee3@contoso.com",),
        )
    )

    assert SUPERVISOR not in told(context_plan)
    assert recipients(context_plan)["skip-level"] == SKIP_LEVEL
    assert context_plan.conflict_note and "as a precaution" in context_plan.conflict_note
    assert any("were not looked up in the directory" in d for d in context_plan.decisions)
