"""Keeps the claims of this process's running reports alive, so they can be short.

A request claims the item it is about to capture (``ReportRepository.lookup_or_claim``) so that a
concurrent retry waits for it instead of capturing the same message beside it. A capture may take
minutes (a 100 MB message at the slowest rate the service accepts), but a process that dies holding a
claim should not keep the reporter's retries waiting that long. So a claim lasts ``lease_seconds``
and this keeper renews it every ``renew_every`` seconds while its request runs: a live request keeps
its item however long it takes, and a dead process frees it within one lease.

A claim is renewed for at most ``max_hold_seconds`` (the longest a capture can take under the
settings), after which it lapses as if its holder had died.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from addin_service.db.reports import HeldClaim, ReportRepository
from addin_service.errors import ServiceError

log = logging.getLogger("addin_service.cases")

CLAIM_LEASE_SECONDS = 60.0
RENEW_EVERY_SECONDS = 15.0


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
        self._thread: threading.Thread | None = None

    @contextmanager
    def holding(self, claim: HeldClaim) -> Iterator[None]:
        """Keep ``claim`` alive while the block runs."""
        with self._lock:
            self._held[claim] = self._clock() + self._max_hold
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="claim-keeper", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(claim, None)

    def _run(self) -> None:
        while True:
            time.sleep(self._renew_every)
            with self._lock:
                if not self._held:
                    self._thread = None
                    return
                now = self._clock()
                due = [claim for claim, until in self._held.items() if until > now]
            if not due:
                continue
            try:
                self._repository.renew(due, self.lease_seconds)
            except ServiceError as exc:
                # A lease outlasts three renewals, and the request's own filing needs the database too.
                log.warning(
                    "could not renew the claims of running reports",
                    extra={"event": "report.claims_not_renewed", "claims": len(due), "error": type(exc).__name__},
                )
