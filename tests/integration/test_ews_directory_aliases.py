"""A supervisor with more addresses than ResolveNames shows (three per contact, EmailAddress1..3):
EwsDirectory against the EWS double over real HTTP, and a report filed through the real service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from addin_service.db import Database
from addin_service.demo.ews_server import EwsServer
from addin_service.mail.ews_directory import EwsDirectory
from addin_service.notify.models import OutboxRow
from tests.fakes.ews import ews_server, ews_settings  # noqa: F401 - the fixture
from tests.fakes.smtp import INTERNAL_AFFAIRS, SECURITY, SmtpServer, notifying_stack
from tests.fakes.stack import REPORTER, Stack

MORGAN = "morgan@contoso.com"
SAM = "sam@contoso.com"
ALIASES = ["morgan.lee1@contoso.com", "morgan.lee2@contoso.com", "morgan.lee3@contoso.com"]


@pytest.fixture
def directory(ews_server: EwsServer) -> Iterator[EwsDirectory]:  # noqa: F811 - the imported fixture
    ews_server.add_person(REPORTER, "Alex Wilber", manager=MORGAN)
    ews_server.add_person(MORGAN, "Morgan Lee", manager=SAM, aliases=ALIASES)
    ews_server.add_person(SAM, "Sam Okafor")
    made = EwsDirectory(ews_settings(ews_server))
    yield made
    made.close()


def test_a_third_alias_finds_the_supervisor(directory: EwsDirectory) -> None:
    found = directory.person("Morgan.Lee3@contoso.com")

    assert found is not None and found.address == MORGAN
    assert "morgan.lee3@contoso.com" in found.aliases


def test_every_alias_finds_the_same_person(directory: EwsDirectory) -> None:
    found = [directory.person(address) for address in (MORGAN, *ALIASES)]

    assert {p.address if p is not None else None for p in found} == {MORGAN}


def test_an_address_nobody_has_is_still_nobody(directory: EwsDirectory) -> None:
    assert directory.person("morgan.lee4@contoso.com") is None


def test_the_chain_is_unchanged(directory: EwsDirectory) -> None:
    assert [p.address for p in directory.manager_chain(REPORTER)] == [MORGAN, SAM]


# -- filing -------------------------------------------------------------------------------------


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with SmtpServer() as smtp, notifying_stack(tmp_path, smtp, worker=False) as running:
        running.ews.add_person(REPORTER, "Alex Wilber", manager=MORGAN)
        running.ews.add_person(MORGAN, "Morgan Lee", manager=SAM, aliases=ALIASES)
        running.ews.add_person(SAM, "Sam Okafor")
        yield running


def told(stack: Stack) -> dict[str, str]:
    database: Database = stack.app.extensions["addin"].database
    with database.session(write=False) as session:
        return {row.role: row.recipient for row in session.scalars(select(OutboxRow).order_by(OutboxRow.id))}


def test_a_supervisor_writing_from_their_third_alias_is_not_told_but_the_next_level_is(stack: Stack) -> None:
    message = (
        "Received: from DM6PR11MB4123.contoso.com by BN6PR11MB1875.contoso.com with HTTPS; "
        "Tue, 25 Nov 2026 09:00:00 +0000\r\n"
        "X-MS-Exchange-Organization-AuthAs: Internal\r\n"
        f"From: Morgan <{ALIASES[2]}>\r\nTo: {REPORTER}\r\nSubject: About Friday\r\n"
        "Date: Tue, 25 Nov 2026 09:00:00 +0000\r\nMessage-ID: <third-alias@contoso.com>\r\n\r\n"
        "You will regret this.\r\n"
    ).encode()

    response = stack.report(stack.add_message(message))

    assert response.status_code == 201, response.get_json()
    assert told(stack) == {
        "reporter": REPORTER,
        "skip-level": SAM,
        "internal-affairs": INTERNAL_AFFAIRS,
        "security": SECURITY,
    }


@pytest.mark.parametrize(
    "decoys",
    [
        # The directory is asked about a few claimed senders only: ours come first, so outside
        # addresses written before the alias cannot use up the lookups.
        [f"decoy{n}@example.net" for n in range(8)],
        # A routing re-check: six addresses of ours that nobody holds used up the lookups, and the
        # supervisor writing from an alias EWS cannot show was told. Now they are skipped as a precaution.
        [f"j{n}@contoso.com" for n in range(6)],
    ],
    ids=["outside", "ours"],
)
def test_addresses_written_before_the_supervisors_alias_do_not_get_the_supervisor_told(
    stack: Stack, decoys: list[str]
) -> None:
    message = (
        "Received: from mx.example.net (192.0.2.7) by mail.contoso.com; Tue, 25 Nov 2026 09:00:00 +0000\r\n"
        "X-MS-Exchange-Organization-AuthAs: Anonymous\r\n"
        f"From: {', '.join(decoys)}, Morgan <{ALIASES[2]}>\r\nTo: {REPORTER}\r\nSubject: About Friday\r\n"
        "Date: Tue, 25 Nov 2026 09:00:00 +0000\r\nMessage-ID: <decoys@example.net>\r\n\r\n"
        "You will regret this.\r\n"
    ).encode()

    response = stack.report(stack.add_message(message))

    assert response.status_code == 201, response.get_json()
    assert MORGAN not in told(stack).values()
    assert told(stack)["skip-level"] == SAM
