"""Concurrent retries of one report, over real HTTP, against PostgreSQL: one report, one capture."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import requests

from addin_service.app import build_app
from addin_service.bootstrap import build_container
from addin_service.db.database import Database
from addin_service.demo.ews_server import EwsServer
from addin_service.demo.oidc import OidcIssuer
from tests.fakes.stack import REPORTER, serving, stack_settings

pytestmark = pytest.mark.postgres
MIME = b"From: x@fabrikam.example\r\nSubject: s\r\nMessage-ID: <c@fabrikam.example>\r\n\r\nbody\r\n"
THREADS = 12


def race(urls: list[str], token: str, item_id: str, key: str | None) -> list[requests.Response]:
    """``THREADS`` identical reports at once, spread over ``urls`` in turn."""
    barrier = threading.Barrier(THREADS)
    responses: list[requests.Response] = []
    lock = threading.Lock()

    def one(url: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        if key:
            headers["Idempotency-Key"] = key
        barrier.wait()
        response = requests.post(
            f"{url}/api/v1/reports", json={"item_id": item_id, "category": "other"}, headers=headers, timeout=60
        )
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=one, args=(urls[i % len(urls)],)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return responses


@pytest.mark.parametrize("key", ["same-key", None], ids=["idempotency-key", "same-item"])
def test_concurrent_retries_make_one_report(tmp_path: Path, empty_postgres_url: str, key: str | None) -> None:
    with EwsServer() as ews, OidcIssuer() as issuer:
        ews.add_mailbox(REPORTER)
        item = ews.add_message(REPORTER, MIME)
        settings = stack_settings(tmp_path, ews, issuer, ADDIN_DATABASE_URL=empty_postgres_url)
        database = Database(settings.database_url)
        database.upgrade()
        database.dispose()
        app = build_app(container=build_container(settings))
        try:
            with serving(app) as url:
                responses = race([url], issuer.mint(REPORTER), item, key)
        finally:
            app.extensions["addin"].close()
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] * (THREADS - 1) + [201]
        assert len({r.json()["report_id"] for r in responses}) == 1
        assert ews.count("GetItem") == 1
        assert len([p for p in (tmp_path / "evidence").glob("HR-*/R-*")]) == 1
