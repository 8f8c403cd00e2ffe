"""Routing policy: who must be told about a report, and who must never be.

Pure: the directory lookups, the origin analysis and the configuration are gathered by the
use case and passed in as a :class:`RoutingContext`; :func:`plan_notifications` returns a
:class:`RoutingPlan` whose ``decisions`` explain every choice (stored in the case and the
audit log).

The rules (DESIGN "Routing"), strongest first:

1. The claimed sender is never told. "Claimed sender" means every From and Sender address,
   any address written in their display names, and any address Exchange reported for the
   item (``also_claimed``), whether authenticated or not, compared case-insensitively by
   address, by every alias the directory knows, and without a ``+tag`` subaddress (Exchange
   delivers ``sam+hr@`` to ``sam@``). The senders named by earlier reports of the same case
   (``case_senders``) count as claimed senders of this report too: a supervisor named in one
   message of a case is not told about the case when the next message does not name them.
   The configured mailboxes (security, fallback, Internal Affairs, Office of Investigations)
   are the exception: only this message's own sender address (From, Sender, or Exchange's)
   keeps one from being told. Anyone can write any address into a display name, and a
   person named there has a stand-in above them; these mailboxes have none, so a name in a
   display name must not silence them.
2. The reporter's supervisor is told, unless they are the claimed sender; then the next
   manager up who is not the sender is told instead (``skip-level``), or the fallback
   mailbox when nobody in the chain is left. The text says whether the sender was
   authenticated. Whenever the sender is anywhere in the chain, that is a conflict of
   interest and the investigators are told too.
3. No supervisor known → the fallback mailbox.
4. Internal senders → Internal Affairs; external and spoofed senders → the Office of
   Investigations; each only when its mailbox is configured (otherwise recorded, and for a
   conflict of interest the other investigators or the fallback mailbox stand in).
5. The security mailbox is told of every case. If the claimed sender is the security mailbox
   (or one of its aliases, or a listed team member), the fallback mailbox is told in its place.
   In a campaign (one Message-ID reported by many people) the security team, Internal Affairs
   and the Office of Investigations are each told once, and once more if a later reporter feels
   unsafe (``campaign_told``); the investigators told because of a conflict of interest in this
   reporter's own chain are told for every such report.
6. The reporter always gets a receipt. "I feel unsafe" makes every notification urgent.
7. One address never receives two notifications for one report: roles are merged and the
   most specific role is kept (reporter, supervisor, skip-level, internal-affairs,
   investigations, security, fallback). The message itself is attached only for the
   security role (and the fallback mailbox standing in for it), never for a manager.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from addin_service.cases.origin import OriginAnalysis
from addin_service.cases.origin_headers import normalise_address

Role = Literal[
    "reporter",
    "supervisor",
    "skip-level",
    "internal-affairs",
    "investigations",
    "security",
    "fallback",
]
SupervisorSource = Literal["directory", "map", "fallback"]

# Most specific first: when one address holds several roles, the first one wins.
ROLE_ORDER: tuple[Role, ...] = (
    "reporter",
    "supervisor",
    "skip-level",
    "internal-affairs",
    "investigations",
    "security",
    "fallback",
)
# People in the reporter's management chain: never sent the message content.
MANAGER_ROLES: frozenset[str] = frozenset({"supervisor", "skip-level"})
# Configured mailboxes rather than people: excluded only by this report's own sender address (rule 1).
MAILBOX_ROLES: frozenset[str] = frozenset({"internal-affairs", "investigations", "security", "fallback"})
_INVESTIGATOR_ROLES: frozenset[str] = frozenset({"internal-affairs", "investigations"})
# Told once per campaign: what they learn is about the message, not about one reporter.
CAMPAIGN_ROLES: frozenset[str] = frozenset({"security", *_INVESTIGATOR_ROLES})
_SOURCE_TEXT = {
    "directory": "the directory",
    "map": "the supervisor mapping file",
    "fallback": "neither the directory nor the mapping file",
}


@dataclass(frozen=True)
class RoutingMailboxes:
    """The configured mailboxes (``ADDIN_*_MAILBOX``); None when not configured."""

    security: str | None = None
    fallback: str | None = None
    internal_affairs: str | None = None
    internal_affairs_name: str = "Internal Affairs"
    investigations: str | None = None
    investigations_name: str = "Office of Investigations"
    security_attach_message: bool = True


@dataclass(frozen=True)
class RoutingContext:
    """Everything the policy needs, already looked up.

    ``supervisor_chain`` is the manager, the manager's manager, ... (may be empty);
    ``aliases`` maps an address to that person's other addresses (proxy addresses such as
    ``smtp:j.doe@contoso.com`` are understood); ``security_team`` optionally lists members of
    the security team; ``also_claimed`` holds sender addresses Exchange reported for the item;
    ``campaign`` says the report can be grouped with others of the same Message-ID, and
    ``campaign_told`` which addresses have already been told about that campaign at this urgency;
    ``case_senders`` the senders of the case's earlier reports (``RoutingPlan.senders`` of each).
    """

    reporter: str
    supervisor_chain: tuple[str, ...]
    supervisor_source: SupervisorSource
    origin: OriginAnalysis
    mailboxes: RoutingMailboxes
    feels_unsafe: bool = False
    campaign: bool = False
    campaign_told: frozenset[str] = frozenset()
    aliases: Mapping[str, Collection[str]] = field(default_factory=dict)
    security_team: frozenset[str] = frozenset()
    also_claimed: frozenset[str] = frozenset()
    case_senders: frozenset[str] = frozenset()
    # Claimed senders in our domains the directory could not be asked about (the lookups a message
    # can make are bounded): any of them may be an alias of the supervisor.
    not_looked_up: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlannedNotification:
    """One message to queue. ``also_as`` lists roles merged into this one (same address);
    ``once_per_campaign`` marks a notice queued at most once per campaign and urgency."""

    role: Role
    to: str
    reason: str
    urgent: bool
    attach_message: bool
    also_as: tuple[Role, ...] = ()
    once_per_campaign: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "to": self.to,
            "reason": self.reason,
            "urgent": self.urgent,
            "attach_message": self.attach_message,
            "also_as": list(self.also_as),
            "once_per_campaign": self.once_per_campaign,
        }


@dataclass(frozen=True)
class RoutingPlan:
    """The notifications to queue and why. ``conflict_note`` (when set) is the sentence the
    notification templates show to whoever is told in place of a conflicted manager."""

    notifications: tuple[PlannedNotification, ...]
    decisions: tuple[str, ...]
    conflict_of_interest: bool
    sender_authenticated: bool | None
    conflict_note: str | None = None
    # Roles not told for this report because an earlier report of the same campaign told them.
    already_told: tuple[Role, ...] = ()
    # The claimed senders and every manager or security address matched to one: kept with the case
    # (``RoutingContext.case_senders`` of its next reports), and never shown the case.
    senders: tuple[str, ...] = ()
    # The mailbox in the security team's place for this report (the security mailbox, or the
    # fallback told instead of it): an unconfirmed manager notification is escalated there too.
    security_stand_in: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The full plan, addresses included, for the case record and the audit log."""
        return {
            "notifications": [n.to_dict() for n in self.notifications],
            "decisions": list(self.decisions),
            "conflict_of_interest": self.conflict_of_interest,
            "sender_authenticated": self.sender_authenticated,
            "conflict_note": self.conflict_note,
        }


