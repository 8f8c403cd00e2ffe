"""Copying the MSAL.js browser bundle into the package at build time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from addin_service.web import vendor
from addin_service.web.assets import MSAL_BUNDLE


def _node_modules(root: Path, version: str = "5.30.0") -> Path:
    package = root / "node_modules" / "@azure" / "msal-browser"
    (package / "lib").mkdir(parents=True)
    (package / "lib" / "msal-browser.min.js").write_text("/*! msal */ var msal = {};", encoding="utf-8")
    (package / "package.json").write_text(json.dumps({"version": version}), encoding="utf-8")
    (package / "LICENSE").write_text("MIT License", encoding="utf-8")
    return root / "node_modules"


def test_copy_msal_puts_the_bundle_its_licence_and_version_beside_the_pane(tmp_path: Path) -> None:
    static = tmp_path / "static"

    target = vendor.copy_msal(_node_modules(tmp_path), static)

    assert target == static / MSAL_BUNDLE
    assert target.read_text(encoding="utf-8") == "/*! msal */ var msal = {};"
    assert (target.parent / "msal-browser.LICENSE.txt").read_text(encoding="utf-8") == "MIT License"
    assert (target.parent / "msal-browser.VERSION.txt").read_text(encoding="utf-8") == "@azure/msal-browser 5.30.0\n"


def test_copy_msal_without_npm_packages_says_to_run_npm_ci(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="npm ci"):
        vendor.copy_msal(tmp_path / "node_modules", tmp_path / "static")


def test_command_line_reports_a_missing_package_with_exit_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = vendor.main(["--node-modules", str(tmp_path / "nowhere")])

    assert status == 1
    assert "npm ci" in capsys.readouterr().err
