"""``build_manifests``: render both manifests, check them, and only then write them.

Outputs in ``out_dir``:

* ``manifest.xml`` — the add-in only manifest (every Outlook, Exchange Server too);
* ``manifest.json`` — the unified manifest for Microsoft 365, for review;
* ``unified-app-package.zip`` — exactly ``manifest.json``, ``color.png`` and ``outline.png``,
  the package the Microsoft 365 admin center takes.

The same inputs give the same bytes: the add-in id is derived from the inputs unless given, the
icons are the committed PNGs, and the zip carries fixed timestamps and permissions.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from addin_service.manifest.errors import ManifestError, ManifestInputError, ManifestInvalid
from addin_service.manifest.icons import (
    COLOR_ICON_FILE,
    ICONS_URL_PATH,
    OUTLINE_ICON_FILE,
    png_info,
    read_shipped_icon,
    shipped_icon_names,
)
from addin_service.manifest.inputs import DEFAULT_DISPLAY_NAME, DEFAULT_VERSION, ManifestInputs, parse_inputs
from addin_service.manifest.render import (
    COLOR_ICON_IN_PACKAGE,
    OUTLINE_ICON_IN_PACKAGE,
    UNIFIED_MANIFEST_VERSION,
    render_unified,
    render_xml,
)
from addin_service.manifest.unified_rules import (
    SchemaValidation,
    UnifiedExpectations,
    check_unified,
    default_search_paths,
    find_schema,
    schema_relative_path,
    validate_against_schema,
)
from addin_service.manifest.xml_rules import XmlExpectations, check_xml

XML_MANIFEST_NAME = "manifest.xml"
UNIFIED_MANIFEST_NAME = "manifest.json"
UNIFIED_PACKAGE_NAME = "unified-app-package.zip"
_ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)

SCHEMA_HOW_TO = (
    "install it with `npm ci` in the repository root (Node.js 20 or later; package.json pins "
    "@microsoft/app-manifest), or point --node-modules at a node_modules folder that holds it"
)


@dataclass(frozen=True)
class BuiltManifests:
    """What a build wrote, and how the unified manifest was checked."""

    out_dir: Path
    xml_manifest: Path
    unified_manifest: Path
    unified_package: Path
    app_id: str
    version: str
    unified_version: str
    inputs: ManifestInputs
    schema: SchemaValidation


@cache
def _shipped_icon_pixels(name: str) -> int | None:
    """Pixel size of a shipped square icon, None when no such icon ships (or it is not square)."""
    if name not in shipped_icon_names():
        return None
    info = png_info(read_shipped_icon(name))
    return info.width if info.width == info.height else None


def _icon_base(inputs: ManifestInputs) -> str:
    return f"{inputs.public_url}/{ICONS_URL_PATH}/"


def check_xml_manifest(data: bytes, inputs: ManifestInputs) -> list[str]:
    """Every problem of an add-in only manifest built for ``inputs``."""
    return check_xml(data, XmlExpectations(
        app_id=inputs.app_id,
        client_id=inputs.client_id,
        api_resource=inputs.api_resource,
        taskpane_url=inputs.taskpane_url,
        origin=inputs.origin,
        icon_base_url=_icon_base(inputs),
        icon_pixels=_shipped_icon_pixels,
    ))


def check_unified_manifest(manifest: object, files: dict[str, bytes], inputs: ManifestInputs) -> list[str]:
    """Every problem, by this project's rules, of a unified manifest built for ``inputs``."""
    return check_unified(manifest, files, UnifiedExpectations(
        app_id=inputs.app_id,
        version=inputs.unified_version,
        client_id=inputs.client_id,
        api_resource=inputs.api_resource,
        host=inputs.host,
        taskpane_url=inputs.taskpane_url,
        manifest_version=UNIFIED_MANIFEST_VERSION,
        icon_base_url=_icon_base(inputs),
        icon_pixels=_shipped_icon_pixels,
    ))


