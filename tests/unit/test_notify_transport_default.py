"""ADDIN_NOTIFY_TRANSPORT, left unset, follows ADDIN_EXCHANGE; set, it is always obeyed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from addin_service.db import Database
from addin_service.errors import ConfigError
from addin_service.mail.ews_sender import EwsSender
from addin_service.mail.graph_sender import GraphSender
from addin_service.notify.bootstrap import Notifications, build_notifications
from addin_service.notify.smtp import SmtpSender
from addin_service.settings import Settings
from tests.fakes.evidence import InMemoryEvidenceStore

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "66666666-7777-8888-9999-000000000000"
EWS = {
    "ADDIN_EWS_URL": "https://mail.contoso.com/EWS/Exchange.asmx",
    "ADDIN_EWS_USERNAME": "svc-report",
    "ADDIN_EWS_PASSWORD": "s3cret",
    "ADDIN_TENANT_ID": TENANT,
    "ADDIN_CLIENT_ID": CLIENT,
    "ADDIN_NOTIFY_FROM": "report-harassment@contoso.com",
}
GRAPH = {
    "ADDIN_EXCHANGE": "graph",
    "ADDIN_TENANT_ID": TENANT,
    "ADDIN_CLIENT_ID": CLIENT,
    "ADDIN_CLIENT_SECRET": "not-a-real-secret",
    "ADDIN_NOTIFY_FROM": "report-harassment@contoso.com",
}


def settings(tmp_path: Path, base: dict[str, str], **env: str) -> Settings:
    return Settings.from_env({**base, **{f"ADDIN_{k.upper()}": v for k, v in env.items()}}, cwd=tmp_path)


@pytest.fixture
def build() -> Iterator[list[Notifications]]:
    built: list[Notifications] = []
    yield built
    for notifications in built:
        notifications.close()
        notifications.database.dispose()


def notifications(built: list[Notifications], settings: Settings) -> Notifications:
    database = Database(settings.database_url)
    try:
        result = build_notifications(settings, database, InMemoryEvidenceStore())
    except BaseException:
        database.dispose()
        raise
    built.append(result)
    return result


def test_with_exchange_online_notifications_are_sent_through_graph_by_default(tmp_path: Path) -> None:
    assert settings(tmp_path, GRAPH).notify_transport == "graph"


def test_with_exchange_server_notifications_are_sent_through_ews_by_default(tmp_path: Path) -> None:
    assert settings(tmp_path, EWS).notify_transport == "ews"


def test_an_empty_transport_variable_follows_the_exchange_mode_too(tmp_path: Path) -> None:
    assert settings(tmp_path, GRAPH, notify_transport="").notify_transport == "graph"


@pytest.mark.parametrize(
    ("base", "transport"),
    [(GRAPH, "ews"), (GRAPH, "smtp"), (EWS, "graph"), (EWS, "smtp")],
)
def test_a_transport_that_is_set_is_kept_whatever_the_exchange_mode(
    tmp_path: Path, base: dict[str, str], transport: str
) -> None:
    extra = {"smtp_url": "smtp://relay.contoso.com:25"} if transport == "smtp" else {}
    chosen = settings(tmp_path, base, notify_transport=transport, client_secret="not-a-real-secret", **extra)
    assert chosen.notify_transport == transport


def test_graph_mode_with_a_sender_address_starts_and_sends_through_graph(
    tmp_path: Path, build: list[Notifications]
) -> None:
    built = notifications(build, settings(tmp_path, GRAPH))

    assert isinstance(built.sender, GraphSender)


def test_ews_mode_with_a_sender_address_still_sends_through_ews(tmp_path: Path, build: list[Notifications]) -> None:
    built = notifications(build, settings(tmp_path, EWS))

    assert isinstance(built.sender, EwsSender)


def test_graph_mode_keeps_an_explicit_smtp_transport(tmp_path: Path, build: list[Notifications]) -> None:
    chosen = settings(tmp_path, GRAPH, notify_transport="smtp", smtp_url="smtp://relay.contoso.com:25")

    built = notifications(build, chosen)

    assert isinstance(built.sender, SmtpSender)


def test_graph_mode_with_an_explicit_ews_transport_still_names_the_variable(
    tmp_path: Path, build: list[Notifications]
) -> None:
    chosen = settings(tmp_path, GRAPH, notify_transport="ews")

    with pytest.raises(ConfigError) as raised:
        notifications(build, chosen)

    assert raised.value.variable == "ADDIN_NOTIFY_TRANSPORT"
