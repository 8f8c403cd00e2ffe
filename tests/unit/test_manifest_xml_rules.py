"""The add-in only manifest's rule checks: the built manifest passes, and each broken rule is caught."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from lxml import etree

from addin_service.manifest.builder import check_xml_manifest
from addin_service.manifest.inputs import ManifestInputs, parse_inputs
from addin_service.manifest.render import render_xml
from addin_service.manifest.xml_rules import NS_APP, NS_BT, NS_VO, NS_VO11, check_xml

CLIENT = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
NS = {"o": NS_APP, "bt": NS_BT, "v": NS_VO, "v11": NS_VO11}


@pytest.fixture(scope="module")
def inputs() -> ManifestInputs:
    return parse_inputs("https://report.contoso.com/addin", CLIENT)


@pytest.fixture(scope="module")
def good(inputs: ManifestInputs) -> bytes:
    return render_xml(inputs)


def mutate(data: bytes, change: Callable[[Any], None]) -> bytes:
    root = etree.fromstring(data)
    change(root)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def first(root: Any, path: str) -> Any:
    found = root.xpath(path, namespaces=NS)
    assert found, path
    return found[0]


def problems_after(good: bytes, inputs: ManifestInputs, change: Callable[[Any], None]) -> str:
    return "\n".join(check_xml_manifest(mutate(good, change), inputs))


def test_built_manifest_passes_every_rule(good: bytes, inputs: ManifestInputs) -> None:
    assert check_xml_manifest(good, inputs) == []


def test_built_manifest_passes_the_rules_without_deployment_expectations(good: bytes) -> None:
    assert check_xml(good) == []


def test_not_well_formed_xml_is_refused() -> None:
    assert "not well-formed" in check_xml(b"<OfficeApp><Id></OfficeApp>")[0]


def test_a_doctype_is_refused(good: bytes) -> None:
    with_doctype = good.replace(b"<OfficeApp", b"<!DOCTYPE OfficeApp>\n<OfficeApp", 1)

    assert "DOCTYPE" in check_xml(with_doctype)[0]


def test_root_must_be_a_mail_app(good: bytes, inputs: ManifestInputs) -> None:
    def change(root: Any) -> None:
        root.set("{http://www.w3.org/2001/XMLSchema-instance}type", "TaskPaneApp")

    assert "xsi:type one of MailApp" in problems_after(good, inputs, change)


def test_missing_required_element_is_reported(good: bytes, inputs: ManifestInputs) -> None:
    def change(root: Any) -> None:
        root.remove(first(root, "o:Rule"))

    assert "needs <Rule>" in problems_after(good, inputs, change)


def test_elements_out_of_order_are_reported(good: bytes, inputs: ManifestInputs) -> None:
    def change(root: Any) -> None:
        version = first(root, "o:Version")
        root.remove(version)
        root.insert(0, version)

    assert "out of order" in problems_after(good, inputs, change)


def test_unknown_element_is_reported(good: bytes, inputs: ManifestInputs) -> None:
    def change(root: Any) -> None:
        first(root, "o:FormSettings").addnext(etree.Element(f"{{{NS_APP}}}Surprise"))

    assert "<Surprise> is not allowed inside <OfficeApp>" in problems_after(good, inputs, change)


def test_resid_that_resolves_to_nothing_is_reported(good: bytes, inputs: ManifestInputs) -> None:
    def change(root: Any) -> None:
        first(root, "//v11:MobileFormFactor//v11:Control/v11:Label").set("resid", "Nowhere.Label")

    assert "refers to resid 'Nowhere.Label'" in problems_after(good, inputs, change)


def test_resid_of_the_wrong_kind_is_reported(good: bytes, inputs: ManifestInputs) -> None:
    def change(root: Any) -> None:
        first(root, "v:VersionOverrides/v:Hosts//v:Control/v:Label").set(
            "resid", "ReportButton.Tooltip"
        )  # a long string

    assert "not in bt:ShortStrings" in problems_after(good, inputs, change)


def test_duplicate_resource_id_is_reported(good: bytes, inputs: ManifestInputs) -> None:
    def change(root: Any) -> None:
        first(root, "v:VersionOverrides/v:Resources/bt:Urls/bt:Url[2]").set("id", "Taskpane.Url")

    assert "used by more than one resource" in problems_after(good, inputs, change)


def test_resource_id_longer_than_32_characters_is_reported(good: bytes, inputs: ManifestInputs) -> None:
    def change(root: Any) -> None:
        first(root, "v:VersionOverrides/v:Resources/bt:ShortStrings/bt:String[1]").set("id", "G" * 33)

    assert "at most 32" in problems_after(good, inputs, change)


def test_short_string_longer_than_125_characters_is_reported(good: bytes, inputs: ManifestInputs) -> None:
    def change(root: Any) -> None:
        first(root, "v:VersionOverrides/v:Resources/bt:ShortStrings/bt:String[2]").set(
            "DefaultValue", "R" * 126
        )

    assert "126 characters long; at most 125" in problems_after(good, inputs, change)


def test_long_string_longer_than_250_characters_is_reported(good: bytes, inputs: ManifestInputs) -> None:
    def change(root: Any) -> None:
        first(root, "o:Description").set("DefaultValue", "d" * 251)

    assert "251 characters long; at most 250" in problems_after(good, inputs, change)


def test_plain_http_url_is_reported(good: bytes, inputs: ManifestInputs) -> None:
    def change(root: Any) -> None:
        first(root, "o:SupportUrl").set("DefaultValue", "http://report.contoso.com/help")

    assert "must be an absolute https:// URL" in problems_after(good, inputs, change)


def test_desktop_icon_without_size_80_is_reported(good: bytes, inputs: ManifestInputs) -> None:
    def change(root: Any) -> None:
        icon = first(root, "v:VersionOverrides/v:Hosts//v:Icon")
        icon.remove(first(icon, "bt:Image[@size='80']"))

    assert "needs icons of size 80" in problems_after(good, inputs, change)


def test_desktop_icon_of_an_unknown_size_is_reported(good: bytes, inputs: ManifestInputs) -> None:
    def change(root: Any) -> None:
        first(root, "v:VersionOverrides/v:Hosts//v:Icon/bt:Image[@size='20']").set("size", "17")

    assert "size 17 is not a ribbon icon size" in problems_after(good, inputs, change)


def test_mobile_icon_missing_a_scale_is_reported(good: bytes, inputs: ManifestInputs) -> None:
    def change(root: Any) -> None:
        icon = first(root, "//v11:MobileFormFactor//v11:Icon")
        icon.remove(first(icon, "bt:Image[@size='48'][@scale='3']"))

    assert "misses mobile icons 48@3x" in problems_after(good, inputs, change)


def test_icon_whose_file_has_another_pixel_size_is_reported(good: bytes, inputs: ManifestInputs) -> None:
    def change(root: Any) -> None:
        image = first(root, "v:VersionOverrides/v:Resources/bt:Images/bt:Image[@id='Icon.16']")
        image.set("DefaultValue", image.get("DefaultValue").replace("icon-16.png", "icon-32.png"))

    assert "needs a 16x16 image" in problems_after(good, inputs, change)


def test_icon_the_service_does_not_ship_is_reported(good: bytes, inputs: ManifestInputs) -> None:
    def change(root: Any) -> None:
        first(root, "o:IconUrl").set("DefaultValue", "https://cdn.example.com/icon-64.png")

    assert "not one of the service's icons" in problems_after(good, inputs, change)


def test_duplicate_control_id_is_reported(good: bytes, inputs: ManifestInputs) -> None:
    def change(root: Any) -> None:
        first(root, "//v11:MobileFormFactor//v11:Control").set("id", "msgReadReportButton")

    assert "used twice in the same VersionOverrides" in problems_after(good, inputs, change)


def test_web_application_resource_must_end_with_the_client_id(good: bytes, inputs: ManifestInputs) -> None:
    def change(root: Any) -> None:
        first(root, "//v11:WebApplicationInfo/v11:Resource").text = "api://report.contoso.com/other"

    assert "api://<host>/<client id>" in problems_after(good, inputs, change)


def test_inner_overrides_less_strict_than_outer_are_reported(good: bytes, inputs: ManifestInputs) -> None:
    def change(root: Any) -> None:
        first(root, "//v11:Requirements/bt:Sets").set("DefaultMinVersion", "1.1")

    assert "at least as strict" in problems_after(good, inputs, change)


def test_requested_height_out_of_range_is_reported(good: bytes, inputs: ManifestInputs) -> None:
    def change(root: Any) -> None:
        first(root, "//o:RequestedHeight").text = "500"

    assert "between 32 and 450" in problems_after(good, inputs, change)


def test_unknown_permission_is_reported(good: bytes, inputs: ManifestInputs) -> None:
    def change(root: Any) -> None:
        first(root, "o:Permissions").text = "ReadEverything"

    assert "must be one of Restricted" in problems_after(good, inputs, change)


def test_shared_folders_flag_must_be_boolean(good: bytes, inputs: ManifestInputs) -> None:
    def change(root: Any) -> None:
        first(root, "//v11:SupportsSharedFolders").text = "yes"

    assert "must be true or false" in problems_after(good, inputs, change)


def test_manifest_for_another_deployment_is_reported(good: bytes) -> None:
    other = parse_inputs("https://elsewhere.contoso.com", CLIENT)

    problems = "\n".join(check_xml_manifest(good, other))

    assert "must be the add-in id" in problems
    assert "must be the task pane https://elsewhere.contoso.com/taskpane.html" in problems
