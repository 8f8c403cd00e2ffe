"""EwsMailbox reads responses in large chunks and keeps memory flat for a 100 MB message."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3

from addin_service.demo.ews_server import EwsServer
from addin_service.mail.ews import EwsMailbox
from addin_service.mail.ews_connection import READ_CHUNK
from addin_service.mail.ports import ItemRef
from tests.fakes.ews import FAST_RETRY, REPORTER, MemorySink, ews_server, ews_settings

__all__ = ["ews_server"]  # fixture used below
ROOT = Path(__file__).resolve().parents[2]


class ReadLog:
    """Every ``iter_content`` call made while it is installed: the chunk size asked for, chunks read."""

    def __init__(self) -> None:
        self.calls: list[dict[str, int]] = []

    @property
    def sizes(self) -> set[int]:
        return {call["size"] for call in self.calls}

    @property
    def chunks(self) -> int:
        return sum(call["chunks"] for call in self.calls)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> ReadLog:
    log = ReadLog()
    original = requests.models.Response.iter_content

    def recording(self: requests.Response, chunk_size: int | None = 1, decode_unicode: bool = False) -> Iterator[Any]:
        call = {"size": chunk_size or 0, "chunks": 0}
        log.calls.append(call)
        for chunk in original(self, chunk_size, decode_unicode):
            call["chunks"] += 1
            yield chunk

    monkeypatch.setattr(requests.models.Response, "iter_content", recording)
    return log


@pytest.fixture
def socket_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int | None, int]]:
    """Every read of a response body off the connection: (size asked for, bytes got)."""
    log: list[tuple[int | None, int]] = []
    original = urllib3.response.HTTPResponse.read1

    def recording(
        self: urllib3.response.HTTPResponse, amt: int | None = None, decode_content: bool | None = None
    ) -> bytes:
        data = original(self, amt, decode_content)
        log.append((amt, len(data)))
        return data

    monkeypatch.setattr(urllib3.response.HTTPResponse, "read1", recording)
    return log


def test_the_get_item_response_is_read_in_large_chunks_not_bytes(
    ews_server: EwsServer, socket_reads: list[tuple[int | None, int]]
) -> None:
    mime = b"Subject: chunks\r\n\r\n" + b"x" * 2_000_000
    item_id = ews_server.add_message(REPORTER, mime)
    mailbox = EwsMailbox(ews_settings(ews_server), retry=FAST_RETRY)
    sink = MemorySink()
    mailbox.capture(ItemRef(item_id, REPORTER, REPORTER), sink)
    assert sink.data == mime
    assert {asked for asked, _ in socket_reads} == {READ_CHUNK}
    assert len(socket_reads) < 2 * len(mime) / READ_CHUNK  # one byte at a time would be millions


def test_exchangelibs_own_version_discovery_reads_in_large_chunks_on_our_sessions(
    ews_server: EwsServer, reads: ReadLog
) -> None:
    item_id = ews_server.add_message(REPORTER, b"Subject: v\r\n\r\n")
    mailbox = EwsMailbox(ews_settings(ews_server, ews_version=""), retry=FAST_RETRY)
    mailbox.capture(ItemRef(item_id, REPORTER, REPORTER), MemorySink())
    assert ews_server.count("ConvertId") == 1  # exchangelib's discovery request
    # requests itself reads a non-streamed body in 10 KiB chunks; exchangelib then re-reads it
    # with iter_content() and no size, which must not mean one byte at a time on our sessions.
    assert min(reads.sizes) >= 10 * 1024 and READ_CHUNK in reads.sizes


CHILD = """
import hashlib, json, sys, threading, time
import psutil
from addin_service.mail.ews import EwsMailbox
from addin_service.mail.ports import ItemRef
from tests.fakes.ews import ews_settings

url, small_id, big_id, reporter = sys.argv[1:5]
mailbox = EwsMailbox(ews_settings(url))

class HashingSink:
    def __init__(self):
        self.digest, self.size = hashlib.sha256(), 0
    def write(self, data):
        self.digest.update(data)
        self.size += len(data)
        return len(data)

class PeakRss(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.process, self.peak, self.running = psutil.Process(), 0, True
    def run(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.002)

mailbox.capture(ItemRef(small_id, reporter, reporter), HashingSink())  # warm up every code path
sampler = PeakRss()
baseline = sampler.process.memory_info().rss
sampler.start()
sink, started = HashingSink(), time.monotonic()
mailbox.capture(ItemRef(big_id, reporter, reporter), sink)
seconds = time.monotonic() - started
sampler.running = False
sampler.join()
result = {"growth": sampler.peak - baseline, "sha256": sink.digest.hexdigest(), "size": sink.size, "seconds": seconds}
print(json.dumps(result))
"""


def test_a_100_mb_message_is_captured_exactly_with_flat_memory(ews_server: EwsServer) -> None:
    big = b"Subject: 100 MB\r\n\r\n" + bytes(range(256)) * (100 * 4096)
    big_id = ews_server.add_message(REPORTER, big)
    small_id = ews_server.add_message(REPORTER, b"Subject: small\r\n\r\n" + b"y" * 300_000)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, ews_server.url, small_id, big_id, REPORTER],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["size"], result["sha256"]) == (len(big), hashlib.sha256(big).hexdigest())
    assert result["growth"] < 64 * 1024 * 1024, f"peak memory grew by {result['growth'] / 2**20:.1f} MiB"
