"""The unified manifest's own rule checks: the built manifest passes, and each broken rule is caught."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from addin_service.manifest.builder import check_unified_manifest
from addin_service.manifest.icons import COLOR_ICON_FILE, OUTLINE_ICON_FILE, read_shipped_icon
from addin_service.manifest.inputs import ManifestInputs, parse_inputs
from addin_service.manifest.render import render_unified

CLIENT = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"


@pytest.fixture(scope="module")
def inputs() -> ManifestInputs:
    return parse_inputs("https://report.contoso.com", CLIENT, version="2.4.0.0")


@pytest.fixture(scope="module")
def manifest(inputs: ManifestInputs) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(render_unified(inputs))
    return loaded


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return {
        "color.png": read_shipped_icon(COLOR_ICON_FILE),
        "outline.png": read_shipped_icon(OUTLINE_ICON_FILE),
    }


def problems_after(
    manifest: dict[str, Any],
    files: dict[str, bytes],
    inputs: ManifestInputs,
    change: Callable[[dict[str, Any]], None],
) -> str:
    changed = copy.deepcopy(manifest)
    change(changed)
    return "\n".join(check_unified_manifest(changed, files, inputs))


def button(manifest: dict[str, Any]) -> dict[str, Any]:
    control: dict[str, Any] = manifest["extensions"][0]["ribbons"][0]["tabs"][0]["groups"][0]["controls"][0]
    return control


def mobile_button(manifest: dict[str, Any]) -> dict[str, Any]:
    tab = manifest["extensions"][0]["ribbons"][0]["tabs"][0]
    control: dict[str, Any] = tab["customMobileRibbonGroups"][0]["controls"][0]
    return control


def test_built_manifest_passes_every_rule(
    manifest: dict[str, Any], files: dict[str, bytes], inputs: ManifestInputs
) -> None:
    assert check_unified_manifest(manifest, files, inputs) == []


def test_built_manifest_says_what_the_deployment_needs(manifest: dict[str, Any]) -> None:
    assert manifest["version"] == "2.4.0"
    assert manifest["webApplicationInfo"] == {"id": CLIENT, "resource": f"api://report.contoso.com/{CLIENT}"}
    assert manifest["validDomains"] == ["report.contoso.com"]
    names = [p["name"] for p in manifest["authorization"]["permissions"]["resourceSpecific"]]
    assert names == ["MailboxItem.Read.User", "Mailbox.SharedFolder"]
    assert manifest["extensions"][0]["ribbons"][0]["contexts"] == ["mailRead"]
    assert button(manifest)["label"] == "Report harassment"
    runtime = manifest["extensions"][0]["runtimes"][0]
    assert runtime["code"]["page"] == "https://report.contoso.com/taskpane.html"
    assert runtime["actions"][0]["type"] == "openPage"


def test_unknown_permission_is_reported(
    manifest: dict[str, Any], files: dict[str, bytes], inputs: ManifestInputs
) -> None:
    def change(m: dict[str, Any]) -> None:
        m["authorization"]["permissions"]["resourceSpecific"].append(
            {"name": "Mail.ReadAll", "type": "Delegated"}
        )

    assert "unknown permission 'Mail.ReadAll'" in problems_after(manifest, files, inputs, change)


def test_more_than_read_item_permission_is_reported(
    manifest: dict[str, Any], files: dict[str, bytes], inputs: ManifestInputs
) -> None:
    def change(m: dict[str, Any]) -> None:
        m["authorization"]["permissions"]["resourceSpecific"][0]["name"] = "Mailbox.ReadWrite.User"

    assert "least privilege" in problems_after(manifest, files, inputs, change)


def test_control_naming_an_undefined_action_is_reported(
    manifest: dict[str, Any], files: dict[str, bytes], inputs: ManifestInputs
) -> None:
    def change(m: dict[str, Any]) -> None:
        mobile_button(m)["actionId"] = "ShowSomethingElse"

    assert "names action 'ShowSomethingElse', which no runtime defines" in problems_after(
        manifest, files, inputs, change
    )


def test_plain_http_url_is_reported(
    manifest: dict[str, Any], files: dict[str, bytes], inputs: ManifestInputs
) -> None:
    def change(m: dict[str, Any]) -> None:
        m["developer"]["privacyUrl"] = "http://report.contoso.com/privacy"

    assert "developer/privacyUrl: must be an absolute https:// URL" in problems_after(
        manifest, files, inputs, change
    )


def test_mobile_button_missing_an_icon_is_reported(
    manifest: dict[str, Any], files: dict[str, bytes], inputs: ManifestInputs
) -> None:
    def change(m: dict[str, Any]) -> None:
        mobile_button(m)["icons"] = [
            i for i in mobile_button(m)["icons"] if (i["size"], i["scale"]) != (32, 2)
        ]

    assert "misses mobile icons 32@2x" in problems_after(manifest, files, inputs, change)


def test_icon_whose_file_has_another_pixel_size_is_reported(
    manifest: dict[str, Any], files: dict[str, bytes], inputs: ManifestInputs
) -> None:
    def change(m: dict[str, Any]) -> None:
        button(m)["icons"][0]["url"] = button(m)["icons"][0]["url"].replace("icon-16", "icon-80")

    assert "needs a 16x16 image" in problems_after(manifest, files, inputs, change)


def test_duplicate_control_id_is_reported(
    manifest: dict[str, Any], files: dict[str, bytes], inputs: ManifestInputs
) -> None:
    def change(m: dict[str, Any]) -> None:
        mobile_button(m)["id"] = button(m)["id"]

    assert "is used twice" in problems_after(manifest, files, inputs, change)


def test_sso_resource_for_another_host_is_reported(
    manifest: dict[str, Any], files: dict[str, bytes], inputs: ManifestInputs
) -> None:
    def change(m: dict[str, Any]) -> None:
        m["webApplicationInfo"]["resource"] = f"api://elsewhere.contoso.com/{CLIENT}"

    assert "webApplicationInfo/resource" in problems_after(manifest, files, inputs, change)


def test_outline_icon_that_is_not_white_is_reported(
    manifest: dict[str, Any], files: dict[str, bytes], inputs: ManifestInputs
) -> None:
    coloured = {**files, "outline.png": read_shipped_icon("icon-32.png")}  # blue shield, 32x32

    assert "must use white only" in "\n".join(check_unified_manifest(manifest, coloured, inputs))


def test_colour_icon_of_the_wrong_size_is_reported(
    manifest: dict[str, Any], files: dict[str, bytes], inputs: ManifestInputs
) -> None:
    wrong = {**files, "color.png": read_shipped_icon("icon-144.png")}

    assert "color.png must be 192x192 pixels (is 144x144)" in "\n".join(
        check_unified_manifest(manifest, wrong, inputs)
    )


def test_icon_missing_from_the_package_is_reported(
    manifest: dict[str, Any], files: dict[str, bytes], inputs: ManifestInputs
) -> None:
    assert "not in the app package" in "\n".join(check_unified_manifest(manifest, {}, inputs))
