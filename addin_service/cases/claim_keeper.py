"""Keeps the claims of this process's running reports alive, so they can be short.

A request claims the item it is about to capture (``ReportRepository.lookup_or_claim``) so that a
concurrent retry waits for it instead of capturing the same message beside it. A capture may take
minutes (a 100 MB message at the slowest rate the service accepts), but a process that dies holding a
claim should not keep the reporter's retries waiting that long. So a claim lasts ``lease_seconds``
and this keeper renews it every ``renew_every`` seconds while its request runs: a live request keeps
its item however long it takes, and a dead process frees it within one lease.

A claim is renewed for at most ``max_hold_seconds`` (the longest a capture can take under the
settings), after which it lapses as if its holder had died.

A request that files nothing gives its claim (and its Idempotency-Key's reservation) up at once, so
that a retry need not wait. When the database cannot be reached at that moment, the keeper tries
again every second while the lease lasts: a retry after a short outage then files at once, instead
of being told for a minute that the message "is being filed right now".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from addin_service.db.reports import HeldClaim, ReportRepository
from addin_service.errors import ServiceError

log = logging.getLogger("addin_service.cases")

CLAIM_LEASE_SECONDS = 60.0
RENEW_EVERY_SECONDS = 15.0
RELEASE_RETRY_SECONDS = 1.0


class ClaimKeeper:
    """Renews held claims from one daemon thread, which runs only while some claim is held."""

    def __init__(
        self,
        repository: ReportRepository,
        *,
        max_hold_seconds: float,
        lease_seconds: float = CLAIM_LEASE_SECONDS,
        renew_every: float = RENEW_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < renew_every < lease_seconds:
            raise ValueError("claims must be renewed more often than they lapse")
        self._repository = repository
        self._max_hold = max_hold_seconds
        self.lease_seconds = lease_seconds
        self._renew_every = renew_every
        self._clock = clock
        self._lock = threading.Lock()
        self._held: dict[HeldClaim, float] = {}  # claim -> until when it may be renewed (clock)
        self._releases: dict[HeldClaim, _Release] = {}  # releases that failed, to try again
        self._thread: threading.Thread | None = None

    @contextmanager
    def holding(self, claim: HeldClaim) -> Iterator[None]:
        """Keep ``claim`` alive while the block runs."""
        with self._lock:
            self._held[claim] = self._clock() + self._max_hold
            self._start()
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(claim, None)

    def release(self, claim: HeldClaim, *, idem_key: str | None = None, fingerprint: str | None = None) -> None:
        """Give ``claim`` up (see ``ReportRepository.release``); if the database cannot be reached,
        try again in the background until the lease would have lapsed anyway. Never raises for the
        database: the caller is answering with what actually went wrong."""
        release = _Release(idem_key, fingerprint, until=self._clock() + self.lease_seconds)
        if self._try_release(claim, release):
            return
        with self._lock:
            self._releases[claim] = release
            self._start()

    def _try_release(self, claim: HeldClaim, release: _Release) -> bool:
        try:
            self._repository.release(
                claim.reporter, claim.item_key, claim.token, idem_key=release.idem_key, fingerprint=release.fingerprint
            )
        except ServiceError as exc:
            log.warning(
                "could not give up a claim; trying again",
                extra={"event": "report.claim_not_released", "error": type(exc).__name__},
            )
            return False
        return True

    def _start(self) -> None:
        """Start the thread if it is not running; with ``self._lock`` held."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="claim-keeper", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        tick = min(RELEASE_RETRY_SECONDS, self._renew_every)
        next_renewal = self._clock() + self._renew_every
        while True:
            time.sleep(tick)
            with self._lock:
                if not self._held and not self._releases:
                    self._thread = None
                    return
                now = self._clock()
                releases = [(c, r) for c, r in self._releases.items() if r.until > now]
                self._releases.clear()
                renewing = now >= next_renewal
                due = [claim for claim, until in self._held.items() if until > now] if renewing else []
            failed = {claim: release for claim, release in releases if not self._try_release(claim, release)}
            if failed:
                with self._lock:
                    self._releases.update(failed)
            if renewing:
                next_renewal = now + self._renew_every
                self._renew(due)

    def _renew(self, due: list[HeldClaim]) -> None:
        if not due:
            return
        try:
            self._repository.renew(due, self.lease_seconds)
        except ServiceError as exc:
            # A lease outlasts three renewals, and the request's own filing needs the database too.
            log.warning(
                "could not renew the claims of running reports",
                extra={"event": "report.claims_not_renewed", "claims": len(due), "error": type(exc).__name__},
            )


@dataclass(frozen=True)
class _Release:
    idem_key: str | None
    fingerprint: str | None
    until: float  # no use trying after this (clock): the lease has lapsed
