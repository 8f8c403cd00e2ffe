"""Prometheus metrics, one registry per app so tests and apps never share counters."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from addin_service.errors import ServiceError
from addin_service.evidence.ports import EvidenceStore


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
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

    def render(self) -> bytes:
        return generate_latest(self.registry)


class LedgerHeadCollector(Collector):
    """The evidence ledger's newest sequence, read at each scrape (every process reports the same).

    Prometheus keeps it off the evidence host, so a ledger cut back (the newest reports removed
    with their ledger lines, which the chain alone cannot show) appears as this number going
    down: alert on ``delta(addin_evidence_ledger_head_sequence[1h]) < 0``. A ledger that cannot be
    read yields ``addin_evidence_ledger_up 0`` instead of failing the scrape.
    """

    def __init__(self, evidence: EvidenceStore) -> None:
        self._evidence = evidence

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("addin_evidence_ledger_up", "1 when the evidence ledger's head could be read")
        try:
            head = self._evidence.ledger_head()
        except ServiceError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        sequence = GaugeMetricFamily(
            "addin_evidence_ledger_head_sequence", "Sequence number of the newest evidence ledger entry (0 if none)"
        )
        sequence.add_metric([], head[0] if head is not None else 0)
        yield sequence

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """Nothing up front: describing would read the ledger at registration."""
        return iter(())
