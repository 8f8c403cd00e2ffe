"""Helpers for the Graph adapter tests: tokens for the Graph double, sinks, messages and settings.

* :class:`DoubleTokens` is a :class:`~addin_service.mail.graph_tokens.TokenSource` that asks the
  :class:`~addin_service.demo.graph_server.GraphServer` to issue tokens, so integration tests can
  run without msal (msal itself is exercised against the Entra double in ``test_graph_entra``).
* :class:`BytesSink` / :class:`HashingSink` are :class:`MimeSink` s with the store's size limit.
* :func:`nasty_mime` is a message that breaks naive handling; :func:`big_mime` generates a large
  one in chunks, deterministically, without holding it in memory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from addin_service.demo.graph_server import GraphServer, jwt_verifier
from addin_service.demo.oidc import OidcIssuer
from addin_service.demo.runner import GRAPH_APP_ROLES, GRAPH_DELEGATED_SCOPES
from addin_service.errors import MessageTooLarge
from addin_service.settings import Settings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "graph"
TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "535fb089-9ff3-47b6-9bfb-4f1264799865"
CLIENT_SECRET = "graph-test-secret-not-real"  # noqa: S105 - a test double's credential


def fixture(name: str) -> Any:
    """A recorded-shape Graph payload from ``tests/fixtures/graph`` (JSON parsed, else bytes)."""
    path = FIXTURES / name
    return json.loads(path.read_text("utf-8")) if name.endswith(".json") else path.read_bytes()


def graph_settings(graph_url: str = "https://graph.microsoft.com/v1.0", **env: str) -> Settings:
    """Settings for ``ADDIN_EXCHANGE=graph``, validated as in production."""
    values = {
        "ADDIN_EXCHANGE": "graph",
        "ADDIN_GRAPH_URL": graph_url,
        "ADDIN_TENANT_ID": TENANT_ID,
        "ADDIN_CLIENT_ID": CLIENT_ID,
        "ADDIN_CLIENT_SECRET": CLIENT_SECRET,
    }
    values.update({f"ADDIN_{k.upper()}": v for k, v in env.items()})
    return Settings.from_env(values, cwd=Path("/nonexistent-test-cwd"))


class DoubleTokens:
    """Tokens issued by the Graph double. The user assertion *is* the user's address here.

    Tokens are reused until forgotten, as a real cache would; calls are counted.
    """

    def __init__(self, server: GraphServer) -> None:
        self._server = server
        self._app: str | None = None
        self._delegated: dict[tuple[str, tuple[str, ...]], str] = {}
        self.app_calls = 0
        self.delegated_calls: list[tuple[str, tuple[str, ...]]] = []
        self.forgotten: list[str] = []

    def app_token(self) -> str:
        self.app_calls += 1
        if self._app is None:
            self._app = self._server.issue_token()
        return self._app

    def delegated_token(self, user_assertion: str, scopes: Sequence[str]) -> str:
        key = (user_assertion, tuple(scopes))
        self.delegated_calls.append(key)
        if key not in self._delegated:
            self._delegated[key] = self._server.issue_token(user=user_assertion, scopes=scopes)
        return self._delegated[key]

    def forget(self, access_token: str) -> None:
        self.forgotten.append(access_token)
        if self._app == access_token:
            self._app = None
        for key in [k for k, v in self._delegated.items() if v == access_token]:
            del self._delegated[key]


class BytesSink:
    """Keeps what it is given, up to ``limit`` bytes (then MessageTooLarge, like the store)."""

    def __init__(self, limit: int | None = None) -> None:
        self.data = bytearray()
        self.writes = 0
        self._limit = limit

    def write(self, data: bytes, /) -> int:
        if self._limit is not None and len(self.data) + len(data) > self._limit:
            raise MessageTooLarge(self._limit)
        self.data.extend(data)
        self.writes += 1
        return len(data)


class HashingSink:
    """Counts and hashes what it is given, keeping nothing (for very large messages)."""

    def __init__(self, limit: int | None = None) -> None:
        self._hash = hashlib.sha256()
        self.size = 0
        self.largest_write = 0
        self._limit = limit

    def write(self, data: bytes, /) -> int:
        if self._limit is not None and self.size + len(data) > self._limit:
            raise MessageTooLarge(self._limit)
        self._hash.update(data)
        self.size += len(data)
        self.largest_write = max(self.largest_write, len(data))
        return len(data)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


def nasty_mime() -> bytes:
    """A message that any re-encoding, normalisation or text decoding would change."""
    return (
        b"Received: from evil.example (203.0.113.7) by mx.contoso.com\r\n"
        b"\twith ESMTPS id 4711; Tue, 24 Nov 2026 23:59:59 +0000\r\n"
        b"From: =?utf-8?b?w4lsb2TDrWU=?= <eloise@evil.example>\r\n"
        b"To: alex@contoso.com\r\n"
        b"Subject: =?iso-8859-1?q?Menace_=E0_toi?=   \r\n"
        b"Message-ID: <nasty-1@evil.example>\r\n"
        b"X-Bare-LF: yes\n"
        b"X-Trailing-Space: value   \r\n"
        b"X-8bit: \xe9t\xe9 \xff\xfe raw\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="=_b"\r\n'
        b"\r\n"
        b"--=_b\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"\r\n"
        b"I know where you live.\r\n"
        b"\x00NUL inside\r\n"
        b"lone CR\rhere\r\n"
        b".\r\n"
        b"From the start of a line\r\n"
        b"\xf0\x9f\x98\xa0 \xc3(\r\n" + b"x" * 5000 + b"\r\n"
        b"--=_b\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: binary\r\n"
        b"\r\n" + bytes(range(256)) * 300 + b"\r\n--=_b--"
    )


BIG_HEADER = (
    b"From: flood@evil.example\r\nTo: alex@contoso.com\r\nSubject: big\r\n"
    b"Message-ID: <big-1@evil.example>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
)


def big_mime(size: int, *, piece: int = 256 * 1024) -> Callable[[], Iterator[bytes]]:
    """A factory of the chunks of a ``size``-byte message: headers, then pseudo-random hex."""

    def chunks() -> Iterator[bytes]:
        yield BIG_HEADER
        remaining = size - len(BIG_HEADER)
        counter = 0
        while remaining > 0:
            block = hashlib.sha256(counter.to_bytes(8, "big")).hexdigest().encode() * (piece // 64)
            block = block[: min(piece, remaining)]
            remaining -= len(block)
            counter += 1
            yield block

    return chunks


def big_mime_sha256(size: int) -> str:
    digest = hashlib.sha256()
    for chunk in big_mime(size)():
        digest.update(chunk)
    return digest.hexdigest()


class StaticTokens:
    """A TokenSource for unit tests: numbered tokens, renewed after ``forget``; calls recorded."""

    def __init__(self, *, failure: Exception | None = None) -> None:
        self.failure = failure
        self.generation = 1
        self.app_calls = 0
        self.delegated_calls: list[tuple[str, tuple[str, ...]]] = []
        self.forgotten: list[str] = []

    def app_token(self) -> str:
        self.app_calls += 1
        if self.failure is not None:
            raise self.failure
        return f"app-token-{self.generation}"

    def delegated_token(self, user_assertion: str, scopes: Sequence[str]) -> str:
        self.delegated_calls.append((user_assertion, tuple(scopes)))
        if self.failure is not None:
            raise self.failure
        return f"user-token-{self.generation}"

    def forget(self, access_token: str) -> None:
        self.forgotten.append(access_token)
        self.generation += 1


class FakeTime:
    """A clock that moves only when ``sleep`` is called; records the sleeps."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextmanager
def entra_for_graph(graph: GraphServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[OidcIssuer]:
    """An Entra double over TLS that grants this service's Graph permissions (as the demo's does),
    trusted through ``REQUESTS_CA_BUNDLE``, whose tokens ``graph`` then verifies."""
    resource = graph.root_url
    with OidcIssuer(
        tls=True,
        app_roles={resource: GRAPH_APP_ROLES},
        delegated_scopes={resource: GRAPH_DELEGATED_SCOPES},
    ) as running:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(running.ca_bundle_path))
        graph.verify_token = jwt_verifier(running.factory.jwks(), issuer=running.issuer, audience=resource)
        yield running
