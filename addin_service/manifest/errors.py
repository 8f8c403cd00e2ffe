"""Errors raised while building the add-in manifests."""

from __future__ import annotations


class ManifestError(Exception):
    """Base of every manifest build error."""


class ManifestInputError(ManifestError):
    """One bad input. ``flag`` names the command-line option to fix, e.g. ``--public-url``."""

    def __init__(self, flag: str, problem: str) -> None:
        super().__init__(f"{flag}: {problem}")
        self.flag = flag
        self.problem = problem


class ManifestInvalid(ManifestError):
    """A built manifest breaks a rule, so nothing was written. ``problems`` lists every rule broken."""

    def __init__(self, which: str, problems: list[str]) -> None:
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"the {which} manifest is not valid, so nothing was written:\n{lines}")
        self.which = which
        self.problems = list(problems)
