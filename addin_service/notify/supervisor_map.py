"""``ADDIN_SUPERVISOR_MAP``: who is whose supervisor when the directory does not say.

Two formats, chosen by the file name:

* CSV (any name not ending in ``.yaml``/``.yml``): one ``reporter,supervisor[,skip_level]`` per
  line. A header line whose first cell is ``reporter`` is skipped, as are blank lines and lines
  starting with ``#``.
* YAML (``.yaml``/``.yml``): a mapping from the reporter's address to the supervisor's address, to a
  list ``[supervisor, skip_level]``, or to ``{supervisor: ..., skip_level: ...}``.

The file is read and checked once, at start-up: a bad file stops the service with a
:class:`ConfigError` that names ``ADDIN_SUPERVISOR_MAP`` and the line to fix, rather than quietly
sending a notification to nobody (or to the wrong person) months later.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from addin_service.errors import ConfigError

VARIABLE = "ADDIN_SUPERVISOR_MAP"
MAX_FILE_BYTES = 16 * 1024 * 1024
_ADDRESS = re.compile(r"[^@\s<>\"(),;:\\\[\]]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")


@dataclass(frozen=True)
class SupervisorMap:
    """Reporter address (lower-case) → their management chain (supervisor first)."""

    chains: dict[str, tuple[str, ...]]

    def chain(self, reporter: str) -> tuple[str, ...]:
        """The reporter's chain from the file, or ``()`` when the file does not list them."""
        return self.chains.get(reporter.strip().lower(), ())

    def __len__(self) -> int:
        return len(self.chains)


def load_supervisor_map(path: str | Path | None) -> SupervisorMap:
    """Read and validate the map at ``path`` (None or empty: an empty map).

    :raises ConfigError: naming ``ADDIN_SUPERVISOR_MAP`` and the first bad line (unreadable file,
        malformed CSV/YAML, an invalid address, a reporter listed twice, a reporter who is their own
        supervisor, or a supervisor who is also the skip-level manager).
    """
    if not path:
        return SupervisorMap({})
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(VARIABLE, f"cannot read {file} ({exc.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(VARIABLE, f"{file} is larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(VARIABLE, f"{file}, line {line}: not UTF-8 text") from None
    is_yaml = file.suffix.lower() in (".yaml", ".yml")
    entries = _yaml_entries(text, file) if is_yaml else _csv_entries(text, file)
    return SupervisorMap(_validated(entries, file))


@dataclass(frozen=True)
class _Entry:
    line: int
    reporter: str
    chain: tuple[str, ...]


def _csv_entries(text: str, file: Path) -> list[_Entry]:
    entries: list[_Entry] = []
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True, strict=True)
    try:
        for row in reader:
            line = reader.line_num
            cells = [cell.strip() for cell in row]
            if not any(cells) or cells[0].startswith("#"):
                continue
            if not entries and cells[0].lower() == "reporter":
                continue
            while cells and not cells[-1]:
                cells.pop()
            if len(cells) not in (2, 3):
                raise ConfigError(
                    VARIABLE,
                    f"{file}, line {line}: expected reporter,supervisor[,skip_level] but found {len(cells)} value(s)",
                )
            entries.append(_Entry(line, cells[0], tuple(cells[1:])))
    except csv.Error as exc:
        raise ConfigError(VARIABLE, f"{file}, line {reader.line_num}: not valid CSV ({exc})") from None
    return entries


def _yaml_entries(text: str, file: Path) -> list[_Entry]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}" if mark is not None else "somewhere"
        raise ConfigError(VARIABLE, f"{file}, {where}: not valid YAML ({exc.problem or exc.context})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(VARIABLE, f"{file}: not valid YAML ({type(exc).__name__})") from None
    if root is None:
        return []
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(
            VARIABLE, f"{file}, line {root.start_mark.line + 1}: expected a mapping of reporter: supervisor"
        )
    entries: list[_Entry] = []
    for key, value in root.value:
        line = key.start_mark.line + 1
        reporter = _scalar(key, file)
        entries.append(_Entry(line, reporter, _yaml_chain(value, file)))
    return entries


def _yaml_chain(node: Any, file: Path) -> tuple[str, ...]:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode):
        return (_scalar(node, file),)
    if isinstance(node, yaml.SequenceNode):
        if len(node.value) not in (1, 2):
            raise ConfigError(VARIABLE, f"{file}, line {line}: expected [supervisor] or [supervisor, skip_level]")
        return tuple(_scalar(item, file) for item in node.value)
    if isinstance(node, yaml.MappingNode):
        fields: dict[str, Any] = {}
        for key, value in node.value:
            name = _scalar(key, file).lower()
            if name in fields:  # YAML would quietly keep the last one: the wrong person could be told
                raise ConfigError(VARIABLE, f"{file}, line {key.start_mark.line + 1}: {name} is given twice")
            fields[name] = value
        unknown = sorted(set(fields) - {"supervisor", "skip_level"})
        if unknown or "supervisor" not in fields:
            raise ConfigError(
                VARIABLE,
                f"{file}, line {line}: expected the keys supervisor and (optionally) skip_level"
                + (f", not {', '.join(unknown)}" if unknown else ""),
            )
        chain = [_scalar(fields["supervisor"], file)]
        if "skip_level" in fields:
            chain.append(_scalar(fields["skip_level"], file))
        return tuple(chain)
    raise ConfigError(VARIABLE, f"{file}, line {line}: expected an address")  # pragma: no cover - no other nodes


def _scalar(node: Any, file: Path) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise ConfigError(VARIABLE, f"{file}, line {node.start_mark.line + 1}: expected an address")
    return str(node.value).strip()


def _validated(entries: list[_Entry], file: Path) -> dict[str, tuple[str, ...]]:
    chains: dict[str, tuple[str, ...]] = {}
    first_line: dict[str, int] = {}
    for entry in entries:
        for address in (entry.reporter, *entry.chain):
            if not _ADDRESS.fullmatch(address):
                raise ConfigError(VARIABLE, f"{file}, line {entry.line}: {address!r} is not an email address")
        reporter = entry.reporter.lower()
        chain = tuple(address.lower() for address in entry.chain)
        if reporter in chains:
            raise ConfigError(
                VARIABLE,
                f"{file}, line {entry.line}: {reporter} is already listed on line {first_line[reporter]}",
            )
        if reporter in chain:
            raise ConfigError(VARIABLE, f"{file}, line {entry.line}: {reporter} cannot be their own supervisor")
        if len(chain) == 2 and chain[0] == chain[1]:
            raise ConfigError(
                VARIABLE, f"{file}, line {entry.line}: the supervisor and the skip-level manager are the same person"
            )
        chains[reporter] = chain
        first_line[reporter] = entry.line
    return chains
