"""Reading the ``Authorization: Bearer`` header strictly (RFC 6750 §2.1, RFC 7235 token68).

Error codes follow RFC 6750 §3.1: a request with no credentials at all, or with credentials of
another scheme, gets a challenge *without* an error code (:class:`MissingCredentials`, whose
``error`` is the empty string); a malformed Bearer header is ``invalid_request``.
"""

from __future__ import annotations

import re

from addin_service.errors import Unauthenticated

# Entra access tokens are typically 1.5-4 KB; group claims can push them towards 8 KB. Anything
# this large is not one of ours and is refused before it is parsed.
MAX_TOKEN_CHARS = 16 * 1024

_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SEPARATOR = re.compile(r"[ \t]+")
_SIGN_IN = "Sign in to Outlook with your work account, then open the add-in again."


class MissingCredentials(Unauthenticated):
    """No ``Authorization`` header, or one for a scheme other than Bearer.

    RFC 6750 §3.1 says the challenge then carries no error code, so ``error`` is ``""``.
    """

    def __init__(self, detail: str = _SIGN_IN) -> None:
        super().__init__(detail, error="")


def bearer_from_header(value: str | None) -> str:
    """Return the token from an ``Authorization`` header value such as ``Bearer eyJ...``.

    The scheme is matched case-insensitively; exactly one token68 value must follow.

    :raises MissingCredentials: the header is absent or empty, or uses another scheme.
    :raises Unauthenticated: (``invalid_request``) the Bearer header is malformed or too long.
    """
    if value is None or not value.strip():
        raise MissingCredentials()
    if len(value) > MAX_TOKEN_CHARS + 64:
        raise Unauthenticated(
            "The sign-in token is too large to be one issued for this add-in.", error="invalid_request"
        )
    parts = _SEPARATOR.split(value.strip(" \t"))
    if parts[0].lower() != "bearer":
        raise MissingCredentials("This service accepts only Bearer tokens. " + _SIGN_IN)
    if len(parts) != 2:
        raise Unauthenticated(
            "The Authorization header must be 'Bearer' followed by exactly one token.",
            error="invalid_request",
        )
    token = parts[1]
    if not _TOKEN68.fullmatch(token):
        raise Unauthenticated(
            "The Authorization header holds characters a token cannot contain.", error="invalid_request"
        )
    return token
