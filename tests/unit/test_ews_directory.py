"""EwsDirectory's reading of ResolveNames answers, against a fake that answers as Exchange documents:
``smtp:<text>`` matches the start of every SMTP proxy address, and a contact shows at most three
addresses (EmailAddress1..3). The EWS double over HTTP is in tests/integration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exchangelib.errors import ErrorNameResolutionNoResults
from exchangelib.indexed_properties import EmailAddress
from exchangelib.items import Contact
from exchangelib.properties import Mailbox

from addin_service.mail.ews_directory import EwsDirectory
from tests.fakes.ews import ews_settings

MORGAN = "morgan@contoso.com"
SAM = "sam@contoso.com"


@dataclass(frozen=True)
class Entry:
    """Someone in Active Directory: every proxy address, in the order Exchange lists them."""

    address: str
    name: str
    aliases: tuple[str, ...] = ()
    others: tuple[str, ...] = ()  # proxy addresses of other types (SIP:, X500:), listed first
    manager: str | None = None

    def proxies(self) -> list[str]:
        return [*self.others, f"SMTP:{self.address}", *(f"smtp:{alias}" for alias in self.aliases)]


class ResolveNamesAsDocumented:
    """The part of the EWS protocol EwsDirectory uses, answering like Exchange (see the module)."""

    def __init__(self, *people: Entry) -> None:
        self.people = people
        self.asked: list[str] = []

    def resolve_names(self, entries: list[str], **_options: Any) -> list[Any]:
        answers: list[Any] = []
        for text in entries:
            self.asked.append(text)
            wanted = text.lower()
            found = [p for p in self.people if any(x.lower().startswith(wanted) for x in p.proxies())]
            if not found:
                answers.append(ErrorNameResolutionNoResults("No results were found."))
            answers.extend((self._mailbox(p), self._contact(p)) for p in found)
        return answers

    def _mailbox(self, person: Entry) -> Mailbox:
        return Mailbox(name=person.name, email_address=person.address, routing_type="SMTP", mailbox_type="Mailbox")

    def _contact(self, person: Entry) -> Contact:
        shown = [EmailAddress(email=value, label=f"EmailAddress{i}") for i, value in enumerate(person.proxies(), 1)]
        boss = next((p for p in self.people if p.address == person.manager), None)
        return Contact(
            display_name=person.name,
            email_addresses=shown[:3],
            manager_mailbox=self._mailbox(boss) if boss is not None else None,
        )


class Connection:
    """Stands in for EwsConnection: the protocol, and a version that is already known."""

    def __init__(self, protocol: ResolveNamesAsDocumented) -> None:
        self.protocol = protocol

    def version(self) -> None:
        return None

    def close(self) -> None:
        pass


def directory(*people: Entry) -> EwsDirectory:
    connection: Any = Connection(ResolveNamesAsDocumented(*people))
    return EwsDirectory(ews_settings("http://127.0.0.1:9/EWS/Exchange.asmx"), connection=connection)


MORGAN_WITH_THREE_ALIASES = Entry(
    MORGAN, "Morgan Lee", aliases=("m1@contoso.com", "m2@contoso.com", "m3@contoso.com"), manager=SAM
)


def test_an_alias_the_contact_has_no_place_to_show_finds_its_owner() -> None:
    found = directory(MORGAN_WITH_THREE_ALIASES).person("m3@contoso.com")

    assert found is not None and found.address == MORGAN


def test_the_person_found_by_an_alias_they_could_not_show_has_it_among_their_aliases() -> None:
    found = directory(MORGAN_WITH_THREE_ALIASES).person("M3@Contoso.com")

    assert found is not None
    assert found.aliases == {"m1@contoso.com", "m2@contoso.com", "m3@contoso.com"}


def test_someone_with_every_address_shown_is_not_taken_for_a_longer_one_that_begins_like_theirs() -> None:
    """``smtp:bob@contoso.co`` finds bob@contoso.com: a look-alike domain is not Bob."""
    bob = Entry("bob@contoso.com", "Bob Kent", aliases=("robert@contoso.com",))

    assert directory(bob).person("bob@contoso.co") is None


def test_a_shown_address_that_begins_with_the_one_asked_about_explains_the_match() -> None:
    bob = Entry("robert@contoso.com", "Bob Kent", aliases=("bob@contoso.com.au", "rk@contoso.com", "bk@contoso.com"))

    assert directory(bob).person("bob@contoso.com") is None


def test_two_candidates_that_both_hide_addresses_are_not_guessed_between() -> None:
    first = Entry("dana@contoso.com", "Dana", aliases=("d1@contoso.com", "d2@contoso.com", "ops@contoso.com.au"))
    second = Entry("lee@contoso.com", "Lee", aliases=("l1@contoso.com", "l2@contoso.com", "ops@contoso.com"))

    assert directory(first, second).person("ops@contoso.com") is None


def test_among_several_candidates_the_one_showing_the_address_is_the_person() -> None:
    us = Entry("bob@contoso.com", "Bob Kent")
    au = Entry("bob@contoso.com.au", "Bob Lane")

    found = directory(au, us).person("bob@contoso.com")

    assert found is not None and found.display_name == "Bob Kent"


def test_sip_and_x500_addresses_are_not_mail_aliases() -> None:
    morgan = Entry(MORGAN, "Morgan Lee", others=("SIP:morgan@contoso.com", "X500:/o=Contoso/cn=Recipients/cn=morgan"))

    found = directory(morgan).person(MORGAN)

    assert found is not None and found.aliases == frozenset()


def test_an_alias_pushed_out_of_sight_by_sip_and_x500_addresses_still_finds_its_owner() -> None:
    morgan = Entry(
        MORGAN,
        "Morgan Lee",
        aliases=("m.lee@contoso.com",),
        others=("SIP:morgan@contoso.com", "X500:/o=Contoso/cn=Recipients/cn=morgan"),
    )

    found = directory(morgan).person("m.lee@contoso.com")

    assert found is not None and found.address == MORGAN


def test_the_chain_starts_only_from_an_address_the_reporter_s_contact_shows() -> None:
    """A wrong start would tell a stranger's manager: an address that is only possibly the
    reporter's gives no chain (routing then uses the mapping file or the fallback mailbox)."""
    sam = Entry(SAM, "Sam Okafor")

    assert directory(MORGAN_WITH_THREE_ALIASES, sam).manager_chain("m3@contoso.com") == []
    assert [p.address for p in directory(MORGAN_WITH_THREE_ALIASES, sam).manager_chain(MORGAN)] == [SAM]
