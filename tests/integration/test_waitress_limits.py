"""Request bodies under waitress, the server ``run`` and ``demo`` use: it reads a whole body (spooling it
to disk) before the app can refuse it, so it must refuse large ones itself, before reading them."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from addin_service.app import MAX_REQUEST_BYTES
from addin_service.cli import WAITRESS_MAX_BODY_BYTES
from tests.fakes.commands import loopback_session
from tests.fakes.stack import running_stack
from tests.fakes.waitress import served_by_waitress

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_stack(tmp_path_factory.mktemp("limits")) as stack, served_by_waitress(stack.app) as url:
        yield url


def raw_exchange(base: str, head: bytes, body: bytes = b"") -> bytes:
    """Send ``head`` (and ``body``) and read until the server answers and closes."""
    where = urlsplit(base)
    with socket.create_connection((where.hostname, where.port), timeout=10) as conn:
        conn.sendall(head + body)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def test_a_huge_declared_body_is_refused_before_any_of_it_is_read(base: str) -> None:
    """Nothing of the body is sent: waitress answers on the headers alone, and closes."""
    head = (
        b"POST /api/v1/reports HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 943718400\r\n\r\n"
    )

    answer = raw_exchange(base, head)

    assert answer.startswith(b"HTTP/1.1 413 ")


def test_a_chunked_body_over_the_limit_is_refused(base: str) -> None:
    chunk = b"x" * 65536
    body = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * (WAITRESS_MAX_BODY_BYTES // len(chunk) + 2) + b"0\r\n\r\n"
    head = (
        b"POST /api/v1/reports HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )

    try:
        answer = raw_exchange(base, head, body)
    except ConnectionResetError:  # refused and closed while the rest was still being sent
        return
    assert answer.startswith(b"HTTP/1.1 413 ")


@pytest.mark.parametrize("size", [MAX_REQUEST_BYTES + 1, WAITRESS_MAX_BODY_BYTES])
def test_a_body_up_to_the_servers_limit_still_reaches_the_app_for_its_problem_answer(base: str, size: int) -> None:
    with loopback_session() as session:
        answer = session.post(
            f"{base}/api/v1/reports",
            data=b"{" + b" " * (size - 2) + b"}",
            headers={"Content-Type": "application/json"},
            timeout=30,
        )

    assert answer.status_code == 401  # without a token: the app refuses it before reading the body
    assert answer.headers["Content-Type"] == "application/problem+json"


def test_an_ordinary_request_is_served(base: str) -> None:
    with loopback_session() as session:
        assert session.get(f"{base}/healthz", timeout=30).status_code == 200
