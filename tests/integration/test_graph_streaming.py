"""A 100 MB message crosses real HTTP from the Graph double into the sink with flat memory."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psutil
import pytest

from addin_service.demo.graph_server import GraphServer
from addin_service.mail.graph import GraphMailbox
from addin_service.mail.ports import ItemRef
from tests.fakes.graph import DoubleTokens, HashingSink, big_mime, big_mime_sha256, graph_settings

ALEX = "alex@contoso.com"
SIZE = 100 * 1024 * 1024
MAX_GROWTH = 64 * 1024 * 1024


class PeakRss:
    """Samples this process's resident memory in the background; ``growth`` is peak minus start."""

    def __init__(self, interval: float = 0.005) -> None:
        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.start = int(self._process.memory_info().rss)
        self.peak = self.start
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, int(self._process.memory_info().rss))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, int(self._process.memory_info().rss))

    @property
    def growth(self) -> int:
        return self.peak - self.start


@pytest.fixture
def server() -> Iterator[GraphServer]:
    with GraphServer() as running:
        running.state.add_user(ALEX, "Alex Wilber")
        yield running


def test_a_100_mb_message_streams_into_the_sink_with_flat_memory(server: GraphServer) -> None:
    item = server.state.add_message(ALEX, chunks=big_mime(SIZE), size=SIZE)
    expected = big_mime_sha256(SIZE)
    box = GraphMailbox(graph_settings(server.graph_url), DoubleTokens(server))
    sink = HashingSink()

    with PeakRss() as memory:
        captured = box.capture(ItemRef(item.ews_id, ALEX, ALEX, user_token=ALEX), sink)

    assert (sink.size, sink.sha256) == (SIZE, expected)
    assert sink.largest_write <= 64 * 1024
    assert captured.internet_message_id == "<big-1@evil.example>"
    assert memory.growth <= MAX_GROWTH, f"resident memory grew by {memory.growth / 2**20:.1f} MiB"
