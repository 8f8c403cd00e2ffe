"""Structured JSON-line logs with the request id; never a body, token, password or note."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged.
_STANDARD = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {"message", "asctime"}
# Loggers of libraries that write whole SOAP/HTTP bodies or headers at DEBUG.
_NOISY = ("exchangelib", "urllib3", "msal", "requests_oauthlib", "waitress.queue")
_FORBIDDEN_KEYS = {"token", "authorization", "password", "note", "body", "mime", "secret"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key in _STANDARD or key.startswith("_"):
                continue
            entry[key] = "[redacted]" if key.lower() in _FORBIDDEN_KEYS else value
        request_id = _current_request_id()
        if request_id and "request_id" not in entry:
            entry["request_id"] = request_id
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str)


def _current_request_id() -> str | None:
    try:
        from flask import g, has_request_context

        if has_request_context():
            value = getattr(g, "request_id", None)
            return value if isinstance(value, str) else None
    except ImportError:  # pragma: no cover
        return None
    return None


def configure(level: str) -> None:
    """Send our logs to stderr as JSON lines. Libraries that log bodies are held at WARNING."""
    root = logging.getLogger()
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
