"""Bounded retries for EWS calls: exponential backoff with jitter, honouring the server's own
``BackOffMilliseconds`` / ``Retry-After``, within a total time budget (``ADDIN_EXCHANGE_MAX_WAIT``).

A reporter is waiting in Outlook, so the budget is short; when it runs out the caller gets
:class:`~addin_service.errors.MailboxUnavailable` with a ``retry_after`` derived from what Exchange
asked for, and the API answers 503 with that Retry-After.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from addin_service.errors import MailboxUnavailable

T = TypeVar("T")
log = logging.getLogger("addin_service.mail.ews")

_SYSTEM_RANDOM = secrets.SystemRandom()
UNAVAILABLE = (
    "Exchange is busy or cannot be reached right now, so the message could not be preserved yet. "
    "Nothing was filed. Please try again in a few minutes."
)


class TransientFailure(Exception):
    """Exchange failed in a way that may pass: throttling, HTTP 5xx, connection trouble, timeouts.

    :param reason: a short description for the log (no message content, ids or secrets).
    :param back_off: seconds Exchange asked us to wait, when it said so.
    :param detail: the sentence for :class:`MailboxUnavailable` if retries run out.
    :param retryable: False when retrying cannot be correct, e.g. MIME bytes already went to the sink.
    """

    def __init__(
        self, reason: str, *, back_off: float | None = None, detail: str | None = None, retryable: bool = True
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.back_off = back_off
        self.detail = detail or UNAVAILABLE
        self.retryable = retryable


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often to retry. ``max_wait`` bounds the whole call, waits included."""

    max_wait: float
    max_attempts: int = 5
    base_delay: float = 0.25
    max_delay: float = 4.0
    default_retry_after: int = 30

    def delay(self, attempt: int, back_off: float | None, jitter: Callable[[float, float], float]) -> float:
        """Seconds to wait before retry number ``attempt + 1``: "equal jitter" exponential backoff,
        but never less than what Exchange asked for."""
        ceiling = min(self.max_delay, self.base_delay * 2**attempt)
        return max(jitter(ceiling / 2, ceiling), back_off or 0.0)

    def retry_after(self, failure: TransientFailure) -> int:
        """What to tell the client when giving up: Exchange's own back-off when known."""
        if failure.back_off:
            return max(1, math.ceil(failure.back_off))
        return self.default_retry_after


class Retrier:
    """Runs an operation until it succeeds, fails for good, or the budget is spent."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[float, float], float] = _SYSTEM_RANDOM.uniform,
    ) -> None:
        self.policy = policy
        self.sleep = sleep
        self.clock = clock
        self.jitter = jitter

    def deadline(self) -> float:
        """The clock time by which a call that starts now must be done waiting."""
        return self.clock() + self.policy.max_wait

    def run(self, operation: Callable[[], T], *, what: str, deadline: float) -> T:
        """Call ``operation``; on :class:`TransientFailure` wait and call again.

        :raises MailboxUnavailable: retries ran out, the budget would be exceeded, or the failure
            was not retryable.
        """
        attempt = 0
        while True:
            try:
                return operation()
            except TransientFailure as failure:
                delay = self.policy.delay(attempt, failure.back_off, self.jitter)
                attempt += 1
                out_of_budget = self.clock() + delay > deadline
                if not failure.retryable or attempt >= self.policy.max_attempts or out_of_budget:
                    log.warning("EWS %s failed, giving up after %d attempt(s): %s", what, attempt, failure.reason)
                    raise MailboxUnavailable(failure.detail, retry_after=self.policy.retry_after(failure)) from None
                log.info("EWS %s failed (%s); attempt %d in %.2f s", what, failure.reason, attempt + 1, delay)
                self.sleep(delay)
