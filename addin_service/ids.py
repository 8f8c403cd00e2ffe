"""Identifiers for cases and reports: random, unguessable, safe as directory names."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CASE_ID_RE = re.compile(r"^HR-\d{4}-[0-9A-HJKMNP-TV-Z]{8}$")
REPORT_ID_RE = re.compile(r"^R-[0-9A-HJKMNP-TV-Z]{16}$")


def _random(n: int) -> str:
    # 32 symbols divide 256, so the low five bits of each random byte pick one uniformly; one
    # read of the system's random source instead of one per character.
    return "".join(_CROCKFORD[byte & 31] for byte in secrets.token_bytes(n))


def new_case_id(now: datetime | None = None) -> str:
    """A case number people can read out on the phone: ``HR-2026-7K3M9Q2X``."""
    year = (now or datetime.now(UTC)).year
    return f"HR-{year:04d}-{_random(8)}"


def new_report_id() -> str:
    return f"R-{_random(16)}"


def is_case_id(value: str) -> bool:
    return bool(CASE_ID_RE.fullmatch(value))


def is_report_id(value: str) -> bool:
    return bool(REPORT_ID_RE.fullmatch(value))
