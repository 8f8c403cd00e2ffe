"""The exact byte forms that hashes and signatures are computed over.

Verification by hand (VERIFY.txt) must reproduce these bytes, so they are deliberately plain:
canonical JSON is sorted keys, no whitespace, UTF-8; hashes are written ``sha256:<hex>``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

SHA256_PREFIX = "sha256:"


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` as canonical JSON: sorted keys, no spaces, UTF-8, no NaN.

    :raises TypeError: ``value`` holds something JSON cannot represent.
    :raises ValueError: ``value`` holds NaN or infinity.
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_tag(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return SHA256_PREFIX + hashlib.sha256(data).hexdigest()


def is_sha256_tag(value: object) -> bool:
    """True when ``value`` looks like ``sha256:`` followed by 64 lowercase hex digits."""
    if not isinstance(value, str) or not value.startswith(SHA256_PREFIX):
        return False
    digest = value[len(SHA256_PREFIX) :]
    return len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)


def utc_now_iso() -> str:
    """The current time as UTC ISO 8601 with ``Z`` and microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
