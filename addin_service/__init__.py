"""Report Harassment for Outlook: the service behind the add-in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from addin_service.settings import Settings


def create_app(config: Settings | dict[str, Any] | None = None) -> Flask:
    """Build the WSGI app. ``config`` is a Settings, a mapping of ``ADDIN_*`` overrides, or None
    (read the environment). The only way to build the app; nothing heavy happens at import."""
    from addin_service.app import build_app

    return build_app(config)
