"""How long a notification waits before its next attempt, and when it is given up.

Exponential backoff with "equal jitter" (half the ceiling fixed, half random), so that a mail
server that comes back after an outage is not hit by every queued message at the same second;
never sooner than the transport asked (``retry_after``), unless it asked for more than an hour
(a wait of a year would hide a notification from the dead-letter count). The defaults spread
eight attempts over about two hours: long enough to ride out a mail server restart or a throttling window, short
enough that a dead notification is noticed (``/metrics``, ``addin-service outbox list``) the same
working day.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from addin_service.untrusted_numbers import bounded_wait

_RANDOM = secrets.SystemRandom()


@dataclass(frozen=True)
class Backoff:
    """``delay(n)`` is the wait after the n-th failed attempt (n ≥ 1)."""

    base_seconds: float = 30.0
    max_seconds: float = 3600.0
    max_attempts: int = 8

    def __post_init__(self) -> None:
        if self.base_seconds <= 0 or self.max_seconds < self.base_seconds or self.max_attempts < 1:
            raise ValueError("backoff needs 0 < base <= max and at least one attempt")

    def delay(
        self,
        attempts: int,
        retry_after: float | None = None,
        jitter: Callable[[float, float], float] = _RANDOM.uniform,
    ) -> float:
        """Seconds to wait after ``attempts`` failed attempts."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempts - 1))
        wait = jitter(ceiling / 2, ceiling)
        return max(wait, bounded_wait(retry_after) or 0.0)

    def exhausted(self, attempts: int) -> bool:
        """True when ``attempts`` attempts have been made and no more are allowed."""
        return attempts >= self.max_attempts
