"""``manifest build`` end to end: files on disk, the real JSON schema from node_modules, the CLI."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from lxml import etree

from addin_service.manifest import BuiltManifests, ManifestInvalid, build_manifests, manifest_cli
from addin_service.manifest import builder as builder_module
from addin_service.manifest.errors import ManifestInputError
from addin_service.manifest.icons import png_info, read_shipped_icon
from addin_service.manifest.render import UNIFIED_MANIFEST_VERSION
from addin_service.manifest.unified_rules import schema_relative_path, validate_against_schema
from addin_service.manifest.xml_rules import NS_BT, check_xml

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_URL = "https://report.contoso.com"
CLIENT = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
ENV = {"ADDIN_PUBLIC_URL": None, "ADDIN_CLIENT_ID": None}


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """The npm package with the unified manifest's JSON schema: `make setup-test` (npm ci) installs it."""
    folder = ROOT / "node_modules"
    if not (folder / schema_relative_path(UNIFIED_MANIFEST_VERSION)).is_file():
        pytest.fail("node_modules/@microsoft/app-manifest is missing: run `make setup-test` (or `npm ci`)")
    return folder


@pytest.fixture
def built(tmp_path: Path, node_modules: Path) -> BuiltManifests:
    return build_manifests(
        PUBLIC_URL, CLIENT, tmp_path / "out", node_modules=node_modules, require_schema=True
    )


def schema_file(node_modules: Path) -> Path:
    return node_modules / schema_relative_path(UNIFIED_MANIFEST_VERSION)


def test_build_writes_both_manifests_and_the_package(built: BuiltManifests) -> None:
    assert sorted(p.name for p in built.out_dir.iterdir()) == [
        "manifest.json",
        "manifest.xml",
        "unified-app-package.zip",
    ]
    assert built.schema.validated


def test_written_xml_manifest_passes_the_rule_checks(built: BuiltManifests) -> None:
    assert check_xml(built.xml_manifest.read_bytes()) == []


def test_written_unified_manifest_is_valid_against_the_npm_schema(
    built: BuiltManifests, node_modules: Path
) -> None:
    manifest = json.loads(built.unified_manifest.read_text(encoding="utf-8"))

    assert validate_against_schema(manifest, schema_file(node_modules)) == []
    assert manifest["manifestVersion"] == UNIFIED_MANIFEST_VERSION


def test_schema_validation_catches_what_the_schema_forbids(built: BuiltManifests, node_modules: Path) -> None:
    manifest = json.loads(built.unified_manifest.read_text(encoding="utf-8"))
    manifest["name"]["short"] = "A name far longer than thirty characters"
    del manifest["accentColor"]

    problems = validate_against_schema(manifest, schema_file(node_modules))

    assert any(p.startswith("schema: name/short:") for p in problems)
    assert any("'accentColor' is a required property" in p for p in problems)


def test_schema_is_never_fetched(tmp_path: Path) -> None:
    remote = tmp_path / "schema.json"
    remote.write_text(
        json.dumps(
            {
                "$schema": "http://json-schema.org/draft-04/schema#",
                "properties": {"a": {"$ref": "https://schemas.example.invalid/a.json"}},
            }
        )
    )

    with pytest.raises(ValueError, match="never fetched"):
        validate_against_schema({"a": 1}, remote)


def test_package_holds_exactly_the_manifest_and_two_icons(built: BuiltManifests) -> None:
    with zipfile.ZipFile(built.unified_package) as package:
        assert package.namelist() == ["manifest.json", "color.png", "outline.png"]
        assert package.read("manifest.json") == built.unified_manifest.read_bytes()
        color, outline = png_info(package.read("color.png")), png_info(package.read("outline.png"))
        assert package.testzip() is None

    assert (color.width, color.height) == (192, 192)
    assert (outline.width, outline.height, outline.has_alpha) == (32, 32, True)


def test_every_icon_either_manifest_names_is_shipped_at_its_pixel_size(built: BuiltManifests) -> None:
    root = etree.fromstring(built.xml_manifest.read_bytes())
    xml_urls = [img.get("DefaultValue") for img in root.iter(f"{{{NS_BT}}}Image") if img.get("DefaultValue")]
    manifest = json.loads(built.unified_manifest.read_text(encoding="utf-8"))
    json_urls = [icon["url"] for icon in _all_icons(manifest)]
    prefix = f"{PUBLIC_URL}/static/icons/icon-"

    for url in xml_urls + json_urls:
        assert url.startswith(prefix), url
        pixels = int(url[len(prefix) :].removesuffix(".png"))
        info = png_info(read_shipped_icon(f"icon-{pixels}.png"))
        assert (info.width, info.height) == (pixels, pixels)
    for icon in _all_icons(manifest):
        assert icon["url"].endswith(f"icon-{icon['size'] * icon.get('scale', 1)}.png")


