"""Prometheus metrics, one registry per app so tests and apps never share counters."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


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
