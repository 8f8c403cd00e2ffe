"""This service's own per-caller rate limit (429), so one account cannot flood Exchange or disk."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from addin_service.errors import RateLimited


class SlidingWindowLimiter:
    """At most ``limit`` events per ``window`` seconds per key, in this process.

    Several processes each enforce the limit on their own; that is an upper bound an admin can
    size for (documented in the README), not a security boundary.
    """

    def __init__(self, limit: int, window: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> None:
        """Count one event for ``key``. :raises RateLimited: over the limit (not counted)."""
        now = self._clock()
        with self._lock:
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - self._window:
                events.popleft()
            if len(events) >= self._limit:
                retry = max(1, math.ceil(events[0] + self._window - now))
                raise RateLimited(retry)
            events.append(now)
            if len(self._events) > 10_000:
                self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, v in self._events.items() if not v or v[-1] <= now - self._window]:
            del self._events[key]
