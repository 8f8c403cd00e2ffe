"""An in-memory Directory: who is whose manager, with aliases; can be told to be unavailable."""

from __future__ import annotations

from dataclasses import dataclass, field

from addin_service.notify.ports import DirectoryUnavailable, Person


@dataclass
class InMemoryDirectory:
    managers: dict[str, str] = field(default_factory=dict)  # person → manager (lower-case addresses)
    aliases: dict[str, frozenset[str]] = field(default_factory=dict)
    down: bool = False
    name: str = "memory"

    def person(self, address: str) -> Person | None:
        if self.down:
            raise DirectoryUnavailable("the directory is down")
        wanted = address.lower()
        for primary in {*self.managers, *self.managers.values(), *self.aliases}:
            if wanted == primary or wanted in self.aliases.get(primary, frozenset()):
                return Person(primary, primary.split("@")[0], self.aliases.get(primary, frozenset()))
        return None

    def manager_chain(self, address: str, depth: int = 3) -> list[Person]:
        if self.down:
            raise DirectoryUnavailable("the directory is down")
        chain: list[Person] = []
        current = address.lower()
        while len(chain) < depth and current in self.managers:
            current = self.managers[current]
            chain.append(Person(current, current.split("@")[0], self.aliases.get(current, frozenset())))
        return chain
