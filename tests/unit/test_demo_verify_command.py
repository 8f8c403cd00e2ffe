"""The demo tells the person at the terminal a verify command that works for the data folder used."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from addin_service.demo.runner import verify_command


def test_the_default_folder_needs_no_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)

    assert verify_command(Path("var")) == ".venv/bin/addin-service evidence verify"


def test_another_folder_is_named_in_the_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "my demo" / "data"

    words = shlex.split(verify_command(data))

    assert words == [
        f"ADDIN_DATABASE_URL=sqlite:///{data / 'addin.db'}",
        f"ADDIN_EVIDENCE_URL=file://{data / 'evidence'}",
        str(Path(sys.executable).parent / "addin-service"),
        "evidence",
        "verify",
    ]
