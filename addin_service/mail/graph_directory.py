"""The directory over Microsoft Graph: who a person is, and who their managers are.

Lookups are about other people (the reporter's manager, the sender), so they use an application
token (``User.Read.All``) in every ``ADDIN_GRAPH_AUTH`` mode.

* ``person(address)``: ``GET /users?$filter=mail eq '…' or userPrincipalName eq '…' or
  proxyAddresses/any(p:p eq 'smtp:…')`` — an address, a UPN or any SMTP alias finds the person.
  Filtering on ``proxyAddresses`` together with other properties is an advanced query, so the
  request carries ``ConsistencyLevel: eventual`` and ``$count=true``.
* ``manager_chain(address)``: ``GET /users/{id}/manager?$select=id,mail,userPrincipalName,
  proxyAddresses,displayName`` repeatedly (``id`` is selected because ``$select`` returns only
  what it names, and the next hop needs it). A 404 means "no manager" and ends the chain. A
  manager that is an organisational contact (``#microsoft.graph.orgContact``) continues through
  ``/contacts/{id}/manager``; a loop in the directory ends it.

A person's aliases are their ``smtp:``/``SMTP:`` proxy addresses, prefix removed, lower-cased,
and their ``userPrincipalName`` (not always a proxy address, yet it names them alone in the
tenant and ``person`` finds them by it), without the primary address. Any failure to ask (Graph
down or throttling beyond the allowed wait, missing permission, token refused) is
:class:`DirectoryUnavailable`; routing falls back.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from addin_service.errors import ServiceError
from addin_service.mail.graph_http import (
    GraphAppClient,
    GraphHttpError,
    GraphUnreachable,
    odata_quote,
)
from addin_service.notify.ports import DirectoryUnavailable, Person

log = logging.getLogger(__name__)

PERSON_SELECT = "displayName,mail,userPrincipalName,proxyAddresses"
MANAGER_SELECT = "id,mail,userPrincipalName,proxyAddresses,displayName"
_CONTACT_TYPE = "#microsoft.graph.orgContact"
_UNAVAILABLE = "The directory (Microsoft Graph) could not be asked."


class GraphDirectory(GraphAppClient):
    """:class:`~addin_service.notify.ports.Directory` over Microsoft Graph v1.0. Thread-safe."""

    name = "graph"

    def person(self, address: str) -> Person | None:
        """The person with this address (primary, UPN or SMTP alias), or None if unknown.

        :raises DirectoryUnavailable: the directory cannot be reached.
        """
        address = address.strip().lower()
        if not address:
            return None
        literal = odata_quote(address)
        smtp = odata_quote(f"smtp:{address}")
        match = f"mail eq {literal} or userPrincipalName eq {literal} or proxyAddresses/any(p:p eq {smtp})"
        query = {
            "$filter": match,
            "$select": PERSON_SELECT,
            "$count": "true",
        }
        url = self._http.url("users", query=query)
        data = self._get(url, "listUsers", headers={"ConsistencyLevel": "eventual"})
        users = data.get("value") if data is not None else None
        if not isinstance(users, list):
            return None
        people = [p for p in (_person(u) for u in users if isinstance(u, dict)) if p is not None]
        if not people:
            return None
        # A primary address beats an alias if two objects claim the same string.
        people.sort(key=lambda p: p.address != address)
        return people[0]

    def manager_chain(self, address: str, depth: int = 3) -> list[Person]:
        """The person's manager, the manager's manager, ... up to ``depth`` levels (may be empty).

        :raises DirectoryUnavailable: the directory cannot be reached.
        """
        chain: list[Person] = []
        collection, current = "users", address.strip()
        seen = {current.lower()}
        while current and len(chain) < depth:
            url = self._http.url(collection, current, "manager", query={"$select": MANAGER_SELECT})
            manager = self._get(url, "getManager")
            if manager is None:
                break
            person = _person(manager) if _has_mailbox(manager) else None
            manager_id = str(manager.get("id") or "")
            if person is None or not manager_id or manager_id.lower() in seen:
                break  # No mailbox to notify, or a loop in the directory.
            chain.append(person)
            seen.add(manager_id.lower())
            collection = "contacts" if manager.get("@odata.type") == _CONTACT_TYPE else "users"
            current = manager_id
        return chain

    def _get(self, url: str, operation: str, headers: dict[str, str] | None = None) -> dict[str, Any] | None:
        """GET one JSON object; None on 404.

        :raises DirectoryUnavailable: anything else that is not a success.
        """
        try:
            response = self._http.request("GET", url, bearer=self._bearer, operation=operation, headers=headers)
        except GraphHttpError as exc:
            if exc.status == 404:
                return None
            _unavailable(exc)
        except (GraphUnreachable, ServiceError) as exc:
            _unavailable(exc)
        try:
            data = response.json()
        except ValueError:
            _unavailable(None)
        finally:
            response.close()
        if not isinstance(data, dict):
            _unavailable(None)
        return data


def _unavailable(exc: Exception | None) -> NoReturn:
    if isinstance(exc, GraphHttpError) and exc.status in (401, 403):
        log.error(
            "directory lookup refused; the app needs User.Read.All (application)",
            extra={"status": exc.status, "graph_code": exc.code},
        )
    raise DirectoryUnavailable(_UNAVAILABLE) from None


def _has_mailbox(entry: dict[str, Any]) -> bool:
    """Whether mail can reach this user or contact: a ``mail`` address or a primary ``SMTP:`` proxy.
    A user without either has no mailbox; mail sent to their sign-in name would bounce after Graph
    accepted it, and the notification would look delivered."""
    if str(entry.get("mail") or "").strip():
        return True
    return any(isinstance(p, str) and p.startswith("SMTP:") for p in entry.get("proxyAddresses") or [])


def _person(entry: dict[str, Any]) -> Person | None:
    """A :class:`Person` from a Graph user or orgContact (None when it has no address)."""
    proxies = [p for p in entry.get("proxyAddresses") or [] if isinstance(p, str) and p[:5].lower() == "smtp:"]
    aliases = {p[5:].strip().lower() for p in proxies}
    # ``mail`` is the primary SMTP address; a contact or a user without it may still have one
    # marked by the upper-case ``SMTP:`` prefix.
    primary = str(entry.get("mail") or "").strip().lower()
    primary = primary or next((p[5:].strip().lower() for p in proxies if p.startswith("SMTP:")), "")
    upn = str(entry.get("userPrincipalName") or "").strip().lower()
    primary = primary or upn
    if not primary:
        return None
    if "@" in upn:
        aliases.add(upn)
    aliases.discard(primary)
    return Person(address=primary, display_name=str(entry.get("displayName") or ""), aliases=frozenset(aliases))
