"""Who the supervisor is: directory, then the mapping file, then the fallback mailbox — recorded."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from addin_service.notify.ports import DirectoryUnavailable, Person
from addin_service.notify.supervisor_map import SupervisorMap
from addin_service.notify.supervisors import CachingDirectory, SupervisorResolver

ALEX = "alex@contoso.com"
MORGAN = Person("morgan@contoso.com", "Morgan Lee", frozenset({"m.lee@contoso.com"}))
SAM = Person("sam@contoso.com", "Sam Boss")


@dataclass
class FakeDirectory:
    """An in-memory directory that counts questions and can be down."""

    name: str = "fake"
    people: dict[str, Person] = field(default_factory=dict)
    managers: dict[str, str] = field(default_factory=dict)
    down: bool = False
    questions: int = 0

    def add(self, person: Person, manager: str | None = None) -> None:
        self.people[person.address] = person
        if manager:
            self.managers[person.address] = manager

    def person(self, address: str) -> Person | None:
        self.questions += 1
        if self.down:
            raise DirectoryUnavailable("down")
        wanted = address.lower()
        return next((p for p in self.people.values() if wanted == p.address or wanted in p.aliases), None)

    def manager_chain(self, address: str, depth: int = 3) -> list[Person]:
        self.questions += 1
        if self.down:
            raise DirectoryUnavailable("down")
        chain: list[Person] = []
        current = address.lower()
        while current in self.managers and len(chain) < depth:
            current = self.managers[current]
            chain.append(self.people[current])
        return chain


@pytest.fixture
def directory() -> FakeDirectory:
    fake = FakeDirectory()
    fake.add(Person(ALEX, "Alex Wilber"), manager=MORGAN.address)
    fake.add(MORGAN, manager=SAM.address)
    fake.add(SAM)
    return fake


MAP = SupervisorMap({ALEX: ("mapped-boss@contoso.com",), "riley@contoso.com": ("morgan@contoso.com",)})


def test_the_directory_comes_first(directory: FakeDirectory) -> None:
    found = SupervisorResolver(directory, MAP).resolve(ALEX)

    assert found.chain == (MORGAN.address, SAM.address)
    assert found.source == "directory"
    assert found.aliases[MORGAN.address] == {"m.lee@contoso.com"}
    assert found.names[ALEX] == "Alex Wilber"


def test_a_directory_that_is_down_falls_back_to_the_map_and_says_so(directory: FakeDirectory) -> None:
    directory.down = True

    found = SupervisorResolver(directory, MAP).resolve(ALEX)

    assert found.chain == ("mapped-boss@contoso.com",)
    assert found.source == "map"
    assert not found.directory_available
    assert any("could not be asked" in d for d in found.decisions)


def test_no_manager_in_the_directory_uses_the_map(directory: FakeDirectory) -> None:
    directory.add(Person("riley@contoso.com"))

    found = SupervisorResolver(directory, MAP).resolve("riley@contoso.com")

    assert (found.chain, found.source) == (("morgan@contoso.com",), "map")
    assert any("lists no manager" in d for d in found.decisions)


def test_nobody_anywhere_is_the_fallback(directory: FakeDirectory) -> None:
    found = SupervisorResolver(directory, SupervisorMap({})).resolve("kim@contoso.com")

    assert (found.chain, found.source) == ((), "fallback")


def test_the_claimed_sender_is_looked_up_so_an_alias_is_recognised(directory: FakeDirectory) -> None:
    found = SupervisorResolver(directory, MAP).resolve(ALEX, claimed_senders=["M.Lee@contoso.com"])

    assert MORGAN.address in found.aliases["m.lee@contoso.com"]


def test_a_mapped_supervisor_is_recognised_behind_three_other_claimed_senders(directory: FakeDirectory) -> None:
    """The message decides how many claimed senders there are: the mapped supervisor's aliases are
    asked for by their own address, not found by looking up the first few claimed ones."""
    directory.add(Person("riley@contoso.com"))
    claimed = ["a1@contoso.com", "a2@contoso.com", "a3@contoso.com", "m.lee@contoso.com"]

    found = SupervisorResolver(directory, MAP).resolve("riley@contoso.com", claimed_senders=claimed)

    assert (found.chain, found.source) == ((MORGAN.address,), "map")
    assert found.aliases[MORGAN.address] == {"m.lee@contoso.com"}
    assert found.names[MORGAN.address] == "Morgan Lee"


def test_watched_people_have_their_aliases_learned(directory: FakeDirectory) -> None:
    directory.add(Person("jsmith@contoso.com", "J Smith", frozenset({"j.smith@contoso.com"})))

    found = SupervisorResolver(directory, MAP).resolve(ALEX, watched=["JSmith@contoso.com"])

    assert found.aliases["jsmith@contoso.com"] == {"j.smith@contoso.com"}


def test_a_directory_that_fails_on_watched_people_says_so(directory: FakeDirectory) -> None:
    class FailsOnWatched(FakeDirectory):
        def person(self, address: str) -> Person | None:
            if address == "security@contoso.com":
                raise DirectoryUnavailable("down")
            return super().person(address)

    flaky = FailsOnWatched(people=directory.people, managers=directory.managers)

    found = SupervisorResolver(flaky, MAP).resolve(ALEX, watched=["security@contoso.com"])

    assert found.chain == (MORGAN.address, SAM.address)
    assert any("other addresses the managers or the security team use" in d for d in found.decisions)


def test_answers_are_cached_and_an_outage_is_remembered(directory: FakeDirectory) -> None:
    now = [0.0]
    cached = CachingDirectory(directory, ttl=60, outage_seconds=30, clock=lambda: now[0])

    cached.manager_chain(ALEX)
    cached.manager_chain(ALEX)
    assert directory.questions == 1

    now[0] = 61
    directory.down = True
    with pytest.raises(DirectoryUnavailable):
        cached.manager_chain(ALEX)
    with pytest.raises(DirectoryUnavailable):
        cached.person(ALEX)  # not asked again during the outage window
    assert directory.questions == 2

    now[0] = 92
    directory.down = False
    assert cached.person(ALEX) == directory.people[ALEX]
    assert directory.questions == 3


def test_the_cache_forgets_the_least_recently_used(directory: FakeDirectory) -> None:
    cached = CachingDirectory(directory, max_entries=2)

    for address in (ALEX, MORGAN.address, SAM.address, ALEX):
        cached.person(address)

    assert directory.questions == 4


class BlockingDirectory(FakeDirectory):
    """Holds every question until ``release`` is set, so that questions overlap."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.asked = threading.Event()
        self.threads: set[str] = set()

    def manager_chain(self, address: str, depth: int = 3) -> list[Person]:
        self.threads.add(threading.current_thread().name)
        self.asked.set()
        assert self.release.wait(10)
        return super().manager_chain(address, depth)


