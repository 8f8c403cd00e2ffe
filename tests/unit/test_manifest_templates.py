"""The admin-facing templates in manifest/templates are the ones the package renders."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["manifest.xml.j2", "manifest.json.j2"])
def test_manifest_folder_template_is_identical_to_the_packaged_one(name: str) -> None:
    packaged = (ROOT / "addin_service" / "manifest" / "templates" / name).read_bytes()

    assert (ROOT / "manifest" / "templates" / name).read_bytes() == packaged, (
        f"copy addin_service/manifest/templates/{name} to manifest/templates/{name}"
    )


def test_readme_keeps_the_screenshot_placeholder() -> None:
    assert "![Task pane](taskpane.png)" in (ROOT / "manifest" / "README.md").read_text(encoding="utf-8")
