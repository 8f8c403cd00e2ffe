"""What every ``addin-service`` command shares: clean exits and settings for partial configuration."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from addin_service.errors import ConfigError, ServiceError
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


def stops_cleanly(func: F) -> F:
    """Config and service errors end the command with one line and exit status 2 (config) or 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            click.echo(f"configuration error: {exc.detail}", err=True)
            sys.exit(2)
        except ServiceError as exc:
            click.echo(f"error: {exc.detail}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def storage_only_settings() -> Settings:
    """Settings for commands that need only the database and evidence variables."""
    env = dict(os.environ)
    for name, value in _UNUSED_EXCHANGE.items():
        env.setdefault(name, value)
    return Settings.from_env(env)
