"""Who is calling: Entra ID access tokens validated into a :class:`Caller`."""

from __future__ import annotations

from addin_service.auth.bearer import MAX_TOKEN_CHARS, MissingCredentials, bearer_from_header
from addin_service.auth.caller import Caller
from addin_service.auth.metadata import IdentityProviderUnavailable, IssuerKeys, IssuerMetadata
from addin_service.auth.tokens import BearerAuthenticator, InsufficientScope, TokenRefused, TokenValidator

__all__ = [
    "MAX_TOKEN_CHARS",
    "BearerAuthenticator",
    "Caller",
    "IdentityProviderUnavailable",
    "InsufficientScope",
    "IssuerKeys",
    "IssuerMetadata",
    "MissingCredentials",
    "TokenRefused",
    "TokenValidator",
    "bearer_from_header",
]
