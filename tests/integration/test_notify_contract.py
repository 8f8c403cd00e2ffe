"""One contract for the Directory and Sender ports, run against every implementation."""

from __future__ import annotations

from addin_service.notify.ports import Directory, OutgoingMessage
from tests.fakes.notify_arrangements import NOTIFY_FROM, SenderArrangement


def addresses(people: list) -> list[str]:  # type: ignore[type-arg]
    return [p.address for p in people]


def test_the_manager_chain_goes_up_level_by_level(any_directory: Directory) -> None:
    chain = any_directory.manager_chain("alex@contoso.com", depth=3)
    assert addresses(chain) == ["morgan@contoso.com", "sam@contoso.com", "ceo@contoso.com"]


def test_the_chain_stops_at_the_depth_asked(any_directory: Directory) -> None:
    assert addresses(any_directory.manager_chain("alex@contoso.com", depth=1)) == ["morgan@contoso.com"]


def test_someone_without_a_manager_has_an_empty_chain(any_directory: Directory) -> None:
    assert any_directory.manager_chain("ceo@contoso.com") == []


def test_a_person_is_found_by_an_alias(any_directory: Directory) -> None:
    person = any_directory.person("m.lee@contoso.com")
    assert person is not None
    assert person.address == "morgan@contoso.com"
    assert "m.lee@contoso.com" in person.aliases


def test_an_unknown_address_is_nobody(any_directory: Directory) -> None:
    assert any_directory.person("nobody@fabrikam.example") is None


def notification(message_id: str = "<R-CONTRACT.security.1@contoso.com>") -> OutgoingMessage:
    return OutgoingMessage(
        message_id=message_id,
        from_address=NOTIFY_FROM,
        to=("security@contoso.com",),
        subject="Harassment report HR-2026-7K3M9Q2X: external sender",
        text="Case HR-2026-7K3M9Q2X.",
        html="<p>Case <b>HR-2026-7K3M9Q2X</b>.</p>",
    )


def test_a_sent_notification_arrives_with_its_message_id(any_sender: SenderArrangement) -> None:
    any_sender.sender.send(notification())
    assert any_sender.delivered() == ["<R-CONTRACT.security.1@contoso.com>"]


def test_after_sending_the_transport_can_tell_it_was_sent(any_sender: SenderArrangement) -> None:
    message = notification()
    assert any_sender.sender.already_sent(message) is False
    any_sender.sender.send(message)
    assert any_sender.sender.already_sent(message) is any_sender.knows_sent_items


def test_another_message_is_not_mistaken_for_one_sent(any_sender: SenderArrangement) -> None:
    any_sender.sender.send(notification())
    assert any_sender.sender.already_sent(notification("<R-OTHER.security.1@contoso.com>")) is False
