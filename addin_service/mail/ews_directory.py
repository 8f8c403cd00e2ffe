"""The directory over EWS: ``ResolveNames`` against Active Directory, for Exchange Server.

* ``person(address)``: ``ResolveNames`` of ``smtp:<address>`` with ``ReturnFullContactData`` and
  ``ContactDataShape="AllProperties"``. The answer's ``Mailbox`` is the primary address; the
  contact's ``EmailAddresses`` (``SMTP:``/``smtp:`` proxy addresses) are the aliases. ResolveNames
  matches the *start* of each proxy address (``smtp:bob@contoso.co`` also finds
  ``bob@contoso.com``), and a contact shows at most three addresses (``EmailAddress1`` to ``3``;
  hybrid users often have more). A candidate is the person when it shows the address. If none
  does, the sole candidate is taken (proxy addresses are unique, and the owner of one is always
  among the candidates) when its three places are full (the address may be one it could not
  show) and none of the addresses it shows starts with the one asked about (that address, not
  this one, would explain the match). What stays open: a hidden address that merely starts with
  the one asked about, while nobody in the address lists owns it. A sender is then taken for
  that person, which can only leave a supervisor out and tell the next level; so the chain,
  where a wrong person would tell a stranger's manager, starts only from an address it shows.
* ``manager_chain(address)``: the same lookup, hop by hop. Exchange 2010 SP2 and later return the
  manager's mailbox (``ManagerMailbox``); older servers only the manager's display name
  (``Manager``), which is then resolved in turn and used only when exactly one person has that name
  (a guess between two namesakes could tell the wrong person). A loop in the directory, an unknown
  or ambiguous manager ends the chain.

Lookups run as the service account, without impersonation: the global address list is readable
by every account. Answers are remembered for ``cache_ttl`` seconds because a chain lookup asks
about the same managers again and again. Every failure to ask is :class:`DirectoryUnavailable`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import requests
from exchangelib.errors import EWSError
from oauthlib.oauth2 import OAuth2Error

from addin_service.errors import ServiceError
from addin_service.mail.ews_connection import EwsConnection
from addin_service.mail.ews_retry import TransientFailure
from addin_service.notify.ports import DirectoryUnavailable, Person
from addin_service.settings import Settings

log = logging.getLogger("addin_service.mail.ews_directory")

CACHE_TTL_SECONDS = 60.0
MAX_CACHED = 5_000
_UNAVAILABLE = "The directory (Exchange ResolveNames) could not be asked."
# A contact's EmailAddresses has three places (EmailAddress1..3), whatever the number of proxy addresses.
SHOWN_ADDRESSES = 3


@dataclass(frozen=True)
class _Resolved:
    person: Person
    manager_address: str | None
    manager_name: str | None
    shows_every_address: bool  # fewer addresses than the contact has places for: none is hidden


class EwsDirectory:
    """:class:`~addin_service.notify.ports.Directory` over EWS ``ResolveNames``. Thread-safe.

    :raises ConfigError: the EWS settings are incomplete (see :class:`EwsConnection`).
    """

    name = "ews"

    def __init__(
        self,
        settings: Settings,
        *,
        connection: EwsConnection | None = None,
        cache_ttl: float = CACHE_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connection = connection or EwsConnection(settings)
        self._ttl = cache_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[float, list[_Resolved]]] = OrderedDict()

    def person(self, address: str) -> Person | None:
        """The person with this address (primary or alias), or None if unknown.

        :raises DirectoryUnavailable: the directory cannot be reached.
        """
        found = self._by_address(address, unshown=True)
        return found.person if found is not None else None

    def manager_chain(self, address: str, depth: int = 3) -> list[Person]:
        """The manager, the manager's manager, ... up to ``depth`` levels (may be empty).

        :raises DirectoryUnavailable: the directory cannot be reached.
        """
        chain: list[Person] = []
        current = self._by_address(address)
        seen = {address.strip().lower()}
        if current is not None:
            seen.add(current.person.address)
        while current is not None and len(chain) < depth:
            manager = self._manager_of(current)
            if manager is None or manager.person.address in seen:
                break
            chain.append(manager.person)
            seen.add(manager.person.address)
            current = manager
        return chain

    def close(self) -> None:
        """Release pooled connections."""
        self._connection.close()

    # -- lookups -----------------------------------------------------------------------------

    def _manager_of(self, resolved: _Resolved) -> _Resolved | None:
        if resolved.manager_address:
            return self._by_address(resolved.manager_address)
        if resolved.manager_name:
            matches = self._resolve(resolved.manager_name)
            if len(matches) == 1:
                return matches[0]
            if matches:
                log.warning(
                    "the directory names an ambiguous manager; the chain ends here",
                    extra={"event": "directory.ambiguous_manager", "matches": len(matches)},
                )
        return None

    def _by_address(self, address: str, *, unshown: bool = False) -> _Resolved | None:
        """Who has this address; with ``unshown``, also the sole candidate that may hold it among the
        addresses its contact could not show (see the module's description)."""
        wanted = address.strip().lower().removeprefix("smtp:")
        if not wanted or "@" not in wanted:
            return None
        candidates = self._resolve(f"smtp:{wanted}")
        for found in candidates:
            if found.person.address == wanted or wanted in found.person.aliases:
                return found
        if unshown and len(candidates) == 1 and _may_hide(candidates[0], wanted):
            found = candidates[0]
            return replace(found, person=replace(found.person, aliases=found.person.aliases | {wanted}))
        return None

    def _resolve(self, entry: str) -> list[_Resolved]:
        key = entry.lower()
        now = self._clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                self._cache.move_to_end(key)
                return hit[1]
        answer = self._ask(entry)
        with self._lock:
            self._cache[key] = (self._clock() + self._ttl, answer)
            self._cache.move_to_end(key)
            while len(self._cache) > MAX_CACHED:
                self._cache.popitem(last=False)
        return answer

    def _ask(self, entry: str) -> list[_Resolved]:
        """:raises DirectoryUnavailable: any failure to get an answer."""
        try:
            self._connection.version()
            results = self._connection.protocol.resolve_names(
                [entry], return_full_contact_data=True, search_scope="ActiveDirectory", shape="AllProperties"
            )
        except (EWSError, requests.RequestException, OAuth2Error, OSError, TransientFailure, ServiceError) as exc:
            log.warning(
                "directory lookup failed", extra={"event": "directory.unavailable", "error": type(exc).__name__}
            )
            raise DirectoryUnavailable(_UNAVAILABLE) from None
        resolved: list[_Resolved] = []
        for result in results:
            if isinstance(result, Exception):  # ErrorNameResolutionNoResults: nobody by that name
                continue
            found = _resolution(result)
            if found is not None:
                resolved.append(found)
        return resolved


def _resolution(result: Any) -> _Resolved | None:
    mailbox, contact = result if isinstance(result, tuple) else (result, None)
    address = str(getattr(mailbox, "email_address", "") or "").strip().lower()
    if not address or "@" not in address:
        return None
    display = str(getattr(contact, "display_name", "") or getattr(mailbox, "name", "") or "")
    entries = list(getattr(contact, "email_addresses", None) or [])
    aliases: set[str] = set()
    for entry in entries:
        value = str(getattr(entry, "email", "") or "").strip().lower()
        kind, colon, rest = value.partition(":")
        if colon and "@" not in kind:
            if kind != "smtp":
                continue  # SIP:, X500:, SPO:... take a place but are not mail addresses
            value = rest.strip()
        if "@" in value and value != address:
            aliases.add(value)
    manager_box = getattr(contact, "manager_mailbox", None)
    manager_address = str(getattr(manager_box, "email_address", "") or "").strip().lower() or None
    manager_name = str(getattr(contact, "manager", "") or "").strip() or None
    return _Resolved(
        Person(address, display, frozenset(aliases)),
        manager_address,
        manager_name,
        shows_every_address=contact is None or len(entries) < SHOWN_ADDRESSES,
    )


def _may_hide(found: _Resolved, wanted: str) -> bool:
    """Whether ``smtp:<wanted>`` found this candidate through an address its contact had no place to
    show. A complete list, or a shown address that starts with ``wanted`` (``bob@contoso.com.au``
    for ``bob@contoso.com``), explains the match without ``wanted`` being theirs."""
    if found.shows_every_address:
        return False
    return not any(shown.startswith(wanted) for shown in (found.person.address, *found.person.aliases))
