"""Fault injection for the EWS server double: what goes wrong, for which operation, how often."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerBusy:
    """Exchange throttling: a SOAP fault ``ErrorServerBusy`` with ``BackOffMilliseconds``, HTTP 500."""

    back_off_ms: int = 5000
    message: str = "The server cannot service this request right now. Try again later."


@dataclass(frozen=True)
class HttpError:
    """A plain HTTP error such as a load balancer's 503, with an optional Retry-After."""

    status: int = 503
    retry_after: int | None = None
    body: bytes = b"<html><body>Service Unavailable</body></html>"


@dataclass(frozen=True)
class Delay:
    """Answer normally, but only after ``seconds`` (longer than the client's timeout, typically).

    ``after_dispatch``: carry the request out first (a CreateItem sends its message) and only then
    wait: the client cannot tell whether its request took effect — the uncertain send.
    """

    seconds: float
    after_dispatch: bool = False


@dataclass(frozen=True)
class DropConnection:
    """Close the connection: before any response (``after_body_bytes=None``) or after sending the
    status, headers and that many bytes of the real body."""

    after_body_bytes: int | None = None


Fault = ServerBusy | HttpError | Delay | DropConnection


@dataclass
class _Queued:
    fault: Fault
    operation: str | None
    remaining: int | None  # None: forever


class FaultQueue:
    """Faults waiting for matching requests, first queued first served. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[_Queued] = []

    def add(self, fault: Fault, *, operation: str | None = None, times: int | None = 1) -> None:
        """Apply ``fault`` to the next ``times`` requests (None: every request) for ``operation``
        (None: any operation)."""
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None for every request")
        with self._lock:
            self._queue.append(_Queued(fault, operation, times))

    def take(self, operation: str) -> Fault | None:
        """The fault for this request, if any, consuming one use of it."""
        with self._lock:
            for entry in self._queue:
                if entry.operation not in (None, operation):
                    continue
                if entry.remaining is not None:
                    entry.remaining -= 1
                    if entry.remaining == 0:
                        self._queue.remove(entry)
                return entry.fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
