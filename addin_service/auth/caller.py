"""Who is calling: the identity proven by a validated Entra ID access token."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Caller:
    """A signed-in person whose token passed every check in ``TokenValidator``.

    ``upn`` is the lower-cased sign-in address (``preferred_username``, else ``upn``, else
    ``unique_name``). It is mutable in Entra ID and is used as the default mailbox address and
    as the reporter's name in the case; ``object_id`` is the immutable key for the person.
    ``token`` is the raw bearer, kept only for the on-behalf-of exchange: it is excluded from
    ``repr`` and from comparisons and must never be logged or stored.
    """

    upn: str
    object_id: str
    tenant_id: str
    name: str
    scopes: tuple[str, ...]
    token: str = field(repr=False, compare=False)

    def has_scope(self, scope: str) -> bool:
        """Whether the token's ``scp`` claim granted ``scope``."""
        return scope in self.scopes
