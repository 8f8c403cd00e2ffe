"""Numbers read from text that comes from outside: headers, XML, JSON, files, the command line.

``str.isdigit()`` is also true for "²" or "①", which ``int()`` then refuses, so a check with it
does not protect the conversion after it; ``int()`` itself takes "٣" as 3 and refuses more than
4,300 digits; ``float()`` takes "inf", "nan" and "1e999". A value that passed the check here never
raises, and a wait that someone else asked for is always finite and bounded.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable
from datetime import UTC, datetime

# The longest wait another server may impose on us: an hour. A later retry learns again.
MAX_WAIT_SECONDS = 3600


def is_decimal(text: str) -> bool:
    """True when ``text`` is one or more ASCII digits 0-9 and nothing else."""
    return text.isascii() and text.isdigit()


def decimal(text: str | None, *, max_digits: int = 18) -> int | None:
    """``text`` (surrounding blanks allowed) as a non-negative int; None when it is not ASCII
    digits, or has more than ``max_digits`` of them."""
    if text is None:
        return None
    text = text.strip()
    if not is_decimal(text) or len(text) > max_digits:
        return None
    return int(text)


def bounded_wait(seconds: float | None, *, ceiling: float = MAX_WAIT_SECONDS) -> float | None:
    """A wait someone else asked for, within [0, ``ceiling``]; None when it is no usable number."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    return min(float(seconds), ceiling)


def retry_after_seconds(
    value: str | None, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> int | None:
    """An HTTP ``Retry-After`` (delta-seconds or an HTTP date) in whole seconds, at most
    :data:`MAX_WAIT_SECONDS`; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if is_decimal(value):
        return MAX_WAIT_SECONDS if len(value) > 6 else min(int(value), MAX_WAIT_SECONDS)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - now()).total_seconds()
    return int(min(max(0.0, math.ceil(seconds)), MAX_WAIT_SECONDS))
