"""POST /api/v1/reports with ADDIN_EXCHANGE=graph: the same behaviour as EWS, through Microsoft Graph.

Real msal exchanges the reporter's token on behalf of them at the Entra double (TLS); the Graph
double accepts only tokens that issuer signed for Graph, and lets a delegated user read only what
they may read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from addin_service.app import build_app
from addin_service.bootstrap import build_container
from addin_service.demo.graph_server import GraphServer, throttled
from addin_service.demo.oidc import OidcIssuer
from addin_service.settings import Settings
from tests.fakes.graph import entra_for_graph

ALEX = "alex@contoso.com"
ROBIN = "robin@contoso.com"
MIME = b"From: Sam <sam@fabrikam.example>\r\nTo: alex@contoso.com\r\nSubject: hi\r\n\r\nbody \x00\xff\r\n.\n"


class GraphStack:
    def __init__(self, graph: GraphServer, issuer: OidcIssuer, client: FlaskClient, settings: Settings) -> None:
        self.graph, self.issuer, self.client, self.settings = graph, issuer, client, settings

    def report(self, item_id: str, upn: str = ALEX, **body: object) -> object:
        return self.client.post(
            "/api/v1/reports",
            json={"item_id": item_id, "category": "stalking", **body},
            headers={"Authorization": f"Bearer {self.issuer.mint(upn)}"},
        )


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphStack]:
    with GraphServer() as graph:
        graph.state.add_user(ALEX, "Alex Wilber")
        graph.state.add_user(ROBIN, "Robin Kline")
        with entra_for_graph(graph, monkeypatch) as issuer:
            settings = Settings.from_env(
                {
                    "ADDIN_EXCHANGE": "graph",
                    "ADDIN_GRAPH_URL": graph.graph_url,
                    "ADDIN_GRAPH_AUTH": "obo",
                    "ADDIN_TENANT_ID": issuer.tenant_id,
                    "ADDIN_CLIENT_ID": issuer.client_id,
                    "ADDIN_CLIENT_SECRET": issuer.client_secret,
                    "ADDIN_AUTHORITY": issuer.authority,
                    "ADDIN_EXCHANGE_MAX_WAIT": "2",
                    "ADDIN_DATABASE_URL": f"sqlite:///{tmp_path / 'addin.db'}",
                    "ADDIN_EVIDENCE_URL": f"file://{tmp_path / 'evidence'}",
                },
                cwd=tmp_path,
            )
            app = build_app(container=build_container(settings))
            try:
                yield GraphStack(graph, issuer, app.test_client(), settings)
            finally:
                app.extensions["addin"].close()


def test_a_report_is_filed_byte_for_byte_through_graph(stack: GraphStack) -> None:
    item = stack.graph.state.add_message(ALEX, MIME)
    response = stack.report(item.ews_id)
    assert response.status_code == 201  # type: ignore[attr-defined]
    body = response.get_json()  # type: ignore[attr-defined]
    package = stack.settings.evidence_path / body["case_id"] / body["report_id"]  # type: ignore[operator]
    assert (package / "message.eml").read_bytes() == MIME
    meta = json.loads((package / "metadata.json").read_text())
    assert meta["capture"]["adapter"] == "graph"
    assert meta["capture"]["mime_source"] == "graph-value"


def test_the_reporter_token_is_exchanged_on_behalf_of_them(stack: GraphStack) -> None:
    item = stack.graph.state.add_message(ALEX, MIME)
    stack.report(item.ews_id)
    assert [g.subject for g in stack.issuer.grants if g.grant_type == "on_behalf_of"] == [ALEX]


def test_another_users_mailbox_is_a_403(stack: GraphStack) -> None:
    item = stack.graph.state.add_message(ROBIN, MIME)
    assert stack.report(item.ews_id, mailbox=ROBIN).status_code == 403  # type: ignore[attr-defined]


def test_another_users_message_is_not_in_your_mailbox(stack: GraphStack) -> None:
    # Graph answers 404 for an id that is not in the named mailbox; it does not say whose it is.
    item = stack.graph.state.add_message(ROBIN, MIME)
    assert stack.report(item.ews_id).status_code == 404  # type: ignore[attr-defined]


def test_a_missing_message_is_a_404(stack: GraphStack) -> None:
    item = stack.graph.state.add_message(ALEX, MIME)
    missing = item.ews_id[:-8] + ("AAAAAAA=" if not item.ews_id.endswith("AAAAAAA=") else "BBBBBBB=")
    assert stack.report(missing).status_code == 404  # type: ignore[attr-defined]


def test_graph_throttling_that_does_not_stop_is_a_503_with_retry_after(stack: GraphStack) -> None:
    item = stack.graph.state.add_message(ALEX, MIME)
    stack.graph.faults.add(throttled(1), times=None)
    response = stack.report(item.ews_id)
    assert response.status_code == 503  # type: ignore[attr-defined]
    assert int(response.headers["Retry-After"]) >= 1  # type: ignore[attr-defined]
