"""Wiring for notifications: :func:`build_notifications` picks the directory and the transport from
settings (or takes the ones given, for tests and the demo) and returns everything the filing use
case, the worker, the acknowledgement page and ``/metrics`` need.

Nothing connects here: the directory and the sender open connections on first use, and the
acknowledgement key is derived on first use. The supervisor mapping file *is* read here, so a bad
one stops start-up.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from addin_service.db.database import Database
from addin_service.errors import ConfigError
from addin_service.evidence.ports import EvidenceStore
from addin_service.notify.ack import AckLinks, evidence_key_material
from addin_service.notify.case_page import PURPOSE as CASE_LINK_PURPOSE
from addin_service.notify.case_page import case_link
from addin_service.notify.compose import Composer
from addin_service.notify.filing import NotificationPlanner
from addin_service.notify.metrics import OutboxMetrics, register_outbox_metrics
from addin_service.notify.outbox import Outbox
from addin_service.notify.ports import Directory, Sender
from addin_service.notify.supervisor_map import SupervisorMap, load_supervisor_map
from addin_service.notify.supervisors import CachingDirectory, SupervisorResolver
from addin_service.notify.worker import OutboxWorker, WorkerConfig
from addin_service.observability.metrics import Metrics
from addin_service.settings import Settings

log = logging.getLogger("addin_service.notify")


@dataclass
class Notifications:
    """The notification side of the service, built once per process."""

    settings: Settings
    database: Database
    evidence: EvidenceStore
    outbox: Outbox
    directory: Directory | None
    sender: Sender | None
    supervisor_map: SupervisorMap
    ack_links: AckLinks
    case_links: AckLinks
    composer: Composer
    planner: NotificationPlanner
    metrics: OutboxMetrics | None = None
    _wake: threading.Event = field(default_factory=threading.Event)

    def register_metrics(self, metrics: Metrics) -> OutboxMetrics:
        """Put the outbox gauges and worker counters on the app's ``metrics`` (once)."""
        if self.metrics is None:
            self.metrics = register_outbox_metrics(metrics, self.outbox)
        return self.metrics

    def worker(self, config: WorkerConfig | None = None) -> OutboxWorker:
        """A worker loop over this process's outbox and sender.

        :raises ConfigError: no transport can be used (``ADDIN_NOTIFY_FROM`` is not set).
        """
        if self.sender is None or not self.settings.notify_from:
            raise ConfigError(
                "ADDIN_NOTIFY_FROM",
                "is not set: reports are filed and notifications are queued, but nothing can be sent until it is",
            )
        return OutboxWorker(
            self.outbox,
            self.sender,
            self.evidence,
            from_address=self.settings.notify_from,
            composer=self.composer,
            config=config or WorkerConfig(escalate_after=float(self.settings.escalate_after)),
            metrics=self.metrics,
            wake=self._wake,
        )

    def wake(self) -> None:
        """Tell an in-process worker that rows were just queued."""
        self._wake.set()

    def close(self) -> None:
        """Stop background directory lookups; close the transport's and the directory's connections."""
        self.planner.close()
        for part in (self.sender, self.directory):
            inner: Any = getattr(part, "inner", part)
            close = getattr(inner, "close", None)
            if callable(close):
                close()


def build_notifications(
    settings: Settings,
    database: Database,
    evidence: EvidenceStore,
    directory: Directory | None = None,
    sender: Sender | None = None,
) -> Notifications:
    """Build the notification side from settings; ``directory``/``sender`` replace the configured ones.

    Directory: EWS ``ResolveNames`` when ``ADDIN_EXCHANGE=ews``, Microsoft Graph when ``graph``,
    wrapped in a short-lived cache. Sender: ``ADDIN_NOTIFY_TRANSPORT`` (ews, graph or smtp), built only
    when ``ADDIN_NOTIFY_FROM`` is set — without it reports are still filed and their notifications
    queued (and a warning is logged), so nothing is lost while an administrator finishes the set-up.

    :raises ConfigError: a bad ``ADDIN_SUPERVISOR_MAP`` (naming the line), an unusable transport
        configuration, or no way to key acknowledgement links.
    """
    supervisor_map = load_supervisor_map(settings.supervisor_map)
    if supervisor_map:
        log.info("supervisor mapping file loaded", extra={"event": "notify.map_loaded", "entries": len(supervisor_map)})
    outbox = Outbox(database, mailboxes=(settings.security_mailbox or "", settings.fallback_mailbox or ""))
    chosen_directory = directory if directory is not None else _directory(settings)
    cached = CachingDirectory(chosen_directory) if chosen_directory is not None else None
    chosen_sender = sender if sender is not None else _sender(settings)
    if chosen_sender is None:
        log.warning(
            "ADDIN_NOTIFY_FROM is not set: notifications are queued but not sent",
            extra={"event": "notify.no_sender"},
        )
    key_material = evidence_key_material(settings)
    ack_links = AckLinks(key_material, settings.public_url)
    case_links = AckLinks(key_material, settings.public_url, purpose=CASE_LINK_PURPOSE)
    composer = Composer(settings, ack_links.link, functools.partial(case_link, case_links))
    planner = NotificationPlanner(settings, outbox, SupervisorResolver(cached, supervisor_map), composer)
    return Notifications(
        settings=settings,
        database=database,
        evidence=evidence,
        outbox=outbox,
        directory=cached,
        sender=chosen_sender,
        supervisor_map=supervisor_map,
        ack_links=ack_links,
        case_links=case_links,
        composer=composer,
        planner=planner,
    )


def _directory(settings: Settings) -> Directory | None:
    if settings.exchange == "ews" and settings.ews_url:
        from addin_service.mail.ews_directory import EwsDirectory

        return EwsDirectory(settings)
    if settings.exchange == "graph":
        from addin_service.mail.graph_directory import GraphDirectory

        return GraphDirectory(settings)
    return None


def _sender(settings: Settings) -> Sender | None:
    if not settings.notify_from:
        return None
    transport = settings.notify_transport
    if transport == "smtp":
        from addin_service.notify.smtp import SmtpSender

        if not settings.smtp_url:
            raise ConfigError("ADDIN_SMTP_URL", "is required when ADDIN_NOTIFY_TRANSPORT=smtp")
        return SmtpSender(settings.smtp_url)
    if transport == "ews":
        if not settings.ews_url:
            raise ConfigError(
                "ADDIN_NOTIFY_TRANSPORT",
                "is ews, which needs ADDIN_EWS_URL; with Exchange Online use graph, or use smtp",
            )
        from addin_service.mail.ews_sender import EwsSender

        return EwsSender(settings)
    if transport == "graph":
        from addin_service.mail.graph_sender import GraphSender

        return GraphSender(settings)
    raise ConfigError("ADDIN_NOTIFY_TRANSPORT", "must be one of: ews, graph, smtp")  # pragma: no cover