class _Add(Protocol):
    def __call__(self, role: Role, to: str | None, reason: str, attach: bool = False) -> None: ...


def reporter_role_labels(internal_affairs_name: str, investigations_name: str) -> dict[Role, str]:
    """Who was told, by role, as the reporter reads it: in the task pane's receipt and in the emailed
    one alike. Never an address or a person's name; the investigators by their configured names."""
    return {
        "reporter": "You, with a copy of this receipt by email",
        "supervisor": "Your supervisor",
        "skip-level": "The next manager up (instead of your supervisor)",
        "internal-affairs": internal_affairs_name,
        "investigations": investigations_name,
        "security": "The security team (network administrator and incident response)",
        "fallback": "The team that handles these reports",
    }


def describe_for_reporter(plan: RoutingPlan) -> list[dict[str, str]]:
    """The plan as the reporter may see it in the API response: roles and status only.

    Addresses are left out on purpose: the reporter knows who their supervisor is, but the
    skip-level manager's and the investigators' addresses are not theirs to see, and a
    stolen token must not be a way to map an organisation's management chain.
    """
    return [{"role": n.role, "status": "queued"} for n in plan.notifications]


class People:
    """Who is who: two addresses are the same person when they share an alias group."""

    def __init__(self, aliases: Mapping[str, Collection[str]]) -> None:
        self._groups: dict[str, frozenset[str]] = {}
        for primary, others in aliases.items():
            members = {normalise_address(primary), *(normalise_address(o) for o in others)}
            members.discard("")
            merged = set(members)
            for member in members:
                merged |= self._groups.get(member, frozenset())
            group = frozenset(merged)
            for member in group:
                self._groups[member] = group

    def ids(self, address: str) -> frozenset[str]:
        normal = normalise_address(address)
        ids = self._groups.get(normal, frozenset({normal}))
        base = without_subaddress(normal)
        return ids if base == normal else ids | self._groups.get(base, frozenset({base}))

    def same(self, a: str, b: str) -> bool:
        return bool(self.ids(a) & self.ids(b))

    def matches_any(self, address: str, candidates: Iterable[str]) -> bool:
        mine = self.ids(address)
        return any(mine & self.ids(c) for c in candidates)

    def ids_of(self, addresses: Iterable[str]) -> frozenset[str]:
        """Every id of every one of ``addresses``: ``bool(people.ids(a) & people.ids_of(b))`` is
        ``people.matches_any(a, b)``, in time that does not grow with ``b`` (a message may name
        thousands of addresses, and each is checked against the others)."""
        return frozenset(i for address in addresses for i in self.ids(address))