def ask_at_once(inner: BlockingDirectory, ask: Callable[[], None], askers: int = 3) -> None:
    """Run ``ask`` in several threads while the directory holds the first question, then let it answer."""
    threads = [threading.Thread(target=ask) for _ in range(askers)]
    for thread in threads:
        thread.start()
    assert inner.asked.wait(10)
    inner.release.set()
    for thread in threads:
        thread.join(10)


def test_the_same_question_asked_twice_at_once_is_asked_once() -> None:
    inner = BlockingDirectory()
    inner.add(Person(ALEX, "Alex"), manager=MORGAN.address)
    inner.add(MORGAN)
    cached = CachingDirectory(inner)
    answers: list[list[Person]] = []

    ask_at_once(inner, lambda: answers.append(cached.manager_chain(ALEX)))

    assert answers == [[MORGAN]] * 3
    assert inner.questions == 1


def test_a_failed_question_fails_everyone_waiting_for_it_and_is_remembered() -> None:
    inner = BlockingDirectory()
    inner.down = True
    cached = CachingDirectory(inner, outage_seconds=30)
    outcomes: list[str] = []

    def ask() -> None:
        try:
            cached.manager_chain(ALEX)
            outcomes.append("answered")
        except DirectoryUnavailable:
            outcomes.append("unavailable")

    ask_at_once(inner, ask)

    assert outcomes == ["unavailable"] * 3
    assert inner.questions == 1
    with pytest.raises(DirectoryUnavailable):
        cached.person(ALEX)  # within the outage window: not asked again
    assert inner.questions == 1


def test_prefetch_asks_in_the_background_and_resolve_uses_that_answer() -> None:
    inner = BlockingDirectory()
    inner.add(Person(ALEX, "Alex Wilber"), manager=MORGAN.address)
    inner.add(MORGAN, manager=SAM.address)
    inner.add(SAM)
    resolver = SupervisorResolver(CachingDirectory(inner), SupervisorMap({}))
    try:
        resolver.prefetch(ALEX)  # returns at once although the directory holds the question
        assert inner.asked.wait(10)
        inner.release.set()
        resolution = resolver.resolve(ALEX)
    finally:
        resolver.close()

    assert resolution.chain == (MORGAN.address, SAM.address)
    assert inner.threads and all(name.startswith("directory") for name in inner.threads)
    assert inner.questions == 2  # the chain once (prefetched), the reporter's own entry once


def test_prefetch_during_an_outage_leaves_resolve_to_fall_back() -> None:
    directory = FakeDirectory(down=True)
    resolver = SupervisorResolver(CachingDirectory(directory), MAP)
    try:
        resolver.prefetch(ALEX)
        resolution = resolver.resolve(ALEX)
    finally:
        resolver.close()

    assert resolution.chain == ("mapped-boss@contoso.com",)
    assert not resolution.directory_available
