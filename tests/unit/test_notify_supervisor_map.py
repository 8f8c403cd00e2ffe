"""ADDIN_SUPERVISOR_MAP: read once at start, and a bad file stops start-up naming the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from addin_service.errors import ConfigError
from addin_service.notify.supervisor_map import load_supervisor_map


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_a_csv_map_with_header_comments_and_blank_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "supervisors.csv",
        "reporter,supervisor,skip_level\n# the sales team\n\nAlex@Contoso.com, Morgan@contoso.com, sam@contoso.com\n"
        "riley@contoso.com,morgan@contoso.com\n",
    )

    mapping = load_supervisor_map(path)

    assert mapping.chain("alex@contoso.com") == ("morgan@contoso.com", "sam@contoso.com")
    assert mapping.chain("RILEY@contoso.com") == ("morgan@contoso.com",)
    assert mapping.chain("nobody@contoso.com") == ()
    assert len(mapping) == 2


def test_a_yaml_map_in_all_three_forms(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "supervisors.yaml",
        "alex@contoso.com: morgan@contoso.com\n"
        "riley@contoso.com: [morgan@contoso.com, sam@contoso.com]\n"
        "kim@contoso.com:\n  supervisor: lee@contoso.com\n  skip_level: sam@contoso.com\n",
    )

    mapping = load_supervisor_map(path)

    assert mapping.chain("alex@contoso.com") == ("morgan@contoso.com",)
    assert mapping.chain("riley@contoso.com") == ("morgan@contoso.com", "sam@contoso.com")
    assert mapping.chain("kim@contoso.com") == ("lee@contoso.com", "sam@contoso.com")


def test_no_file_is_an_empty_map() -> None:
    assert len(load_supervisor_map(None)) == 0


@pytest.mark.parametrize(
    ("name", "text", "line", "problem"),
    [
        ("m.csv", "alex@contoso.com,morgan@contoso.com\nriley@contoso.com\n", 2, "found 1 value"),
        ("m.csv", "alex@contoso.com,not-an-address\n", 1, "'not-an-address' is not an email address"),
        ("m.csv", "a@contoso.com,b@contoso.com\n\nA@contoso.com,c@contoso.com\n", 3, "already listed on line 1"),
        ("m.csv", "a@contoso.com,a@contoso.com\n", 1, "cannot be their own supervisor"),
        ("m.csv", "a@contoso.com,b@contoso.com,b@contoso.com\n", 1, "are the same person"),
        ("m.csv", 'a@contoso.com,"b@contoso.com\n', 1, "not valid CSV"),
        ("m.yaml", "a@contoso.com: b@contoso.com\nc@contoso.com: [d@contoso.com\n", 3, "not valid YAML"),
        ("m.yaml", "a@contoso.com: b@contoso.com\nc@contoso.com:\n  boss: d@contoso.com\n", 3, "supervisor"),
        ("m.yaml", "- a@contoso.com\n", 1, "expected a mapping"),
        ("m.yaml", "a@contoso.com: [b@contoso.com, c@contoso.com, d@contoso.com]\n", 1, "expected [supervisor]"),
        (
            "m.yaml",
            "a@contoso.com:\n  supervisor: b@contoso.com\n  Supervisor: c@contoso.com\n",
            3,
            "supervisor is given twice",
        ),
    ],
)
def test_a_bad_map_names_the_variable_and_the_line(
    tmp_path: Path, name: str, text: str, line: int, problem: str
) -> None:
    path = write(tmp_path, name, text)

    with pytest.raises(ConfigError) as caught:
        load_supervisor_map(path)

    assert caught.value.variable == "ADDIN_SUPERVISOR_MAP"
    assert f"line {line}" in caught.value.detail
    assert problem in caught.value.detail


def test_a_map_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", b"a@contoso.com,b@contoso.com\nc\xff@contoso.com,d@contoso.com\n")

    with pytest.raises(ConfigError, match="line 2: not UTF-8"):
        load_supervisor_map(path)


def test_a_missing_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^ADDIN_SUPERVISOR_MAP: cannot read"):
        load_supervisor_map(tmp_path / "missing.csv")
