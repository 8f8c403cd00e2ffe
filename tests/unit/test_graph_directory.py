"""GraphDirectory against recorded-shape payloads: managers, people and aliases."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import unquote

import pytest
import requests
import responses
from responses import matchers

from addin_service.errors import MailboxUnavailable
from addin_service.mail.graph_directory import MANAGER_SELECT, PERSON_SELECT, GraphDirectory
from addin_service.notify.ports import DirectoryUnavailable, Person
from tests.fakes.graph import FakeTime, StaticTokens, fixture, graph_settings

GRAPH = "https://graph.microsoft.com/v1.0"
ALEX = "alex@contoso.com"
SARA_ID = "7d54cb02-aaa3-4016-9f9c-a4b49422dd9b"
BIANCA_ID = "25caf940-6a9c-4a83-8f2a-1e5d1a2b3c4d"
SELECT = [matchers.query_param_matcher({"$select": MANAGER_SELECT})]


@pytest.fixture
def graph() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def directory(tokens: StaticTokens | None = None, **env: str) -> GraphDirectory:
    time = FakeTime()
    return GraphDirectory(graph_settings(GRAPH, **env), tokens or StaticTokens(), sleep=time.sleep, clock=time.clock)


def no_manager(graph: responses.RequestsMock, url: str) -> None:
    graph.add(responses.GET, url, status=404, json=fixture("error_manager_not_found.json"), match=SELECT)


def test_the_chain_follows_each_managers_manager_with_addresses_and_aliases(graph: responses.RequestsMock) -> None:
    graph.add(responses.GET, f"{GRAPH}/users/{ALEX}/manager", json=fixture("manager_level1.json"), match=SELECT)
    graph.add(
        responses.GET, f"{GRAPH}/users/{SARA_ID}/manager", json=fixture("manager_level2_contact.json"), match=SELECT
    )
    graph.add(responses.GET, f"{GRAPH}/contacts/{BIANCA_ID}/manager", json=fixture("manager_level3.json"), match=SELECT)
    tokens = StaticTokens()

    chain = directory(tokens).manager_chain(ALEX)

    assert chain == [
        Person(
            address="sara.davis@contoso.com",
            display_name="Sara Davis",
            aliases=frozenset({"sarad@contoso.onmicrosoft.com", "sara@contoso.com"}),
        ),
        Person(address="bianca.pisani@partner.example", display_name="Bianca Pisani", aliases=frozenset()),
        Person(address="pattif@contoso.com", display_name="Patti Fernandez", aliases=frozenset()),
    ]
    assert {c.request.headers["Authorization"] for c in graph.calls} == {"Bearer app-token-1"}
    assert tokens.delegated_calls == []


def test_the_chain_stops_at_the_requested_depth(graph: responses.RequestsMock) -> None:
    graph.add(responses.GET, f"{GRAPH}/users/{ALEX}/manager", json=fixture("manager_level1.json"), match=SELECT)

    chain = directory().manager_chain(ALEX, depth=1)

    assert [p.address for p in chain] == ["sara.davis@contoso.com"]
    assert len(graph.calls) == 1


def test_no_manager_is_an_empty_chain(graph: responses.RequestsMock) -> None:
    no_manager(graph, f"{GRAPH}/users/{ALEX}/manager")

    assert directory().manager_chain(ALEX) == []


def test_the_chain_ends_where_the_directory_has_no_further_manager(graph: responses.RequestsMock) -> None:
    graph.add(responses.GET, f"{GRAPH}/users/{ALEX}/manager", json=fixture("manager_level1.json"), match=SELECT)
    no_manager(graph, f"{GRAPH}/users/{SARA_ID}/manager")

    assert [p.address for p in directory().manager_chain(ALEX)] == ["sara.davis@contoso.com"]


def test_a_loop_in_the_directory_ends_the_chain(graph: responses.RequestsMock) -> None:
    graph.add(responses.GET, f"{GRAPH}/users/{ALEX}/manager", json=fixture("manager_level1.json"), match=SELECT)
    graph.add(responses.GET, f"{GRAPH}/users/{SARA_ID}/manager", json=fixture("manager_level1.json"), match=SELECT)

    assert [p.address for p in directory().manager_chain(ALEX, depth=5)] == ["sara.davis@contoso.com"]


def test_a_manager_without_a_mailbox_ends_the_chain_rather_than_be_mailed_at_their_sign_in_name(
    graph: responses.RequestsMock,
) -> None:
    """Graph accepts mail to a user with no mailbox and it bounces later: the notification would look
    delivered. With no manager, the fallback mailbox is told instead."""
    unlicensed = {**fixture("manager_level1.json"), "mail": None, "proxyAddresses": []}
    graph.add(responses.GET, f"{GRAPH}/users/{ALEX}/manager", json=unlicensed, match=SELECT)

    assert directory().manager_chain(ALEX) == []


def test_a_manager_known_by_a_primary_proxy_address_only_is_kept(graph: responses.RequestsMock) -> None:
    proxied = {**fixture("manager_level1.json"), "mail": None, "proxyAddresses": ["SMTP:sara.davis@contoso.com"]}
    graph.add(responses.GET, f"{GRAPH}/users/{ALEX}/manager", json=proxied, match=SELECT)

    assert [p.address for p in directory().manager_chain(ALEX, depth=1)] == ["sara.davis@contoso.com"]


def test_a_person_is_found_by_any_of_their_addresses(graph: responses.RequestsMock) -> None:
    graph.add(responses.GET, f"{GRAPH}/users", json=fixture("users_by_alias.json"))

    person = directory().person("Sara@Contoso.com")

    assert person == Person(
        address="sara.davis@contoso.com",
        display_name="Sara Davis",
        aliases=frozenset({"sarad@contoso.onmicrosoft.com", "sara@contoso.com"}),
    )
    (call,) = graph.calls
    assert call.request.headers["ConsistencyLevel"] == "eventual"
    query = unquote((call.request.url or "").split("?", 1)[1])
    assert query == (
        "$filter=mail eq 'sara@contoso.com' or userPrincipalName eq 'sara@contoso.com' "
        "or proxyAddresses/any(p:p eq 'smtp:sara@contoso.com')"
        f"&$select={PERSON_SELECT}&$count=true"
    )


def test_quotes_in_an_address_cannot_break_out_of_the_filter(graph: responses.RequestsMock) -> None:
    graph.add(responses.GET, f"{GRAPH}/users", json=fixture("users_none.json"))

    directory().person("o'brien@contoso.com")

    query = unquote((graph.calls[0].request.url or "").split("?", 1)[1])
    assert "mail eq 'o''brien@contoso.com'" in query


def test_an_unknown_person_is_none(graph: responses.RequestsMock) -> None:
    graph.add(responses.GET, f"{GRAPH}/users", json=fixture("users_none.json"))

    assert directory().person("nobody@contoso.com") is None


def test_an_unavailable_graph_is_directory_unavailable(graph: responses.RequestsMock) -> None:
    graph.add(
        responses.GET, f"{GRAPH}/users/{ALEX}/manager", status=503, json=fixture("error_service_unavailable.json")
    )

    with pytest.raises(DirectoryUnavailable):
        directory(exchange_max_wait="2").manager_chain(ALEX)

    assert len(graph.calls) > 1


def test_a_missing_permission_is_directory_unavailable(graph: responses.RequestsMock) -> None:
    graph.add(responses.GET, f"{GRAPH}/users", status=403, json=fixture("error_access_denied.json"))

    with pytest.raises(DirectoryUnavailable):
        directory().person(ALEX)


def test_an_unreachable_graph_is_directory_unavailable(graph: responses.RequestsMock) -> None:
    graph.add(responses.GET, f"{GRAPH}/users", body=requests.ConnectionError("refused"))

    with pytest.raises(DirectoryUnavailable):
        directory(exchange_max_wait="1").person(ALEX)


def test_no_token_is_directory_unavailable(graph: responses.RequestsMock) -> None:
    tokens = StaticTokens(failure=MailboxUnavailable("token endpoint down"))

    with pytest.raises(DirectoryUnavailable):
        directory(tokens).manager_chain(ALEX)

    assert len(graph.calls) == 0


HYBRID_USER = {
    "displayName": "Morgan Lee",
    "mail": "Morgan.Lee@contoso.com",
    "userPrincipalName": "MLee@corp.contoso.com",
    "proxyAddresses": [
        "SMTP:Morgan.Lee@contoso.com",
        "smtp:m1@contoso.com",
        "smtp:m2@contoso.com",
        "smtp:m3@contoso.com",
        "SIP:morgan.lee@contoso.com",
        "X500:/o=ExchangeLabs/ou=Exchange Administrative Group/cn=Recipients/cn=mlee",
    ],
}


def test_a_sign_in_name_that_is_no_mail_address_is_among_the_person_s_aliases(graph: responses.RequestsMock) -> None:
    graph.add(responses.GET, f"{GRAPH}/users", json={"value": [HYBRID_USER]})

    person = directory().person("mlee@corp.contoso.com")

    assert person == Person(
        address="morgan.lee@contoso.com",
        display_name="Morgan Lee",
        aliases=frozenset({"mlee@corp.contoso.com", "m1@contoso.com", "m2@contoso.com", "m3@contoso.com"}),
    )


def test_a_manager_s_sign_in_name_is_among_their_aliases(graph: responses.RequestsMock) -> None:
    manager = {**HYBRID_USER, "id": SARA_ID, "@odata.type": "#microsoft.graph.user"}
    graph.add(responses.GET, f"{GRAPH}/users/{ALEX}/manager", json=manager, match=SELECT)

    [person] = directory().manager_chain(ALEX, depth=1)

    assert "mlee@corp.contoso.com" in person.aliases


def test_a_person_without_a_mailbox_is_known_by_their_sign_in_name_alone(graph: responses.RequestsMock) -> None:
    unlicensed = {"displayName": "Jo Park", "mail": None, "userPrincipalName": "JPark@contoso.com"}
    graph.add(responses.GET, f"{GRAPH}/users", json={"value": [unlicensed]})

    assert directory().person("jpark@contoso.com") == Person("jpark@contoso.com", "Jo Park", frozenset())


def test_a_third_smtp_alias_is_looked_up_among_the_proxy_addresses(graph: responses.RequestsMock) -> None:
    graph.add(responses.GET, f"{GRAPH}/users", json={"value": [HYBRID_USER]})

    person = directory().person("M3@Contoso.com")

    assert person is not None and person.address == "morgan.lee@contoso.com"
    query = unquote((graph.calls[0].request.url or "").split("?", 1)[1])
    assert "proxyAddresses/any(p:p eq 'smtp:m3@contoso.com')" in query
