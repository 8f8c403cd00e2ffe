"""Who the reporter's managers are: the directory, else the mapping file, else the fallback mailbox.

Runs while a report is being filed, outside the database transaction, so the directory is asked
with care:

* :class:`CachingDirectory` keeps answers for a few minutes (a burst of reports from one team asks
  about the same managers over and over) and, once the directory failed, does not ask again for
  ``outage_seconds``: a thousand reports during an outage must not each wait for a timeout.
* :class:`SupervisorResolver` never raises for a directory problem: it falls back and says so in
  ``decisions``, which end up in the audit log. Its :meth:`~SupervisorResolver.prefetch` starts the
  reporter's lookup when the report arrives, so that it runs while the message is being captured.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from addin_service.cases.origin_headers import normalise_address
from addin_service.cases.routing import SupervisorSource
from addin_service.notify.ports import Directory, DirectoryUnavailable, Person
from addin_service.notify.supervisor_map import SupervisorMap

log = logging.getLogger("addin_service.notify.supervisors")

CHAIN_DEPTH = 3
PREFETCH_THREADS = 8
MAX_CLAIMED_LOOKUPS = 6  # each a directory round trip in the report's request
_CLAIMED_UNKNOWN = (
    "The directory could not say who the claimed sender is; only the addresses in the message were compared."
)
_WATCHED_UNKNOWN = (
    "The directory could not say what other addresses the managers or the security team use; only the "
    "addresses in the message were compared."
)
T = TypeVar("T")


class CachingDirectory:
    """A :class:`Directory` that remembers answers for ``ttl`` seconds and outages for
    ``outage_seconds``. Thread-safe; at most ``max_entries`` answers are kept (least recently used
    go first). A question already being asked is not asked again: the second thread waits for the
    first one's answer (a team reporting one message at once asks about the same manager).
    """

    def __init__(
        self,
        inner: Directory,
        *,
        ttl: float = 300.0,
        outage_seconds: float = 30.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = inner.name
        self.inner = inner
        self._ttl = ttl
        self._outage = outage_seconds
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._answers: OrderedDict[tuple[str, str, int], tuple[float, object]] = OrderedDict()
        self._down_until = 0.0
        # Questions being asked right now: a second thread with the same question waits for the answer.
        self._asking: dict[tuple[str, str, int], Future[object]] = {}

    def person(self, address: str) -> Person | None:
        """:raises DirectoryUnavailable: the directory cannot be reached (or failed moments ago)."""
        found = self._cached(("person", address.strip().lower(), 0), lambda: self.inner.person(address))
        return found if isinstance(found, Person) else None

    def manager_chain(self, address: str, depth: int = CHAIN_DEPTH) -> list[Person]:
        """:raises DirectoryUnavailable: the directory cannot be reached (or failed moments ago)."""
        found = self._cached(
            ("chain", address.strip().lower(), depth), lambda: tuple(self.inner.manager_chain(address, depth))
        )
        return list(found) if isinstance(found, tuple) else []

    def _cached(self, key: tuple[str, str, int], ask: Callable[[], T]) -> T | object:
        now = self._clock()
        with self._lock:
            hit = self._answers.get(key)
            if hit is not None and hit[0] > now:
                self._answers.move_to_end(key)
                return hit[1]
            if self._down_until > now:
                raise DirectoryUnavailable("The directory failed moments ago; it is not asked again yet.")
            asking = self._asking.get(key)
            if asking is None:
                asking = self._asking[key] = Future()
                mine = True
            else:
                mine = False
        if not mine:
            return _outcome(asking)
        try:
            answer: T = ask()
        except BaseException as exc:
            with self._lock:
                if isinstance(exc, DirectoryUnavailable):
                    self._down_until = self._clock() + self._outage
                del self._asking[key]
            asking.set_exception(exc)
            raise
        with self._lock:
            self._answers[key] = (self._clock() + self._ttl, answer)
            self._answers.move_to_end(key)
            while len(self._answers) > self._max:
                self._answers.popitem(last=False)
            del self._asking[key]
        asking.set_result(answer)
        return answer


def _outcome(asking: Future[object]) -> object:
    """The answer another thread is getting for the same question (it is asked once, not twice).

    :raises DirectoryUnavailable: that thread's question failed (or failed in another way).
    """
    try:
        return asking.result()
    except DirectoryUnavailable as exc:
        raise DirectoryUnavailable(str(exc)) from None  # a new exception: each thread has its own traceback
    except Exception:
        raise DirectoryUnavailable("The directory could not be asked.") from None


@dataclass(frozen=True)
class SupervisorResolution:
    """The management chain as found, where it came from, and what the directory said about people.

    ``aliases`` maps an address to the person's other addresses (for the sender check);
    ``names`` maps an address to a display name (for salutations).
    """

    chain: tuple[str, ...]
    source: SupervisorSource
    decisions: tuple[str, ...]
    directory_available: bool
    aliases: dict[str, frozenset[str]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    # Claimed senders the directory was not asked about (more than MAX_CLAIMED_LOOKUPS), in order.
    not_looked_up: tuple[str, ...] = ()


class SupervisorResolver:
    """Directory → ``ADDIN_SUPERVISOR_MAP`` → fallback (an empty chain, source ``fallback``)."""

    def __init__(self, directory: Directory | None, supervisor_map: SupervisorMap) -> None:
        self._directory = directory
        self._map = supervisor_map
        self._prefetcher: ThreadPoolExecutor | None = None
        self._prefetcher_lock = threading.Lock()

    def prefetch(self, reporter: str) -> None:
        """Start asking the directory about ``reporter`` now, in the background, so that the answer
        is there (or on its way) when :meth:`resolve` needs it: the lookup then overlaps the capture
        instead of following it. Only useful with a :class:`CachingDirectory`, which keeps the
        answer and has :meth:`resolve` wait for a question already being asked rather than repeat it.
        """
        if not isinstance(self._directory, CachingDirectory):
            return
        with self._prefetcher_lock:
            if self._prefetcher is None:
                self._prefetcher = ThreadPoolExecutor(max_workers=PREFETCH_THREADS, thread_name_prefix="directory")
            self._prefetcher.submit(self._warm, self._directory, reporter)

    @staticmethod
    def _warm(directory: Directory, reporter: str) -> None:
        try:
            directory.manager_chain(reporter, CHAIN_DEPTH)
            directory.person(reporter)
        except DirectoryUnavailable:
            pass  # resolve() meets the same outage (remembered by the cache) and says so

    def close(self) -> None:
        """Stop the background lookups (those not started are dropped)."""
        with self._prefetcher_lock:
            if self._prefetcher is not None:
                self._prefetcher.shutdown(wait=False, cancel_futures=True)
                self._prefetcher = None

    def resolve(
        self, reporter: str, claimed_senders: Iterable[str] = (), watched: Iterable[str] = ()
    ) -> SupervisorResolution:
        """Find the reporter's chain and learn the aliases of the people involved. Never raises for
        a directory problem: the outcome, and why, is in ``decisions``.

        ``watched`` names the other people whose aliases the sender check needs (the security mailbox
        and team). Their aliases, and those of a chain taken from the mapping file, are asked for by
        their own address: the message decides how many claimed senders there are, so looking those
        up (bounded by ``MAX_CLAIMED_LOOKUPS``) cannot be what recognises a manager writing from an
        alias.
        """
        decisions: list[str] = []
        aliases: dict[str, frozenset[str]] = {}
        names: dict[str, str] = {}
        chain: tuple[str, ...] = ()
        source: SupervisorSource = "fallback"
        not_looked_up: list[str] = []
        available = self._directory is not None
        if self._directory is None:
            decisions.append("No directory is configured; the supervisor mapping file is used.")
        else:
            try:
                people = self._directory.manager_chain(reporter, CHAIN_DEPTH)
            except DirectoryUnavailable:
                available = False
                log.warning("directory unavailable; falling back", extra={"event": "routing.directory_unavailable"})
                decisions.append(
                    f"The directory ({self._directory.name}) could not be asked; the supervisor mapping file "
                    "and the fallback mailbox were used instead."
                )
            else:
                for person in people:
                    _learn(person, aliases, names)
                chain = tuple(person.address for person in people if person.address)
                if chain:
                    source = "directory"
                    decisions.append(f"The directory ({self._directory.name}) lists {len(chain)} manager level(s).")
                else:
                    decisions.append(f"The directory ({self._directory.name}) lists no manager for the reporter.")
            if available:
                self._learn_reporter(reporter, aliases, names)
                not_looked_up = self._ask_about(
                    claimed_senders, MAX_CLAIMED_LOOKUPS, aliases, names, decisions, _CLAIMED_UNKNOWN
                )
        if not chain:
            mapped = self._map.chain(reporter)
            if mapped:
                chain, source = mapped, "map"
                decisions.append("The supervisor mapping file (ADDIN_SUPERVISOR_MAP) names the reporter's supervisor.")
            elif len(self._map):
                decisions.append("The supervisor mapping file (ADDIN_SUPERVISOR_MAP) does not list the reporter.")
        if available:
            self._ask_about((*chain, *watched), None, aliases, names, decisions, _WATCHED_UNKNOWN)
        return SupervisorResolution(
            chain=chain,
            source=source,
            decisions=tuple(decisions),
            directory_available=available,
            aliases=aliases,
            names=names,
            not_looked_up=tuple(not_looked_up),
        )

    def _learn_reporter(self, reporter: str, aliases: dict[str, frozenset[str]], names: dict[str, str]) -> None:
        """The reporter's own name (for "Alex Wilber has reported...") and aliases (a directory that
        lists the reporter as their own manager is then recognised)."""
        assert self._directory is not None
        try:
            person = self._directory.person(reporter)
        except DirectoryUnavailable:
            return
        if person is not None:
            _learn(person, aliases, names)
            normal = normalise_address(reporter)
            if person.address != normal and person.display_name:
                names[normal] = person.display_name

    def _ask_about(
        self,
        addresses: Iterable[str],
        most: int | None,
        aliases: dict[str, frozenset[str]],
        names: dict[str, str],
        decisions: list[str],
        when_unavailable: str,
    ) -> list[str]:
        """Look up the first ``most`` (all, if None) of ``addresses`` not described yet; an alias
        that resolves to someone is remembered as that person's. Stops at the first outage.
        Returns those left beyond ``most``, not asked about."""
        assert self._directory is not None
        wanted = [a for a in dict.fromkeys(normalise_address(x) for x in addresses) if a and a not in aliases]
        beyond = wanted[most:] if most is not None else []
        for address in wanted[:most]:
            try:
                person = self._directory.person(address)
            except DirectoryUnavailable:
                decisions.append(when_unavailable)
                return beyond
            if person is not None:
                _learn(person, aliases, names)
                if person.address != address:
                    aliases[address] = frozenset({person.address, *person.aliases})
        return beyond


def _learn(person: Person, aliases: dict[str, frozenset[str]], names: dict[str, str]) -> None:
    address = normalise_address(person.address)
    if not address:
        return
    aliases[address] = frozenset(normalise_address(a) for a in person.aliases if normalise_address(a))
    if person.display_name:
        names[address] = person.display_name