def without_subaddress(address: str) -> str:
    """``sam.boss+hr@contoso.com`` → ``sam.boss@contoso.com``: the mailbox Exchange delivers it to."""
    local, at, domain = address.rpartition("@")
    base = local.split("+", 1)[0]
    return f"{base}@{domain}" if at and base and base != local else address


def _authentication_sentence(authenticated: bool | None) -> str:
    if authenticated is True:
        return (
            "The sender's identity was authenticated by our mail system, so the message very likely "
            "came from their mailbox."
        )
    if authenticated is False:
        return (
            "The sender's identity was NOT authenticated: the message may have been forged to look as "
            "if it came from them."
        )
    return "Whether the sender's identity was authenticated could not be determined from the message."


def plan_notifications(ctx: RoutingContext) -> RoutingPlan:
    """Decide who is told about this report, and record why.

    Pure and total: bad or missing inputs become decisions, never exceptions.
    """
    people = People(ctx.aliases)
    origin = ctx.origin
    mailboxes = ctx.mailboxes
    claimed = tuple(
        dict.fromkeys(
            a
            for a in (
                normalise_address(x)
                for x in (*origin.claimed_senders, *origin.display_name_addresses, *ctx.also_claimed)
            )
            if a
        )
    )
    # The message's own sender: its first From address, its Sender, and what Exchange reports. Not
    # the addresses written in a display name, nor a From header's further addresses (a From may
    # list any number of authors, and the Sender then says who sent it).
    own = (origin.from_address or "", origin.sender_address or "", *ctx.also_claimed)
    sent_as = tuple(dict.fromkeys(a for a in (normalise_address(x) for x in own) if a))
    claimed_ids = people.ids_of(claimed)
    earlier = tuple(
        a for a in sorted(normalise_address(x) for x in ctx.case_senders) if a and not people.ids(a) & claimed_ids
    )
    sender_ids = claimed_ids | people.ids_of(earlier)
    sent_as_ids = people.ids_of(sent_as)
    reporter = normalise_address(ctx.reporter)
    auth = _authentication_sentence(origin.authenticated)
    decisions: list[str] = []
    planned: list[PlannedNotification] = []

    def is_sender(address: str) -> bool:
        return bool(people.ids(address) & sender_ids)

    def sent_it(address: str) -> bool:
        """Whether this message's own sender address is ``address`` (rule 1's exception)."""
        return bool(people.ids(address) & sent_as_ids)

    def add(role: Role, to: str | None, reason: str, attach: bool = False) -> None:
        if to:
            planned.append(PlannedNotification(role, normalise_address(to), reason, ctx.feels_unsafe, attach))

    if claimed:
        decisions.append("Claimed sender address(es): " + ", ".join(claimed) + ".")
    else:
        decisions.append("The message names no sender address; nobody can be excluded as the sender.")
    if earlier:
        decisions.append(
            "Earlier reports in this case name " + ", ".join(earlier) + " as the sender; they are treated as "
            "senders of this report too, and are never told about the case."
        )

    # 1. The management chain. A "fallback" source means no supervisor was resolved: any
    #    addresses it carries are fallback mailboxes, told as such rather than as managers.
    chain = _clean_chain(ctx.supervisor_chain, reporter, people, decisions)
    source = _SOURCE_TEXT.get(ctx.supervisor_source, str(ctx.supervisor_source))
    stand_ins: list[str] = []
    if ctx.supervisor_source == "fallback":
        stand_ins, chain = chain, []
    if mailboxes.fallback:
        stand_ins.append(mailboxes.fallback)
    in_chain = [a for a in chain if is_sender(a)]
    conflict = bool(in_chain)
    conflict_note: str | None = None
    if not chain:
        decisions.append(
            f"No supervisor was found for the reporter ({source}); the fallback mailbox is told."
        )
        for address in stand_ins:
            add(
                "fallback",
                address,
                "No supervisor is known for the reporter, so this mailbox is told in the supervisor's place.",
            )
        if not stand_ins:
            decisions.append(
                "No fallback mailbox is configured (ADDIN_FALLBACK_MAILBOX): no manager is told."
            )
    elif not is_sender(chain[0]) and not ctx.not_looked_up:
        add("supervisor", chain[0], f"You are the reporter's supervisor (according to {source}).")
        decisions.append(f"The supervisor {chain[0]} is told (found in {source}).")
        if conflict:
            conflict_note = (
                f"The reported message appears to come from {', '.join(in_chain)}, who is higher in the "
                f"reporter's management chain. Do not escalate this case to them. {auth}"
            )
            decisions.append(
                "The claimed sender matches a higher manager in the reporter's chain "
                f"({', '.join(in_chain)}); "
                f"they are never told, and the investigators are told as well. {auth}"
            )
    else:
        supervisor = chain[0]
        above = next((a for a in chain[1:] if not is_sender(a)), None)
        skipped = [a for a in chain[1:] if is_sender(a)]
        if is_sender(supervisor):
            conflict_note = (
                f"The reporter's supervisor ({supervisor}) appears to be the sender of the reported message, "
                f"so they have not been told. {auth}"
            )
            decisions.append(
                f"The claimed sender matches the reporter's supervisor ({supervisor}): the supervisor is not "
                f"told. {auth}"
            )
        else:
            unknown = len(ctx.not_looked_up)
            conflict_note = (
                f"The reported message names {unknown} more of our addresses than the directory could be asked "
                f"about; any of them could be an alias of the reporter's supervisor ({supervisor}), so they "
                "have not been told, as a precaution."
            )
            decisions.append(
                f"{unknown} claimed sender address(es) in our domains were not looked up in the directory "
                f"({', '.join(ctx.not_looked_up[:5])}{', ...' if unknown > 5 else ''}): the supervisor "
                f"({supervisor}) could be one of them and is not told, as a precaution."
            )
        if skipped:
            decisions.append(
                "Higher manager(s) in the chain also match the claimed sender and are skipped too: "
                + ", ".join(skipped)
                + "."
            )
        if above:
            add(
                "skip-level",
                above,
                # Whether the sender was authenticated is in the conflict note every recipient reads.
                "You are told instead of the reporter's supervisor, who appears to be the sender."
                if is_sender(supervisor)
                else "You are told instead of the reporter's supervisor, as a precaution (see below).",
            )
            decisions.append(f"The next manager up who is not the sender, {above}, is told instead.")
        else:
            decisions.append("Nobody left in the management chain can be told; the fallback mailbox is told.")
            if mailboxes.fallback:
                add(
                    "fallback",
                    mailboxes.fallback,
                    "Everyone known in the reporter's management chain appears to be the sender, so this "
                    "mailbox is told in their place.",
                )
            else:
                decisions.append(
                    "No fallback mailbox is configured (ADDIN_FALLBACK_MAILBOX): no manager is told."
                )

    # 2. The investigators.
    _plan_investigators(ctx, conflict, in_chain, auth, add, decisions, sent_it)

    # 3. The security team.
    security_ids = (mailboxes.security, *ctx.security_team)
    security_stand_in: str | None = None
    if not mailboxes.security:
        decisions.append(
            "No security mailbox is configured (ADDIN_SECURITY_MAILBOX); the fallback mailbox is told in "
            "its place."
        )
        if mailboxes.fallback:
            add(
                "fallback",
                mailboxes.fallback,
                "No security mailbox is configured, so this mailbox is told in its place.",
                mailboxes.security_attach_message,
            )
            security_stand_in = mailboxes.fallback
    elif sent_it(mailboxes.security) or any(is_sender(a) for a in ctx.security_team if a):
        decisions.append(
            "The claimed sender matches the security mailbox, one of its aliases or a member of the security "
            "team: the security mailbox is not told, the fallback mailbox is told in its place."
        )
        if mailboxes.fallback:
            add(
                "fallback",
                mailboxes.fallback,
                "The sender appears to be in the security team, so this mailbox is told in the security "
                "mailbox's place. " + auth,
                mailboxes.security_attach_message,
            )
            security_stand_in = mailboxes.fallback
        else:
            decisions.append("No fallback mailbox is configured (ADDIN_FALLBACK_MAILBOX): no one stands in.")
    else:
        add(
            "security",
            mailboxes.security,
            "Every report goes to the security team (network administrator and incident response).",
            mailboxes.security_attach_message,
        )
        security_stand_in = mailboxes.security

    # 4. The reporter's receipt.
    if reporter:
        add("reporter", reporter, "Your receipt for the report you filed.")
    else:
        decisions.append("The reporter has no address; no receipt can be sent.")

    # 5. Safety net: whatever role, the claimed sender is never told (the reporter's own
    #    receipt excepted: someone may report a message forged in their own name).
    kept: list[PlannedNotification] = []
    for notification in planned:
        if notification.role == "reporter":
            kept.append(notification)
        elif notification.role in MAILBOX_ROLES and not sent_it(notification.to):
            if is_sender(notification.to):
                decisions.append(
                    f"{notification.to} is named in the message or the case, but is not the message's sender "
                    f"address: the {notification.role} mailbox is told all the same."
                )
            kept.append(notification)
        elif is_sender(notification.to):
            decisions.append(
                f"The {notification.role} notification to {notification.to} was dropped: that address "
                "matches the claimed sender."
            )
        else:
            kept.append(notification)

    told_roles = {role for n in kept for role in (n.role, *n.also_as)}
    if mailboxes.security and not told_roles & {"security", "fallback"}:
        # A message can name both mailboxes as its own sender (From and Sender): a case must still
        # reach someone who can act on it, and the security team's mailbox is a team's, not a person's.
        decisions.append(
            "Neither the security mailbox nor the fallback mailbox could be told; the security mailbox is "
            "told all the same, because every case must reach the security team."
        )
        kept.append(
            PlannedNotification(
                "security",
                normalise_address(mailboxes.security),
                "Every report goes to the security team (network administrator and incident response). This "
                "message names the security mailbox as its sender; it is most likely forged. " + auth,
                ctx.feels_unsafe,
                mailboxes.security_attach_message,
            )
        )
        security_stand_in = mailboxes.security

    if ctx.feels_unsafe:
        decisions.append("The reporter feels unsafe: every notification is marked urgent.")
    notifications = _merge_same_person(kept, people, decisions)
    already_told: tuple[Role, ...] = ()
    if ctx.campaign:
        notifications, already_told = _once_per_campaign(notifications, ctx, conflict, people, decisions)
    matched = (a for a in (*chain, *security_ids) if a and is_sender(a))
    # Every address the directory knows for a claimed sender: someone outside this reporter's chain
    # written to by an alias may be in the chain of the case's next reporter, told by primary address.
    known_as = (a for address in claimed for a in sorted(people.ids(address)))
    return RoutingPlan(
        notifications=notifications,
        decisions=tuple(decisions),
        conflict_of_interest=conflict,
        sender_authenticated=origin.authenticated,
        conflict_note=conflict_note,
        already_told=already_told,
        senders=tuple(dict.fromkeys((*claimed, *known_as, *(normalise_address(a) for a in matched)))),
        security_stand_in=normalise_address(security_stand_in) if security_stand_in else None,
    )


