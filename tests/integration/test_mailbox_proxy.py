"""Both mailbox adapters reach Exchange through the proxy the environment names, as deployments
behind an outbound proxy need. The adapters read the environment once, when they are built (so
that requests need not scan it on every request): later changes do not apply."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from addin_service.demo.ews_server import EwsServer
from addin_service.demo.graph_server import GraphServer
from addin_service.mail.ews import EwsMailbox
from addin_service.mail.graph import GraphMailbox
from addin_service.mail.ports import ItemRef
from tests.fakes.ews import FAST_RETRY, REPORTER, MemorySink, ews_server, ews_settings
from tests.fakes.graph import BytesSink, DoubleTokens, graph_settings, nasty_mime

__all__ = ["ews_server"]  # fixture used below

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "host", "content-length"}
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


class _ForwardingHandler(BaseHTTPRequestHandler):
    """A plain HTTP forward proxy: one request per connection, recorded, passed on unchanged."""

    protocol_version = "HTTP/1.0"
    server: _RecordingProxy

    def _forward(self) -> None:
        target = urlsplit(self.path)  # absolute-form, as clients send to a proxy
        self.server.seen.append(f"{self.command} {target.path}")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {name: value for name, value in self.headers.items() if name.lower() not in _HOP_BY_HOP}
        upstream = http.client.HTTPConnection(target.netloc, timeout=10)
        try:
            path = target.path + (f"?{target.query}" if target.query else "")
            upstream.request(self.command, path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
        finally:
            upstream.close()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _forward

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class _RecordingProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ForwardingHandler)
        self.seen: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[_RecordingProxy]:
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    server = _RecordingProxy()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_ews_capture_goes_through_the_proxy_named_when_the_adapter_was_built(
    ews_server: EwsServer, proxy: _RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    mime = b"Subject: through the proxy\r\n\r\nhello\r\n"
    item_id = ews_server.add_message(REPORTER, mime)
    monkeypatch.setenv("http_proxy", proxy.url)
    mailbox = EwsMailbox(ews_settings(ews_server), retry=FAST_RETRY)
    monkeypatch.delenv("http_proxy")  # read at construction: this no longer matters
    sink = MemorySink()

    mailbox.capture(ItemRef(item_id, REPORTER, REPORTER), sink)
    mailbox.close()

    assert sink.data == mime
    assert proxy.seen == ["POST /EWS/Exchange.asmx"]


def test_no_proxy_exempts_the_ews_host(
    ews_server: EwsServer, proxy: _RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    item_id = ews_server.add_message(REPORTER, b"Subject: direct\r\n\r\nhello\r\n")
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    mailbox = EwsMailbox(ews_settings(ews_server), retry=FAST_RETRY)

    mailbox.capture(ItemRef(item_id, REPORTER, REPORTER), MemorySink())
    mailbox.close()

    assert proxy.seen == []


def test_graph_capture_goes_through_the_proxy_named_when_the_adapter_was_built(
    proxy: _RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    with GraphServer() as server:
        server.state.add_user(REPORTER, "Alex Wilber")
        item = server.state.add_message(REPORTER, nasty_mime())
        monkeypatch.setenv("http_proxy", proxy.url)
        mailbox = GraphMailbox(graph_settings(server.graph_url), DoubleTokens(server))
        monkeypatch.delenv("http_proxy")
        sink = BytesSink()

        mailbox.capture(ItemRef(item.ews_id, REPORTER, REPORTER, user_token=REPORTER), sink)
        mailbox.close()

    assert bytes(sink.data) == nasty_mime()
    prefix = f"/v1.0/users/{REPORTER}"
    assert sorted(proxy.seen) == sorted(
        [
            f"POST {prefix}/translateExchangeIds",
            f"GET {prefix}/messages/{item.rest_id}",
            f"GET {prefix}/messages/{item.rest_id}/$value",
        ]
    )
