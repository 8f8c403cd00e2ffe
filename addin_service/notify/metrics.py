"""Outbox metrics on the app's Prometheus registry.

Two kinds, because workers may run in other processes than the web server that ``/metrics`` is
scraped from:

* :class:`OutboxStateCollector` asks the database at scrape time: rows per state
  (``addin_outbox_messages{state="dead"}`` is the one to alert on) and the age of the oldest unsent
  row. True whatever process sends.
* :class:`OutboxMetrics` counts what *this* process's workers did: sent, failed, dead, and the time
  from queueing to hand-over.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from addin_service.notify.outbox import Outbox
from addin_service.observability.metrics import Metrics, ScrapeTimeCollector

log = logging.getLogger("addin_service.notify.metrics")


class OutboxStateCollector(ScrapeTimeCollector["tuple[dict[str, int], datetime | None]"]):
    """Rows per state and the oldest unsent row's age, read from the outbox at each scrape. A
    database that cannot answer yields ``addin_outbox_up 0`` instead of failing the scrape."""

    up_name = "addin_outbox_up"
    up_help = "1 when the outbox could be read for this scrape"

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def read(self) -> tuple[dict[str, int], datetime | None]:
        return self._outbox.counts(), self._outbox.oldest_queued_at()

    def gauges(self, value: tuple[dict[str, int], datetime | None]) -> Iterator[GaugeMetricFamily]:
        counts, oldest = value
        rows = GaugeMetricFamily("addin_outbox_messages", "Notifications in the outbox by state", labels=["state"])
        for state, count in counts.items():
            rows.add_metric([state], count)
        yield rows
        age = GaugeMetricFamily(
            "addin_outbox_oldest_unsent_seconds", "Age of the oldest queued or sending notification (0 if none)"
        )
        age.add_metric([], max(0.0, (datetime.now(UTC) - oldest).total_seconds()) if oldest else 0.0)
        yield age


class OutboxMetrics:
    """What this process's workers did. One instance per registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent = Counter("addin_outbox_sent_total", "Notifications handed to the mail system", ["role"],
                            registry=registry)
        self.failed = Counter(
            "addin_outbox_failures_total", "Failed send attempts", ["kind"], registry=registry
        )
        self.dead = Counter("addin_outbox_dead_total", "Notifications given up after the last attempt", ["role"],
                            registry=registry)
        self.found_sent = Counter(
            "addin_outbox_found_already_sent_total",
            "Uncertain sends found in Sent Items, so not sent again",
            registry=registry,
        )
        self.delivery_seconds = Histogram(
            "addin_outbox_delivery_seconds",
            "Time from queueing a notification to handing it over",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 7200),
            registry=registry,
        )
        self.escalations = Counter("addin_escalations_total", "Reports escalated for lack of acknowledgement",
                                   registry=registry)


def register_outbox_metrics(metrics: Metrics, outbox: Outbox) -> OutboxMetrics:
    """Add the outbox's gauges and counters to the app's ``metrics``."""
    metrics.add_scrape_time(OutboxStateCollector(outbox))
    return OutboxMetrics(metrics.registry)