def _clean_chain(chain: Iterable[str], reporter: str, people: People, decisions: list[str]) -> list[str]:
    """The chain without blanks, repeats and the reporter themselves (directory loops)."""
    cleaned: list[str] = []
    for level, entry in enumerate(chain, start=1):
        address = normalise_address(entry or "")
        if not address:
            decisions.append(f"An empty entry at level {level} of the management chain was ignored.")
        elif reporter and people.same(address, reporter):
            decisions.append(
                f"The management chain lists the reporter at level {level}; that entry was ignored."
            )
        elif any(people.same(address, seen) for seen in cleaned):
            decisions.append(f"{address} appears twice in the management chain; the repeat was ignored.")
        else:
            cleaned.append(address)
    return cleaned


def _plan_investigators(
    ctx: RoutingContext,
    conflict: bool,
    in_chain: list[str],
    auth: str,
    add: _Add,
    decisions: list[str],
    sent_it: Callable[[str], bool],
) -> None:
    mailboxes = ctx.mailboxes
    origin = ctx.origin
    internal = origin.is_internal
    ia: tuple[Role, str | None, str, str] = (
        "internal-affairs",
        mailboxes.internal_affairs,
        mailboxes.internal_affairs_name,
        "ADDIN_INTERNAL_AFFAIRS_MAILBOX",
    )
    oi: tuple[Role, str | None, str, str] = (
        "investigations",
        mailboxes.investigations,
        mailboxes.investigations_name,
        "ADDIN_INVESTIGATIONS_MAILBOX",
    )
    primary, other = (ia, oi) if internal else (oi, ia)
    role, mailbox, name, variable = primary
    if origin.verdict == "spoofed-internal":
        kind = "an outsider pretending to be an internal sender (spoofed)"
    elif internal:
        kind = "inside the organisation"
    else:
        kind = "outside the organisation"
    reason = f"The sender appears to be {kind}; {name} handles such threats."
    if conflict:
        reason += (
            f" The claimed sender ({', '.join(in_chain)}) is in the reporter's management chain, so the "
            "usual escalation path cannot be trusted."
        )
    if mailbox and not sent_it(mailbox):
        add(role, mailbox, reason)
        decisions.append(f"{name} is told because the sender appears to be {kind}.")
        return
    if mailbox:
        # Its own mailbox sent the message: the case must still reach investigators.
        missing, why = f"{name}'s mailbox is the message's sender address", "it appears to be the sender"
    else:
        missing, why = f"no mailbox is configured ({variable})", "it has no mailbox configured"
    decisions.append(f"{name} was not told: {missing}.")
    if not conflict and not mailbox:
        return
    other_role, other_mailbox, other_name, _ = other
    if other_mailbox and not sent_it(other_mailbox):
        add(other_role, other_mailbox, reason + f" You are told in place of {name}, {why}.")
        decisions.append(f"{other_name} is told in place of {name}.")
    elif mailboxes.fallback and not sent_it(mailboxes.fallback):
        add("fallback", mailboxes.fallback, reason + " You are told because no investigators' mailbox can be.")
        decisions.append("The fallback mailbox is told in place of investigators.")
    else:
        decisions.append(
            "No investigator could be told about this conflict of interest: configure "
            "ADDIN_INTERNAL_AFFAIRS_MAILBOX, ADDIN_INVESTIGATIONS_MAILBOX or ADDIN_FALLBACK_MAILBOX."
        )


