"""Prometheus metrics, one registry per app so tests and apps never share counters.

Several processes behind one port (gunicorn) would each answer ``/metrics`` with only their own
counters, so every scrape would land on a different process and see counters jump back and forth.
When ``PROMETHEUS_MULTIPROC_DIR`` names a directory, prometheus_client's multiprocess mode keeps each
process's counters and histograms in a file there, and ``/metrics`` adds up every file, whichever
process answers. Gauges read at scrape time (:class:`ScrapeTimeCollector`) are not kept per process:
they ask the shared store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from addin_service.errors import ConfigError, ServiceError
from addin_service.evidence.ports import EvidenceStore

T = TypeVar("T")

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    """The directory every process of this service keeps its counters in, or None for one process.

    :raises ConfigError: the variable names no writable directory, or was set after
        prometheus_client was imported (it chooses where counters live at import).
    """
    configured = os.environ.get(MULTIPROCESS_VARIABLE)
    if not configured:
        return None
    folder = Path(configured)
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(MULTIPROCESS_VARIABLE, f"{configured} is not a directory this process can write to")
    if values.ValueClass is values.MutexValue:
        raise ConfigError(
            MULTIPROCESS_VARIABLE, "was set after the service started; set it in the environment it starts with"
        )
    return folder


@dataclass
class Metrics:
    """This app's counters, and what ``/metrics`` shows: every process's counters added up when
    :func:`multiprocess_dir` names a directory, this process's otherwise; scrape-time gauges either way."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    _exposed: CollectorRegistry = field(init=False, repr=False)

    def __post_init__(self) -> None:
        folder = multiprocess_dir()
        self._exposed = self.registry
        if folder is not None:
            self._exposed = CollectorRegistry()
            MultiProcessCollector(self._exposed, path=str(folder))  # type: ignore[no-untyped-call]  # untyped upstream
        self.reports = Counter("addin_reports_total", "Report requests by outcome", ["outcome"], registry=self.registry)
        self.http = Counter(
            "addin_http_responses_total",
            "HTTP responses by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.report_seconds = Histogram(
            "addin_report_seconds",
            "Time from request to filed report",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.report_bytes = Histogram(
            "addin_report_message_bytes",
            "Size of filed messages",
            buckets=(10_000, 100_000, 1_000_000, 10_000_000, 25_000_000, 50_000_000, 100_000_000),
            registry=self.registry,
        )

    def add_scrape_time(self, collector: Collector) -> None:
        """Show ``collector`` (one that reads a shared store at each scrape) on ``/metrics``."""
        self.registry.register(collector)
        if self._exposed is not self.registry:
            self._exposed.register(collector)

    def render(self) -> bytes:
        return generate_latest(self._exposed)


class ScrapeTimeCollector(Collector, Generic[T]):
    """Gauges read from a store at each scrape, so every process reports the same. A store that
    cannot answer yields ``<up_name> 0`` instead of failing the scrape; describing reads nothing."""

    up_name: str
    up_help: str

    def read(self) -> T:
        """What the gauges show. :raises ServiceError: the store cannot answer now."""
        raise NotImplementedError

    def gauges(self, value: T) -> Iterator[GaugeMetricFamily]:
        raise NotImplementedError

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(self.up_name, self.up_help)
        try:
            value = self.read()
        except ServiceError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from self.gauges(value)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """Nothing up front: describing would read the store at registration."""
        return iter(())


class LedgerHeadCollector(ScrapeTimeCollector["tuple[int, str] | None"]):
    """The evidence ledger's newest sequence.

    Prometheus keeps it off the evidence host, so a ledger cut back (the newest reports removed
    with their ledger lines, which the chain alone cannot show) appears as this number going
    down: alert on ``delta(addin_evidence_ledger_head_sequence[1h]) < 0``.
    """

    up_name = "addin_evidence_ledger_up"
    up_help = "1 when the evidence ledger's head could be read"

    def __init__(self, evidence: EvidenceStore) -> None:
        self._evidence = evidence

    def read(self) -> tuple[int, str] | None:
        return self._evidence.ledger_head()

    def gauges(self, value: tuple[int, str] | None) -> Iterator[GaugeMetricFamily]:
        sequence = GaugeMetricFamily(
            "addin_evidence_ledger_head_sequence", "Sequence number of the newest evidence ledger entry (0 if none)"
        )
        sequence.add_metric([], value[0] if value is not None else 0)
        yield sequence
