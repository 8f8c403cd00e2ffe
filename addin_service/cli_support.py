"""What every ``addin-service`` command shares: clean exits and settings for partial configuration."""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from addin_service.errors import ConfigError, DatabaseUnavailable, ServiceError
from addin_service.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

# Placeholders for the Exchange and identity settings a command never uses, so that an admin can run
# `evidence verify` or `outbox list` with only the storage variables set. Never used to talk to anything.
_UNUSED_EXCHANGE = {
    "ADDIN_EXCHANGE": "ews",
    "ADDIN_EWS_URL": "https://unused.invalid/EWS/Exchange.asmx",
    "ADDIN_EWS_AUTH": "oauth-app",
    "ADDIN_CLIENT_SECRET": "unused",
    "ADDIN_TENANT_ID": "00000000-0000-0000-0000-000000000000",
    "ADDIN_CLIENT_ID": "00000000-0000-0000-0000-000000000000",
}


class CommandFailed(Exception):
    """What stops a command for a reason the operator can fix where they run it (an address that
    cannot be listened on, a folder that cannot be written): one line, exit status 1.

    Raised where the reason is known, with a message that says what could not be done and why;
    :func:`stops_cleanly` prints it. Chain the original (``raise ... from exc``) so it is not lost.
    """


def stops_cleanly(func: F) -> F:
    """Config and service errors, and :class:`CommandFailed`, end the command with one line and
    exit status 2 (config) or 1. Anything else is left to propagate: an unexpected error keeps its
    traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            click.echo(f"configuration error: {exc.detail}", err=True)
            sys.exit(2)
        except DatabaseUnavailable as exc:
            # An administrator runs this: say why, not "try again in a moment" for a missing database.
            click.echo(f"error: the case database cannot be used: {exc.reason or exc.detail}", err=True)
            sys.exit(1)
        except ServiceError as exc:
            click.echo(f"error: {exc.detail}", err=True)
            sys.exit(1)
        except CommandFailed as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def listen_problem(exc: OSError | ValueError, host: str) -> str:
    """Why ``host`` could not be listened on, in words, from the error binding it raised."""
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc) or type(exc).__name__
        if exc.errno == errno.EADDRINUSE:
            return f"{reason}: another program is listening there (choose another --port)"
        if exc.errno == errno.EADDRNOTAVAIL:
            return f"{reason}: it is not an address of this machine (choose another --host)"
        if exc.errno == errno.EACCES:
            return f"{reason}: ports below 1024 need privileges (choose another --port)"
        return reason
    # waitress reports a host it could not resolve only as "Invalid host/port specified."; ask the
    # resolver itself why.
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as lookup:
        return f"{host!r} is neither an IP address nor a name that resolves ({lookup.strerror or lookup})"
    return str(exc)


def host_port(host: str, port: int) -> str:
    """``host:port`` as a URL writes it (``[::1]:8000`` for IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def missing_sqlite_file(settings: Settings) -> str | None:
    """The file ``ADDIN_DATABASE_URL`` names when it is SQLite and the file is not there, else None.
    A command that only reads must not open it: that would leave an empty database behind."""
    if not settings.is_sqlite:
        return None
    from sqlalchemy.engine import make_url

    path = make_url(settings.database_url).database or ""
    return None if Path(path).is_file() else path


def storage_only_settings() -> Settings:
    """Settings for commands that need only the database and evidence variables."""
    env = dict(os.environ)
    for name, value in _UNUSED_EXCHANGE.items():
        env.setdefault(name, value)
    return Settings.from_env(env)