def _merge_same_person(
    planned: list[PlannedNotification], people: People, decisions: list[str]
) -> tuple[PlannedNotification, ...]:
    """One notification per person: the most specific role wins, the others are folded in."""
    ordered = sorted(planned, key=lambda n: ROLE_ORDER.index(n.role))
    merged: list[PlannedNotification] = []
    for notification in ordered:
        target = next((i for i, m in enumerate(merged) if people.same(m.to, notification.to)), None)
        if target is None:
            merged.append(notification)
            continue
        kept = merged[target]
        if notification.role == kept.role or notification.role in kept.also_as:
            merged[target] = replace(
                kept,
                attach_message=_attach(kept, notification),
                reason=_joined(kept.reason, notification.reason),
            )
            continue
        merged[target] = replace(
            kept,
            reason=_joined(kept.reason, notification.reason),
            attach_message=_attach(kept, notification),
            also_as=(*kept.also_as, notification.role),
        )
        decisions.append(
            f"{kept.to} would have been told as {kept.role} and as {notification.role}; one notification is "
            f"sent, as {kept.role}."
        )
    return tuple(merged)


def _once_per_campaign(
    notifications: tuple[PlannedNotification, ...],
    ctx: RoutingContext,
    conflict: bool,
    people: People,
    decisions: list[str],
) -> tuple[tuple[PlannedNotification, ...], tuple[Role, ...]]:
    """Mark the notices told once per campaign, and drop those already told (rule 5)."""
    kept: list[PlannedNotification] = []
    already: list[Role] = []
    for notification in notifications:
        roles = {notification.role, *notification.also_as}
        # A role about this reporter (a manager, a stand-in for one, investigators told because of
        # a conflict in this reporter's chain) makes the notice this report's own.
        if not roles <= CAMPAIGN_ROLES or (conflict and roles & _INVESTIGATOR_ROLES):
            kept.append(notification)
            continue
        if people.matches_any(notification.to, ctx.campaign_told):
            already.extend(r for r in ROLE_ORDER if r in roles)
            decisions.append(
                f"{notification.to} was already told about this campaign (as {notification.role}); it is not "
                "told again for this report."
            )
            continue
        kept.append(replace(notification, once_per_campaign=True))
    return tuple(kept), tuple(dict.fromkeys(already))


def _attach(a: PlannedNotification, b: PlannedNotification) -> bool:
    roles = {a.role, b.role, *a.also_as}
    if roles & MANAGER_ROLES or "reporter" in roles:
        return False
    return a.attach_message or b.attach_message


def _joined(first: str, second: str) -> str:
    return first if second in first else f"{first} {second}"
