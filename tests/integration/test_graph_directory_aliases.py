"""GraphDirectory against the Graph double over real HTTP: a person with many SMTP aliases and a
sign-in name (userPrincipalName) that is none of their mail addresses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from addin_service.demo.graph_server import GraphServer
from addin_service.mail.graph_directory import GraphDirectory
from tests.fakes.graph import DoubleTokens, graph_settings

ALEX = "alex@contoso.com"
MORGAN = "morgan@contoso.com"
MORGAN_UPN = "mlee@corp.contoso.com"
ALIASES = ("morgan.lee1@contoso.com", "morgan.lee2@contoso.com", "morgan.lee3@contoso.com", "ml@contoso.net")


@pytest.fixture
def directory() -> Iterator[GraphDirectory]:
    with GraphServer() as graph:
        graph.state.add_user(MORGAN, "Morgan Lee", upn=MORGAN_UPN, aliases=ALIASES)
        graph.state.add_user(ALEX, "Alex Wilber", manager=MORGAN)
        yield GraphDirectory(graph_settings(graph.graph_url), DoubleTokens(graph))


def test_every_smtp_alias_finds_the_person_with_all_of_their_addresses(directory: GraphDirectory) -> None:
    found = [directory.person(address.upper()) for address in ALIASES]

    assert {p.address if p is not None else None for p in found} == {MORGAN}
    assert found[-1] is not None and set(ALIASES) <= found[-1].aliases


def test_the_sign_in_name_finds_the_person_and_is_among_their_aliases(directory: GraphDirectory) -> None:
    found = directory.person(MORGAN_UPN)

    assert found is not None and found.address == MORGAN
    assert MORGAN_UPN in found.aliases


def test_a_manager_s_sign_in_name_is_among_their_aliases(directory: GraphDirectory) -> None:
    [morgan] = directory.manager_chain(ALEX, depth=1)

    assert morgan.address == MORGAN
    assert morgan.aliases == {*ALIASES, MORGAN_UPN}