def package_unified(manifest_json: bytes, color_png: bytes, outline_png: bytes) -> bytes:
    """The app package: a zip holding exactly the manifest and its two icons, byte-for-byte stable."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in ((UNIFIED_MANIFEST_NAME, manifest_json), (COLOR_ICON_IN_PACKAGE, color_png),
                           (OUTLINE_ICON_IN_PACKAGE, outline_png)):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            archive.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return buffer.getvalue()


def build_manifests(
    public_url: str,
    client_id: str,
    out_dir: Path,
    *,
    app_id: str | None = None,
    version: str = DEFAULT_VERSION,
    display_name: str = DEFAULT_DISPLAY_NAME,
    support_url: str | None = None,
    node_modules: Path | None = None,
    require_schema: bool = False,
) -> BuiltManifests:
    """Build, check and write both manifests for the service at ``public_url``.

    The unified manifest is also validated against the JSON schema of ``@microsoft/app-manifest``
    when that npm package is installed (``node_modules`` here, in a parent directory, or in the
    source checkout; or exactly ``node_modules`` when given). Without it the build still runs
    every other check and reports the schema check as skipped, unless ``require_schema``.

    :raises ManifestInputError: a bad input, naming its flag.
    :raises ManifestInvalid: a manifest breaks a rule; nothing was written.
    """
    inputs = parse_inputs(public_url, client_id, app_id=app_id, version=version,
                          display_name=display_name, support_url=support_url)

    xml = render_xml(inputs)
    xml_problems = check_xml_manifest(xml, inputs)
    if xml_problems:
        raise ManifestInvalid("add-in only (XML)", xml_problems)

    unified = render_unified(inputs)
    manifest = json.loads(unified)
    files = {
        UNIFIED_MANIFEST_NAME: unified,
        COLOR_ICON_IN_PACKAGE: read_shipped_icon(COLOR_ICON_FILE),
        OUTLINE_ICON_IN_PACKAGE: read_shipped_icon(OUTLINE_ICON_FILE),
    }
    unified_problems = check_unified_manifest(manifest, files, inputs)
    schema = _schema_check(manifest, node_modules, require_schema, unified_problems)
    if unified_problems:
        raise ManifestInvalid("unified (JSON)", unified_problems)

    package = package_unified(unified, files[COLOR_ICON_IN_PACKAGE], files[OUTLINE_ICON_IN_PACKAGE])
    target = _output_dir(out_dir)
    written = {}
    outputs = ((XML_MANIFEST_NAME, xml), (UNIFIED_MANIFEST_NAME, unified), (UNIFIED_PACKAGE_NAME, package))
    for name, data in outputs:
        written[name] = _write_atomically(target / name, data)
    return BuiltManifests(
        out_dir=target,
        xml_manifest=written[XML_MANIFEST_NAME],
        unified_manifest=written[UNIFIED_MANIFEST_NAME],
        unified_package=written[UNIFIED_PACKAGE_NAME],
        app_id=inputs.app_id,
        version=inputs.version,
        unified_version=inputs.unified_version,
        inputs=inputs,
        schema=schema,
    )


def _schema_check(manifest: Any, node_modules: Path | None, require: bool,
                  problems: list[str]) -> SchemaValidation:
    schema_path = find_schema(UNIFIED_MANIFEST_VERSION, node_modules, default_search_paths())
    if schema_path is None:
        where = "node_modules here, above, or in the checkout" if node_modules is None else str(node_modules)
        reason = f"{schema_relative_path(UNIFIED_MANIFEST_VERSION)} was not found in {where}"
        if require:
            raise ManifestInputError("--node-modules",
                                     f"the JSON schema is required but {reason}; {SCHEMA_HOW_TO}")
        return SchemaValidation(schema=None, skipped=reason)
    try:
        problems.extend(validate_against_schema(manifest, schema_path))
    except ValueError as exc:
        raise ManifestError(str(exc)) from None
    return SchemaValidation(schema=schema_path)


def _output_dir(out_dir: Path) -> Path:
    if out_dir.exists() and not out_dir.is_dir():
        raise ManifestInputError("--out", f"{out_dir} exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ManifestInputError("--out", f"cannot create {out_dir}: {exc.strerror or exc}") from None
    return out_dir


def _write_atomically(path: Path, data: bytes) -> Path:
    """Write via a temporary file in the same folder, so a reader never sees half a manifest."""
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ManifestInputError("--out", f"cannot write {path}: {exc.strerror or exc}") from None
    return path