def _all_icons(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "icons" and isinstance(value, list):
                found.extend(value)
            found.extend(_all_icons(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_all_icons(value))
    return found


def test_rebuilding_gives_the_same_bytes(tmp_path: Path, node_modules: Path) -> None:
    first = build_manifests(PUBLIC_URL, CLIENT, tmp_path / "a", node_modules=node_modules)
    second = build_manifests(PUBLIC_URL + "/", CLIENT.upper(), tmp_path / "b", node_modules=node_modules)

    assert first.app_id == second.app_id
    for name in ("manifest.xml", "manifest.json", "unified-app-package.zip"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_explicit_app_id_and_version_reach_both_manifests(tmp_path: Path, node_modules: Path) -> None:
    app_id = "6f9619ff-8b86-d011-b42d-00c04fc964ff"

    built = build_manifests(
        PUBLIC_URL, CLIENT, tmp_path, app_id=app_id, version="1.4.2", node_modules=node_modules
    )

    xml = built.xml_manifest.read_text(encoding="utf-8")
    assert f"<Id>{app_id}</Id>" in xml and "<Version>1.4.2</Version>" in xml
    manifest = json.loads(built.unified_manifest.read_text(encoding="utf-8"))
    assert (manifest["id"], manifest["version"]) == (app_id, "1.4.2")


def test_display_name_with_markup_characters_is_escaped(tmp_path: Path, node_modules: Path) -> None:
    built = build_manifests(
        PUBLIC_URL, CLIENT, tmp_path, display_name='Report <abuse> & "threats"', node_modules=node_modules
    )

    root = etree.fromstring(built.xml_manifest.read_bytes())
    assert root.find("{http://schemas.microsoft.com/office/appforoffice/1.1}DisplayName").get(
        "DefaultValue"
    ) == ('Report <abuse> & "threats"')
    assert json.loads(built.unified_manifest.read_text())["name"]["short"] == 'Report <abuse> & "threats"'


def test_invalid_manifest_is_refused_and_nothing_is_written(
    tmp_path: Path, node_modules: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = builder_module.render_xml

    def without_rule(inputs: Any) -> bytes:
        return real(inputs).replace(b'  <Rule xsi:type="ItemIs" ItemType="Message" FormType="Read"/>\n', b"")

    monkeypatch.setattr(builder_module, "render_xml", without_rule)  # a template regression

    with pytest.raises(ManifestInvalid) as caught:
        build_manifests(PUBLIC_URL, CLIENT, tmp_path / "out", node_modules=node_modules)

    assert "needs <Rule>" in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_missing_schema_is_reported_as_skipped_not_silently_passed(tmp_path: Path) -> None:
    built = build_manifests(PUBLIC_URL, CLIENT, tmp_path / "out", node_modules=tmp_path / "empty")

    assert not built.schema.validated
    assert built.schema.skipped and "@microsoft/app-manifest" in built.schema.skipped


def test_missing_schema_fails_when_required(tmp_path: Path) -> None:
    with pytest.raises(ManifestInputError) as caught:
        build_manifests(
            PUBLIC_URL, CLIENT, tmp_path / "out", node_modules=tmp_path / "empty", require_schema=True
        )

    assert caught.value.flag == "--node-modules"
    assert "npm ci" in str(caught.value)


def test_out_path_that_is_a_file_is_refused(tmp_path: Path, node_modules: Path) -> None:
    a_file = tmp_path / "taken"
    a_file.write_text("")

    with pytest.raises(ManifestInputError) as caught:
        build_manifests(PUBLIC_URL, CLIENT, a_file, node_modules=node_modules)

    assert caught.value.flag == "--out"


# --- the command line ----------------------------------------------------------------------------


def run(*args: str) -> Any:
    return CliRunner().invoke(manifest_cli, ["build", *args], env=ENV)


def test_cli_builds_and_reports_what_it_wrote(tmp_path: Path, node_modules: Path) -> None:
    result = run(
        "--public-url",
        PUBLIC_URL,
        "--client-id",
        CLIENT,
        "-o",
        str(tmp_path),
        "--node-modules",
        str(node_modules),
        "--require-schema",
    )

    assert result.exit_code == 0, result.output
    assert f"wrote          {tmp_path / 'manifest.xml'}" in result.output
    assert "manifest.json is valid against" in result.output
    assert (tmp_path / "unified-app-package.zip").is_file()


def test_cli_says_how_to_enable_schema_validation_when_it_is_skipped(tmp_path: Path) -> None:
    result = run(
        "--public-url",
        PUBLIC_URL,
        "--client-id",
        CLIENT,
        "-o",
        str(tmp_path / "out"),
        "--node-modules",
        str(tmp_path),
    )

    assert result.exit_code == 0, result.output
    assert "JSON schema validation of manifest.json was skipped" in result.output
    assert "npm ci" in result.output


def test_cli_reads_public_url_and_client_id_from_the_service_settings(
    tmp_path: Path, node_modules: Path
) -> None:
    result = CliRunner().invoke(
        manifest_cli,
        ["build", "-o", str(tmp_path), "--node-modules", str(node_modules)],
        env={"ADDIN_PUBLIC_URL": PUBLIC_URL, "ADDIN_CLIENT_ID": CLIENT},
    )

    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--public-url", "http://report.contoso.com"),
        ("--public-url", "https://report.contoso.com/?x=1"),
        ("--public-url", "https://user:pass@report.contoso.com"),
        ("--public-url", "https:///no-host"),
        ("--client-id", "not-a-guid"),
        ("--app-id", "12345"),
        ("--version", "1.2.3.4"),
        ("--display-name", "x" * 31),
        ("--support-url", "http://help.contoso.com"),
    ],
)
def test_cli_refuses_each_bad_input_naming_the_flag(tmp_path: Path, flag: str, value: str) -> None:
    args = {"--public-url": PUBLIC_URL, "--client-id": CLIENT, flag: value}
    flat = [part for pair in args.items() for part in pair]

    result = run(*flat, "-o", str(tmp_path / "out"))

    assert result.exit_code == 2
    assert f"Invalid value for '{flag}'" in result.output
    assert not (tmp_path / "out").exists()


def test_cli_requires_public_url_and_client_id(tmp_path: Path) -> None:
    result = run("-o", str(tmp_path))

    assert result.exit_code == 2
    assert "--public-url" in result.output
