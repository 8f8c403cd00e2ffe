"""The composition root: the one place that picks real adapters (or injected fakes) from settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from addin_service.errors import ConfigError
from addin_service.observability.metrics import LedgerHeadCollector, Metrics
from addin_service.ratelimit import SlidingWindowLimiter
from addin_service.settings import Settings

if TYPE_CHECKING:
    from addin_service.auth.caller import Caller
    from addin_service.cases.related import RelatedFiler
    from addin_service.cases.service import ReportFiler
    from addin_service.cases.submission import ReportSubmissions
    from addin_service.db.database import Database
    from addin_service.db.reports import ReportRepository
    from addin_service.evidence.ports import EvidenceStore
    from addin_service.mail.ports import Mailbox
    from addin_service.notify.bootstrap import Notifications
    from addin_service.notify.ports import Directory, Sender

log = logging.getLogger("addin_service.bootstrap")


class Authenticator(Protocol):
    def authenticate(self, authorization: str | None) -> Caller: ...


@dataclass
class Container:
    """Everything a request needs, built once per app."""

    settings: Settings
    database: Database
    repository: ReportRepository
    evidence: EvidenceStore
    mailbox: Mailbox
    authenticator: Authenticator
    rate_limiter: SlidingWindowLimiter
    metrics: Metrics
    filer: ReportFiler
    related: RelatedFiler
    submissions: ReportSubmissions
    notifications: Notifications | None = None

    def authenticate(self, authorization: str | None) -> Caller:
        return self.authenticator.authenticate(authorization)

    def close(self) -> None:
        if self.notifications is not None:
            self.notifications.close()
        self.database.dispose()


def build_evidence_store(settings: Settings, *, check_key: bool = True) -> EvidenceStore:
    """The evidence store ``ADDIN_EVIDENCE_URL`` names.

    With ``check_key`` (every process that signs: web, worker) ``ADDIN_SIGNING_KEY`` is read now, so
    a bad key stops start-up. ``evidence verify`` and ``export`` pass False: they read only the
    public key published beside the ledger, and may be run by someone who cannot read the private key.

    :raises ConfigError: ``ADDIN_EVIDENCE_URL`` is not usable, or (``check_key``) ``ADDIN_SIGNING_KEY``.
    """
    from addin_service.evidence.files import FileEvidenceStore
    from addin_service.evidence.keys import check_configured_key

    if check_key:
        check_configured_key(settings.signing_key)
    path = settings.evidence_path
    if path is None:
        raise ConfigError(
            "ADDIN_EVIDENCE_URL",
            "s3:// evidence stores are not available in this build yet; use file:///path",
        )
    return FileEvidenceStore(Path(path), settings.signing_key)


def build_mailbox(settings: Settings) -> Mailbox:
    if settings.exchange == "graph":
        from addin_service.mail.graph import GraphMailbox
        from addin_service.mail.graph_tokens import GraphTokens

        return GraphMailbox(settings, GraphTokens(settings))
    from addin_service.mail.ews import EwsMailbox

    return EwsMailbox(settings)


def build_container(
    settings: Settings,
    *,
    mailbox: Mailbox | None = None,
    evidence: EvidenceStore | None = None,
    authenticator: Authenticator | None = None,
    directory: Directory | None = None,
    sender: Sender | None = None,
) -> Container:
    """Wire the real adapters, or the ones given (tests and the demo pass doubles here)."""
    from addin_service.auth.tokens import BearerAuthenticator
    from addin_service.cases.related import RelatedFiler
    from addin_service.cases.service import ReportFiler
    from addin_service.cases.submission import ReportSubmissions
    from addin_service.db.database import Database
    from addin_service.db.reports import ReportRepository
    from addin_service.evidence.keys import check_configured_key
    from addin_service.notify.bootstrap import build_notifications

    # Before anything is opened; also when the evidence store is injected: acknowledgement links
    # are signed with a key derived from this one.
    check_configured_key(settings.signing_key)
    database = Database(settings.database_url)
    if settings.is_sqlite:
        database.upgrade()
    repository = ReportRepository(database)
    evidence = evidence or build_evidence_store(settings, check_key=False)  # checked above
    mailbox = mailbox or build_mailbox(settings)
    authenticator = authenticator or BearerAuthenticator(settings)
    limit, window = settings.rate_limit
    metrics = Metrics()
    notifications = build_notifications(settings, database, evidence, directory=directory, sender=sender)
    notifications.register_metrics(metrics)  # before any worker is created
    metrics.add_scrape_time(LedgerHeadCollector(evidence))
    filer = ReportFiler(settings, repository, evidence, mailbox, notifications=notifications)
    related = RelatedFiler(filer, mailbox, repository)
    return Container(
        settings=settings,
        database=database,
        repository=repository,
        evidence=evidence,
        mailbox=mailbox,
        authenticator=authenticator,
        rate_limiter=SlidingWindowLimiter(limit, window),
        metrics=metrics,
        filer=filer,
        related=related,
        submissions=ReportSubmissions(filer, related, repository),
        notifications=notifications,
    )
